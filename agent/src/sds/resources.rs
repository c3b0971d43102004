//! Building Envoy `Secret`s for one caller from a snapshot.

use meshid_identity::{SpiffeId, TrustBundle};
use meshid_proto::envoy::pb::envoy::config::core::v3::{
    DataSource, TypedExtensionConfig, data_source::Specifier,
};
use meshid_proto::envoy::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, SpiffeCertValidatorConfig, TlsCertificate, secret,
    spiffe_cert_validator_config::TrustDomain as ValidatorDomain,
};
use meshid_proto::envoy::pb::google::protobuf::Any;
use prost::{Message, Name};
use std::sync::Arc;

use crate::cache::{CachedSvid, Snapshot};
use crate::workload_api::messages;

/// The caller's default (first) SVID.
pub const DEFAULT: &str = "default";
/// The own trust domain's roots as a plain validation context.
pub const ROOTCA: &str = "ROOTCA";
/// Own and federated roots through Envoy's SPIFFE certificate validator.
pub const ALL: &str = "ALL";
/// Envoy's name for its SPIFFE certificate validator extension.
pub const SPIFFE_VALIDATOR: &str = "envoy.tls.cert_validator.spiffe";

/// The secrets for `names` (all of them if `names` is empty) for a caller
/// holding `svids` (its [`View`](crate::workload_api::View)).
pub(crate) fn build(snap: &Snapshot, svids: &[Arc<CachedSvid>], names: &[String]) -> Vec<Secret> {
    let all_names;
    let names = if names.is_empty() {
        let mut v = vec![DEFAULT.to_owned()];
        v.extend(svids.iter().map(|s| s.entry.spiffe_id.as_str().to_owned()));
        v.extend([ROOTCA.to_owned(), ALL.to_owned()]);
        all_names = v;
        &all_names
    } else {
        names
    };
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        match one(snap, svids, name) {
            Some(s) => out.push(s),
            None => tracing::warn!(
                resource = %name,
                "Envoy asked for a secret this workload has no access to (or that does not exist); leaving it out"
            ),
        }
    }
    out
}

fn one(snap: &Snapshot, svids: &[Arc<CachedSvid>], name: &str) -> Option<Secret> {
    match name {
        DEFAULT => svids.first().map(|s| tls_secret(name, s)),
        ROOTCA => {
            let td = messages::own_trust_domain(snap, svids)?;
            snap.bundles.get(&td).map(|b| roots_secret(name, b))
        }
        ALL => Some(spiffe_validator_secret(
            name,
            &messages::visible_bundles(snap, svids),
        )),
        other => {
            let id = SpiffeId::parse(other).ok()?;
            if id.path().is_empty() {
                let td = id.trust_domain();
                messages::visible_bundles(snap, svids)
                    .into_iter()
                    .find(|b| b.trust_domain == td)
                    .map(|b| roots_secret(name, b))
            } else {
                svids
                    .iter()
                    .find(|s| s.entry.spiffe_id == id)
                    .map(|s| tls_secret(name, s))
            }
        }
    }
}

fn inline(bytes: Vec<u8>) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(Specifier::InlineBytes(bytes)),
        ..Default::default()
    })
}

fn tls_secret(name: &str, svid: &CachedSvid) -> Secret {
    let chain = meshid_identity::x509::to_pem(&svid.chain);
    let key = svid.key.to_pkcs8_pem();
    Secret {
        name: name.to_owned(),
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(chain.into_bytes()),
            private_key: inline(key.as_bytes().to_vec()),
            ..Default::default()
        })),
    }
}

fn roots_secret(name: &str, bundle: &TrustBundle) -> Secret {
    Secret {
        name: name.to_owned(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: inline(bundle.to_pem().into_bytes()),
                ..Default::default()
            },
        )),
    }
}

fn spiffe_validator_secret(name: &str, bundles: &[&TrustBundle]) -> Secret {
    let config = SpiffeCertValidatorConfig {
        trust_domains: bundles
            .iter()
            .filter(|b| !b.x509_authorities.is_empty())
            .map(|b| ValidatorDomain {
                name: b.trust_domain.as_str().to_owned(),
                trust_bundle: inline(b.to_pem().into_bytes()),
                ..Default::default()
            })
            .collect(),
        trust_bundles: None,
    };
    Secret {
        name: name.to_owned(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                custom_validator_config: Some(TypedExtensionConfig {
                    name: SPIFFE_VALIDATOR.to_owned(),
                    typed_config: Some(Any {
                        type_url: SpiffeCertValidatorConfig::type_url(),
                        value: config.encode_to_vec(),
                    }),
                }),
                ..Default::default()
            },
        )),
    }
}

/// Packs secrets as `Any` resources of a DiscoveryResponse.
pub(crate) fn to_any(secrets: &[Secret]) -> Vec<Any> {
    secrets
        .iter()
        .map(|s| Any {
            type_url: Secret::type_url(),
            value: s.encode_to_vec(),
        })
        .collect()
}
