//! `[[trust_domains]]`: more trust domains served by the same CA process,
//! each a full, isolated CA of its own (keys, store, bundle, entries,
//! agents, admin socket, node port, ops endpoint).
//!
//! ```toml
//! [[trust_domains]]
//! trust_domain = "partner.org"
//! listen = "127.0.0.1:8444"
//! ops_listen = "127.0.0.1:8082"
//! # data_dir = "/var/lib/meshid/ca/partner.org"       # default: <data_dir>/<trust_domain>
//! # store = "postgres://meshid@db/partner"             # default: sqlite in its data_dir
//! # admin_socket = "/run/meshid/partner-admin.sock"     # default: <its data_dir>/admin.sock
//! # admin_ids = ["spiffe://partner.org/ops/admin"]
//! ```
//!
//! Every other setting comes from the top level, except: `[upstream]`
//! (another trust domain signs with a self-signed root kept in its data
//! directory), `[keys]` (its keys are on disk, never on the top level's
//! token), and `[[tenants]]` and `[rbac]` (it has no config tenants or
//! bindings: root and the CA's own uid are its cluster-admins). Nothing is
//! shared between trust domains: federation is explicit (`meshid bundle
//! set` with the other's bundle on each side).

use std::net::SocketAddr;
use std::path::PathBuf;

use meshid_identity::{SpiffeId, TrustDomain};
use serde::Deserialize;

use super::{CaConfig, ConfigError, KeysConfig, RbacConfig, ValidConfig};
use crate::store::StoreUrl;

/// Most `[[trust_domains]]` one process serves.
pub const MAX_TRUST_DOMAINS: usize = 16;

/// One `[[trust_domains]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustDomainConfig {
    /// The trust domain; different from the top level's and every other.
    pub trust_domain: TrustDomain,
    /// Its node API address (TLS).
    pub listen: SocketAddr,
    /// Its ops endpoint (`/healthz`, `/readyz`, `/metrics`).
    pub ops_listen: SocketAddr,
    /// Its data directory; default `<data_dir>/<trust_domain>`.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Its store; default `sqlite://<its data_dir>/ca.db` (never the top
    /// level's store).
    #[serde(default)]
    pub store: Option<StoreUrl>,
    /// Its admin socket; default `<its data_dir>/admin.sock`.
    #[serde(default)]
    pub admin_socket: Option<PathBuf>,
    /// SPIFFE IDs of this trust domain allowed on its admin API over mTLS.
    #[serde(default)]
    pub admin_ids: Vec<SpiffeId>,
}

// === impl CaConfig ===

impl CaConfig {
    /// The config of each `[[trust_domains]]`, as a top-level config of its
    /// own (see the module doc for what it inherits).
    fn trust_domain_configs(&self) -> Vec<CaConfig> {
        self.trust_domains
            .iter()
            .map(|td| CaConfig {
                trust_domain: Some(td.trust_domain.clone()),
                data_dir: td.data_dir.clone().or_else(|| {
                    self.data_dir
                        .as_ref()
                        .map(|d| d.join(td.trust_domain.as_str()))
                }),
                store: td.store.clone(),
                listen: td.listen,
                admin_socket: td.admin_socket.clone(),
                ops_listen: td.ops_listen,
                upstream: None,
                keys: KeysConfig::default(),
                admin_ids: td.admin_ids.clone(),
                rbac: RbacConfig::default(),
                tenants: Vec::new(),
                trust_domains: Vec::new(),
                ..self.clone()
            })
            .collect()
    }

    /// `[[trust_domains]]` are well formed: each one's settings pass as a
    /// top-level config would, and no two trust domains share a trust
    /// domain name, a listening address, a data directory, a store or an
    /// admin socket. No I/O.
    pub(super) fn check_trust_domains(&self) -> Result<(), ConfigError> {
        if self.trust_domains.is_empty() {
            return Ok(());
        }
        if self.trust_domains.len() > MAX_TRUST_DOMAINS {
            return Err(invalid(format!(
                "{} given; one process serves at most {MAX_TRUST_DOMAINS} more trust domains",
                self.trust_domains.len()
            )));
        }
        let mut all = vec![self.clone()];
        for cfg in self.trust_domain_configs() {
            let td = cfg.trust_domain.clone();
            cfg.check_settings().map_err(|e| within(td.as_ref(), e))?;
            all.push(cfg);
        }
        distinct(&all)
    }
}

// === impl ValidConfig ===

impl ValidConfig {
    /// The `[[trust_domains]]` of this config, each validated as a
    /// top-level config (its data directory created when missing).
    pub fn extra_trust_domains(&self) -> Result<Vec<ValidConfig>, ConfigError> {
        self.raw
            .trust_domain_configs()
            .into_iter()
            .map(|cfg| {
                let td = cfg.trust_domain.clone();
                cfg.validate().map_err(|e| within(td.as_ref(), e))
            })
            .collect()
    }
}

fn invalid(reason: String) -> ConfigError {
    ConfigError::Invalid {
        field: "trust_domains",
        reason,
    }
}

/// A problem of one `[[trust_domains]]`, naming it and its setting.
fn within(td: Option<&TrustDomain>, e: ConfigError) -> ConfigError {
    let td = td.map_or_else(|| "?".to_owned(), ToString::to_string);
    match e {
        ConfigError::Invalid { field, reason } => {
            invalid(format!("trust domain {td}: `{field}` {reason}"))
        }
        other => invalid(format!("trust domain {td}: {other}")),
    }
}

/// The store `c` resolves to (given, or the default in its data directory).
fn store_of(c: &CaConfig) -> Option<StoreUrl> {
    c.store.clone().or_else(|| {
        c.data_dir
            .as_ref()
            .map(|d| StoreUrl::sqlite_file(&d.join("ca.db")))
    })
}

/// The admin socket `c` resolves to.
fn socket_of(c: &CaConfig) -> Option<PathBuf> {
    c.admin_socket
        .clone()
        .or_else(|| c.data_dir.as_ref().map(|d| d.join("admin.sock")))
}

/// No two of `all` (the top level first) share what must be their own.
fn distinct(all: &[CaConfig]) -> Result<(), ConfigError> {
    let name = |c: &CaConfig| {
        c.trust_domain
            .as_ref()
            .map_or_else(|| "the top level".to_owned(), ToString::to_string)
    };
    for (i, a) in all.iter().enumerate() {
        for b in &all[..i] {
            let clash = |what: &str| {
                Err(invalid(format!(
                    "trust domains {} and {} have the same {what}; each trust domain needs its own",
                    name(b),
                    name(a)
                )))
            };
            if a.trust_domain.is_some() && a.trust_domain == b.trust_domain {
                return clash("name");
            }
            let addrs_a = [a.listen, a.ops_listen];
            let addrs_b = [b.listen, b.ops_listen];
            if addrs_a.iter().any(|x| x.port() != 0 && addrs_b.contains(x)) {
                return clash("listen or ops_listen address");
            }
            if a.data_dir.is_some() && a.data_dir == b.data_dir {
                return clash("data_dir");
            }
            if a.store.is_some() && store_of(a) == store_of(b) {
                return clash("store");
            }
            if socket_of(a).is_some() && socket_of(a) == socket_of(b) {
                return clash("admin_socket");
            }
        }
        if a.listen.port() != 0 && a.listen == a.ops_listen {
            return Err(invalid(format!(
                "trust domain {}: listen and ops_listen are the same address",
                name(a)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<CaConfig, ConfigError> {
        CaConfig::from_toml(&format!(
            "trust_domain = \"a.org\"\ndata_dir = \"/var/lib/ca\"\nlisten = \"127.0.0.1:8443\"\n\
             ops_listen = \"127.0.0.1:8081\"\n\
             [keys]\nmanager = \"disk\"\n{extra}"
        ))
    }

    fn checked(extra: &str) -> Result<(), String> {
        parse(extra)
            .map_err(|e| e.to_string())?
            .check_trust_domains()
            .map_err(|e| e.to_string())
    }

    const B: &str = "[[trust_domains]]\ntrust_domain = \"b.org\"\nlisten = \"127.0.0.1:9443\"\n\
                     ops_listen = \"127.0.0.1:9081\"\n";

    #[test]
    fn a_trust_domain_inherits_all_but_its_own_state() {
        let cfg = parse(&format!("{B}admin_ids = [\"spiffe://b.org/ops\"]\n")).unwrap();
        let extra = cfg.trust_domain_configs();
        assert_eq!(extra.len(), 1);
        let b = &extra[0];
        assert_eq!(b.trust_domain.as_ref().unwrap().as_str(), "b.org");
        assert_eq!(b.data_dir.as_deref(), Some("/var/lib/ca/b.org".as_ref()));
        assert_eq!(b.store, None);
        assert_eq!(b.admin_socket, None);
        assert_eq!(b.admin_ids.len(), 1);
        assert_eq!(b.max_x509_ttl, cfg.max_x509_ttl);
        assert!(b.trust_domains.is_empty() && b.tenants.is_empty());
        assert!(checked(B).is_ok());
    }

    #[test]
    fn clashes_and_bad_settings_are_named() {
        for (extra, hint) in [
            (B.replace("b.org", "a.org"), "same name"),
            (B.replace("9443", "8443"), "listen or ops_listen"),
            (B.replace("9081", "8443"), "listen or ops_listen"),
            (
                B.replace("9081", "9443"),
                "listen and ops_listen are the same",
            ),
            (format!("{B}data_dir = \"/var/lib/ca\"\n"), "same data_dir"),
            (
                format!("{B}admin_ids = [\"spiffe://a.org/ops\"]\n"),
                "trust domain b.org: `admin_ids`",
            ),
        ] {
            let e = checked(&extra).unwrap_err();
            assert!(e.contains(hint), "{extra}: {e}");
        }
        let e = parse(&format!("{B}upstream = {{ dir = \"/x\" }}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("upstream"), "{e}");
        let two = format!("{B}{}", B.replace("9443", "9444").replace("9081", "9082"));
        assert!(checked(&two).unwrap_err().contains("same name"));
    }
}
