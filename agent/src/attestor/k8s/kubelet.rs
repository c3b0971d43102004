//! The kubelet's `GET /pods` on its secure port: HTTPS (hyper 1 over
//! tokio-rustls), the kubelet's certificate verified against
//! `kubelet_ca_path` (re-read for every connection, so a rotated CA is
//! picked up) unless `skip_kubelet_verification`, a bearer token re-read
//! for every request, [`REQUEST_TIMEOUT`] for the whole exchange and at
//! most [`MAX_BODY`] of answer. One connection per request: the cache
//! asks at most about once per `cache_ttl`.

mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

use super::K8sAttestorConfig;
use super::cache::PodSource;
use super::error::K8sError;
use super::pods::PodList;
use tls::Tls;

/// Bound on connect, handshake, request and the whole answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest pod list accepted (a node's 110 pods take well under 1 MiB).
pub const MAX_BODY: usize = 32 * 1024 * 1024;
/// Largest token file read.
const MAX_TOKEN_LEN: u64 = 64 * 1024;
/// How much of a failed answer goes into the error.
const ERROR_BODY_LEN: usize = 200;

/// The kubelet's `host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// Port (443 when the URL has none).
    pub port: u16,
}

/// A client of one kubelet.
#[derive(Debug)]
pub struct KubeletClient {
    endpoint: Endpoint,
    server_name: ServerName<'static>,
    tls: Arc<Tls>,
    token_path: PathBuf,
    timeout: Duration,
}

// === impl Endpoint ===

impl Endpoint {
    /// `url` (`https://host[:port][/]`), with its host replaced by
    /// `host_override` if given.
    pub fn parse(url: &str, host_override: Option<&str>) -> Result<Self, String> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!(
                "{url:?} must be https://host:port (the kubelet's secure port, usually 10250)"
            ));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!("{url:?} must have no path or query"));
        }
        let Some(authority) = uri.authority() else {
            return Err(format!("{url:?} has no host"));
        };
        if authority.as_str().contains('@') {
            return Err(format!("{url:?} must not carry credentials"));
        }
        let host = match host_override {
            Some(h) => h.trim_start_matches('[').trim_end_matches(']'),
            None => authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']'),
        };
        if host.is_empty() || ServerName::try_from(host).is_err() {
            return Err(format!("{host:?} is not a host name or IP address"));
        }
        Ok(Self {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(443),
        })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

// === impl KubeletClient ===

impl KubeletClient {
    /// A client for `config`: reads `kubelet_host_env` now; the CA and
    /// the token are read at each request.
    pub fn new(config: &K8sAttestorConfig) -> Result<Self, K8sError> {
        let invalid = |field, reason| K8sError::Config { field, reason };
        config.check().map_err(|(f, r)| invalid(f, r))?;
        let host = match &config.kubelet_host_env {
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(v),
                _ => {
                    return Err(invalid(
                        "kubelet_host_env",
                        format!(
                            "environment variable {var} is not set (set it from the pod's status.hostIP with the downward API)"
                        ),
                    ));
                }
            },
            None => None,
        };
        let endpoint = Endpoint::parse(&config.kubelet_url, host.as_deref())
            .map_err(|r| invalid("kubelet_host_env", r))?;
        let name = config
            .kubelet_tls_server_name
            .clone()
            .unwrap_or_else(|| endpoint.host.clone());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|_| invalid("kubelet_tls_server_name", format!("{name:?} is not a name")))?;
        let tls = if config.skip_kubelet_verification {
            Tls::skip().map_err(|e| invalid("skip_kubelet_verification", e))?
        } else {
            Tls::verify(config.kubelet_ca_path.clone())
        };
        Ok(Self {
            endpoint,
            server_name,
            tls: Arc::new(tls),
            token_path: config.token_path.clone(),
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// The kubelet this client calls.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Bounds the whole request by `timeout` instead of [`REQUEST_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks now that the CA (unless skipped) and the token can be read,
    /// for `meshid agent validate`.
    pub fn check_files(&self) -> Result<(), K8sError> {
        self.tls.config()?;
        read_token(&self.token_path)?;
        Ok(())
    }

    /// `GET /pods`.
    pub async fn pods(&self) -> Result<PodList, K8sError> {
        let timeout = K8sError::Timeout {
            endpoint: self.endpoint.to_string(),
            timeout: self.timeout,
        };
        tokio::time::timeout(self.timeout, self.fetch())
            .await
            .unwrap_or(Err(timeout))
    }

    async fn fetch(&self) -> Result<PodList, K8sError> {
        let endpoint = self.endpoint.to_string();
        let (tls, token) = {
            let (tls, token_path) = (self.tls.clone(), self.token_path.clone());
            tokio::task::spawn_blocking(move || {
                Ok::<_, K8sError>((tls.config()?, read_token(&token_path)?))
            })
            .await
            .map_err(|e| K8sError::Connect {
                endpoint: endpoint.clone(),
                reason: e.to_string(),
            })??
        };
        let connect = |reason: String| K8sError::Connect {
            endpoint: endpoint.clone(),
            reason,
        };
        let tcp = tokio::net::TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port))
            .await
            .map_err(|e| connect(e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                let reason = e.to_string();
                match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(_) => K8sError::Tls {
                        endpoint: endpoint.clone(),
                        reason,
                    },
                    None => connect(reason),
                }
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| connect(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = hyper::Request::get("/pods")
            .header(hyper::header::HOST, endpoint.as_str())
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| connect(e.to_string()))?;
        let result = self.exchange(&mut sender, request).await;
        driver.abort();
        result
    }

    async fn exchange(
        &self,
        sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
        request: hyper::Request<Empty<Bytes>>,
    ) -> Result<PodList, K8sError> {
        let endpoint = self.endpoint.to_string();
        let body_error = |reason: String| K8sError::Body {
            endpoint: endpoint.clone(),
            reason,
        };
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| K8sError::Connect {
                endpoint: endpoint.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    body_error(format!("larger than {MAX_BODY} bytes"))
                } else {
                    body_error(e.to_string())
                }
            })?
            .to_bytes();
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_LEN)])
                .trim()
                .to_owned();
            let status = status.as_u16();
            return Err(if matches!(status, 401 | 403) {
                K8sError::Unauthorized {
                    endpoint,
                    status,
                    body: text,
                }
            } else {
                K8sError::Status {
                    endpoint,
                    status,
                    body: text,
                }
            });
        }
        serde_json::from_slice(&body).map_err(|e| body_error(format!("not a PodList: {e}")))
    }
}

#[async_trait::async_trait]
impl PodSource for KubeletClient {
    async fn pods(&self) -> Result<PodList, K8sError> {
        KubeletClient::pods(self).await
    }
}

/// The bearer token, whitespace trimmed.
fn read_token(path: &Path) -> Result<String, K8sError> {
    let err = |reason: String| K8sError::Token {
        path: path.to_owned(),
        reason,
    };
    let text =
        meshid_runtime::fs::read_to_string(path, MAX_TOKEN_LEN).map_err(|e| err(e.to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(err("is empty".into()));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(err("holds characters a bearer token cannot have".into()));
    }
    Ok(token.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_https_host_port_with_an_optional_host_override() {
        let e = Endpoint::parse("https://127.0.0.1:10250", None).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 10250));
        assert_eq!(e.to_string(), "127.0.0.1:10250");
        let e = Endpoint::parse("https://127.0.0.1:10250/", Some("10.0.0.7")).unwrap();
        assert_eq!(e.to_string(), "10.0.0.7:10250");
        let e = Endpoint::parse("https://[::1]:10250", None).unwrap();
        assert_eq!(
            (e.host.as_str(), e.to_string()),
            ("::1", "[::1]:10250".into())
        );
        let e = Endpoint::parse("https://node-1.example", Some("fd00::7")).unwrap();
        assert_eq!(e.to_string(), "[fd00::7]:443");
        for (bad, says) in [
            ("http://127.0.0.1:10250", "https"),
            ("127.0.0.1:10250", "https"),
            ("https://127.0.0.1:10250/pods", "no path"),
            ("https://127.0.0.1:10250/?a=b", "no path"),
            ("https://user@127.0.0.1:10250", "credentials"),
            ("not a url", "not a URL"),
        ] {
            let err = Endpoint::parse(bad, None).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn tokens_are_trimmed_and_must_be_printable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc.def\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "abc.def");
        std::fs::write(&path, "abc\r\ndef").unwrap();
        assert!(
            read_token(&path)
                .unwrap_err()
                .to_string()
                .contains("cannot have")
        );
        std::fs::write(&path, "").unwrap();
        assert!(read_token(&path).unwrap_err().to_string().contains("empty"));
    }
}
