//! `tracing:`: where the proxy sends its spans (OTLP over gRPC or HTTP),
//! which new traces it samples, and how it batches them.

use super::ConfigError;
use serde::Deserialize;
use std::time::Duration;

/// Largest accepted `tracing.batch_max`.
pub const MAX_BATCH: usize = 8192;
/// Longest accepted `tracing.service_name`, in bytes.
pub const MAX_SERVICE_NAME: usize = 255;
/// Longest accepted `tracing.timeout`.
pub const MAX_EXPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// The collector used when `tracing.otlp_endpoint` is absent and the
/// protocol is `grpc` (the OTLP/gRPC port).
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://127.0.0.1:4317";
/// The collector used when `tracing.otlp_endpoint` is absent and the
/// protocol is `http/protobuf` or `http/json` (the OTLP/HTTP port).
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://127.0.0.1:4318";

/// Where and how spans are exported.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// Collector base URL, `http://host:port`; for the HTTP protocols an
    /// optional path prefix is allowed and spans are POSTed to
    /// `<otlp_endpoint>/v1/traces`. Absent: [`DEFAULT_GRPC_ENDPOINT`] or
    /// [`DEFAULT_HTTP_ENDPOINT`], after `protocol`.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// The OTLP transport and encoding; `http/protobuf` unless set.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// Share of new traces (no incoming `traceparent`) to sample, 0.0–1.0.
    /// Requests that carry a `traceparent` follow its sampled flag.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// Most spans per export request.
    #[serde(default = "default_batch_max")]
    pub batch_max: usize,
    /// The `service.name` resource attribute of every exported span.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Longest wait for the collector to take one batch (`5s`, `500ms`).
    #[serde(default = "default_timeout", with = "meshid_runtime::duration")]
    pub timeout: Duration,
}

/// The OTLP protocols, named as the OpenTelemetry SDKs name them
/// (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// `TraceService/Export` over gRPC (HTTP/2, usually port 4317).
    #[serde(rename = "grpc")]
    Grpc,
    /// POST of a binary protobuf body (`application/x-protobuf`).
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// POST of the OTLP JSON encoding (`application/json`).
    #[serde(rename = "http/json")]
    HttpJson,
}

/// A checked export destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtlpTarget {
    /// How spans are sent.
    pub protocol: OtlpProtocol,
    /// gRPC: the collector's `http://host:port`; HTTP: the full URL spans
    /// are POSTed to.
    pub uri: http::Uri,
}

// === impl TracingConfig ===

impl TracingConfig {
    /// Checks the settings and returns where spans go.
    pub fn target(&self) -> Result<OtlpTarget, ConfigError> {
        let invalid = |what: String| Err(ConfigError::Invalid(what));
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return invalid(format!(
                "tracing.sample_ratio {} must be between 0.0 and 1.0",
                self.sample_ratio
            ));
        }
        if !(1..=MAX_BATCH).contains(&self.batch_max) {
            return invalid(format!(
                "tracing.batch_max {} must be between 1 and {MAX_BATCH}",
                self.batch_max
            ));
        }
        if self.service_name.is_empty() || self.service_name.len() > MAX_SERVICE_NAME {
            return invalid(format!(
                "tracing.service_name must be 1 to {MAX_SERVICE_NAME} bytes long"
            ));
        }
        if self.timeout.is_zero() || self.timeout > MAX_EXPORT_TIMEOUT {
            return invalid(format!(
                "tracing.timeout {:?} must be more than 0s and at most {MAX_EXPORT_TIMEOUT:?}",
                self.timeout
            ));
        }
        Ok(OtlpTarget {
            protocol: self.protocol,
            uri: self.uri()?,
        })
    }

    fn uri(&self) -> Result<http::Uri, ConfigError> {
        let endpoint = self
            .otlp_endpoint
            .as_deref()
            .unwrap_or(match self.protocol {
                OtlpProtocol::Grpc => DEFAULT_GRPC_ENDPOINT,
                OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => DEFAULT_HTTP_ENDPOINT,
            });
        let bad =
            |why: &str| ConfigError::Invalid(format!("tracing.otlp_endpoint {endpoint:?} {why}"));
        let base: http::Uri = endpoint
            .parse()
            .map_err(|e| bad(&format!("is not a URL: {e}")))?;
        match base.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(bad(
                    "uses https, which the OTLP exporter does not support; \
                     use http:// to a collector on the node (e.g. http://127.0.0.1:4318)",
                ));
            }
            _ => return Err(bad("must start with http://")),
        }
        let Some(authority) = base.authority().cloned() else {
            return Err(bad("must be http://host:port with an optional path prefix"));
        };
        if authority.as_str().contains('@') {
            return Err(bad("must not carry credentials"));
        }
        if base.query().is_some() {
            return Err(bad("must not have a query string"));
        }
        let prefix = base.path().trim_end_matches('/');
        let path = match self.protocol {
            OtlpProtocol::Grpc if !prefix.is_empty() => {
                return Err(bad(
                    "has a path, which gRPC does not use; give only http://host:port \
                     (or set protocol: http/protobuf for a collector behind a path prefix)",
                ));
            }
            OtlpProtocol::Grpc => "/".to_owned(),
            OtlpProtocol::HttpProtobuf | OtlpProtocol::HttpJson => format!("{prefix}/v1/traces"),
        };
        http::Uri::builder()
            .scheme("http")
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(|e| bad(&format!("does not make a valid collector URL: {e}")))
    }
}

fn default_sample_ratio() -> f64 {
    1.0
}

fn default_batch_max() -> usize {
    512
}

fn default_service_name() -> String {
    "meshid-proxy".into()
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(protocol: OtlpProtocol, endpoint: Option<&str>) -> TracingConfig {
        TracingConfig {
            otlp_endpoint: endpoint.map(Into::into),
            protocol,
            sample_ratio: 1.0,
            batch_max: 1,
            service_name: default_service_name(),
            timeout: default_timeout(),
        }
    }

    fn uri(protocol: OtlpProtocol, endpoint: &str) -> Result<String, String> {
        cfg(protocol, Some(endpoint))
            .target()
            .map(|t| t.uri.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn endpoints_map_to_the_collector_url_of_each_protocol() {
        use OtlpProtocol::{Grpc, HttpJson, HttpProtobuf};
        for (p, endpoint, want) in [
            (
                HttpProtobuf,
                "http://127.0.0.1:4318",
                "http://127.0.0.1:4318/v1/traces",
            ),
            (
                HttpJson,
                "http://127.0.0.1:4318",
                "http://127.0.0.1:4318/v1/traces",
            ),
            (
                HttpProtobuf,
                "http://c:4318/otlp/",
                "http://c:4318/otlp/v1/traces",
            ),
            (
                HttpJson,
                "http://c:4318/otlp",
                "http://c:4318/otlp/v1/traces",
            ),
            (Grpc, "http://collector:4317", "http://collector:4317/"),
            (Grpc, "http://collector:4317/", "http://collector:4317/"),
        ] {
            assert_eq!(uri(p, endpoint).unwrap(), want, "{p:?} {endpoint}");
        }
        let err = uri(Grpc, "http://collector:4317/otlp").unwrap_err();
        assert!(
            err.contains("gRPC") && err.contains("http/protobuf"),
            "{err}"
        );
    }

    #[test]
    fn absent_endpoint_defaults_to_the_protocols_port_on_loopback() {
        let t = cfg(OtlpProtocol::Grpc, None).target().unwrap();
        assert_eq!(t.uri.to_string(), "http://127.0.0.1:4317/");
        let t = cfg(OtlpProtocol::HttpProtobuf, None).target().unwrap();
        assert_eq!(t.uri.to_string(), "http://127.0.0.1:4318/v1/traces");
    }

    #[test]
    fn bad_endpoints_are_refused_with_the_reason() {
        let p = OtlpProtocol::HttpProtobuf;
        let https = uri(p, "https://collector:4318").unwrap_err();
        assert!(
            https.contains("https") && https.contains("http://"),
            "{https}"
        );
        assert!(uri(OtlpProtocol::Grpc, "https://collector:4317").is_err());
        assert!(uri(p, "collector:4318").is_err());
        assert!(uri(p, "http://c:1/?q=1").is_err());
        let creds = uri(p, "http://user:pw@c:1").unwrap_err();
        assert!(creds.contains("credentials"), "{creds}");
    }

    #[test]
    fn limits_are_checked() {
        let ok = cfg(OtlpProtocol::Grpc, None);
        let bad = [
            TracingConfig {
                sample_ratio: 1.5,
                ..ok.clone()
            },
            TracingConfig {
                sample_ratio: f64::NAN,
                ..ok.clone()
            },
            TracingConfig {
                batch_max: 0,
                ..ok.clone()
            },
            TracingConfig {
                batch_max: MAX_BATCH + 1,
                ..ok.clone()
            },
            TracingConfig {
                service_name: String::new(),
                ..ok.clone()
            },
            TracingConfig {
                service_name: "s".repeat(MAX_SERVICE_NAME + 1),
                ..ok.clone()
            },
            TracingConfig {
                timeout: Duration::ZERO,
                ..ok.clone()
            },
            TracingConfig {
                timeout: MAX_EXPORT_TIMEOUT + Duration::from_secs(1),
                ..ok.clone()
            },
        ];
        for c in bad {
            assert!(c.target().is_err(), "{c:?}");
        }
    }

    #[test]
    fn parses_protocol_names_and_humantime_durations() {
        let c: TracingConfig =
            serde_yaml_ng::from_str("{ protocol: grpc, timeout: 750ms, service_name: api }")
                .unwrap();
        assert_eq!(c.protocol, OtlpProtocol::Grpc);
        assert_eq!(c.timeout, Duration::from_millis(750));
        assert_eq!(c.service_name, "api");
        let c: TracingConfig = toml::from_str("protocol = \"http/json\"").unwrap();
        assert_eq!(c.protocol, OtlpProtocol::HttpJson);
        assert_eq!(c.timeout, Duration::from_secs(5));
        let c: TracingConfig =
            serde_yaml_ng::from_str("{ otlp_endpoint: \"http://127.0.0.1:4318\" }").unwrap();
        assert_eq!(c.protocol, OtlpProtocol::HttpProtobuf, "the default");
        assert!(serde_yaml_ng::from_str::<TracingConfig>("{ protocol: http }").is_err());
        assert!(serde_yaml_ng::from_str::<TracingConfig>("{ timeout: 5 }").is_err());
    }
}
