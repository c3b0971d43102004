//! Checking a [`CaConfig`]: at start-up ([`CaConfig::validate`], which may
//! create the data directory) or without starting or creating anything
//! ([`CaConfig::preflight`], which also reads the upstream files).

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{CaConfig, ConfigError, UpstreamConfig, ValidConfig};

/// Longest lifetime any CA setting may have (100 years): keeps time
/// arithmetic far from overflow.
const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 86400);
use crate::keymanager::{KeyManager, MemoryKeyManager, Pkcs11KeyManager};
use crate::upstream::{Disk, Meshid, UpstreamAuthority};

// === impl CaConfig ===

impl CaConfig {
    /// Checks every setting and prepares the data directory (created with
    /// mode 0700 when missing).
    pub fn validate(self) -> Result<ValidConfig, ConfigError> {
        self.check_settings()?;
        let valid = self.resolve()?;
        check_writable(&valid.data_dir)?;
        Ok(valid)
    }

    /// Everything [`validate`](Self::validate) checks, and what start-up
    /// would find wrong in the files the config names (the upstream chain
    /// and key are read and checked at `now`) and in the token
    /// `[keys.pkcs11]` names, without creating or starting anything: a
    /// missing data directory must be creatable.
    pub fn preflight(self, now: SystemTime) -> Result<ValidConfig, ConfigError> {
        self.check_settings()?;
        let valid = self.resolve()?;
        check_creatable(&valid.data_dir)?;
        // With the CA key on a token, the token is opened (module, token
        // and PIN checked) and, with an intermediate, its key is matched
        // against the chain; nothing is generated.
        let keys: Box<dyn KeyManager> = match valid.raw.keys.token() {
            Some(token) => {
                let km = Pkcs11KeyManager::open(token, &valid.data_dir).map_err(|e| {
                    ConfigError::Invalid {
                        field: "keys.pkcs11",
                        reason: e.to_string(),
                    }
                })?;
                Box::new(km.with_signing(valid.signing()))
            }
            None => Box::new(MemoryKeyManager::new().with_signing(valid.signing())),
        };
        if let Some(up) = valid.raw.upstream.as_ref().filter(|up| up.meshid.is_none()) {
            Disk::from_config(up)
                .obtain(&valid.trust_domain, keys.as_ref(), now)
                .map_err(|e| ConfigError::Invalid {
                    field: "upstream",
                    reason: e.to_string(),
                })?;
        }
        // Below another meshid CA: its bundle file is read; nothing is contacted.
        let meshid = valid
            .raw
            .upstream
            .as_ref()
            .and_then(|up| up.meshid.as_ref());
        if let Some(m) = meshid {
            Meshid::new(m, &valid.trust_domain, &valid.data_dir).map_err(|e| {
                ConfigError::Invalid {
                    field: "upstream.meshid",
                    reason: e.to_string(),
                }
            })?;
        }
        Ok(valid)
    }

    /// Required settings present, values in range; no I/O but `stat` of
    /// the upstream files.
    pub(super) fn check_settings(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| ConfigError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        // First: with `fips = true` this loads the FIPS provider, so
        // nothing below runs without it.
        self.tls_backend
            .check(self.fips)
            .map_err(|e| ConfigError::Invalid {
                field: if self.fips { "fips" } else { "tls_backend" },
                reason: e.to_string(),
            })?;
        for (field, d) in [
            ("default_x509_ttl", self.default_x509_ttl),
            ("max_x509_ttl", self.max_x509_ttl),
            ("default_jwt_ttl", self.default_jwt_ttl),
            ("max_jwt_ttl", self.max_jwt_ttl),
            ("agent_ttl", self.agent_ttl),
            ("ca_ttl", self.ca_ttl),
        ] {
            if d.is_zero() {
                return Err(invalid(field, "must be more than zero"));
            }
            if d > MAX_TTL {
                return Err(invalid(field, "must be at most 100 years"));
            }
        }
        if self.default_x509_ttl > self.max_x509_ttl {
            return Err(invalid(
                "default_x509_ttl",
                "is longer than max_x509_ttl; lower it or raise the maximum",
            ));
        }
        if self.default_jwt_ttl > self.max_jwt_ttl {
            return Err(invalid(
                "default_jwt_ttl",
                "is longer than max_jwt_ttl; lower it or raise the maximum",
            ));
        }
        if self.ca_ttl <= self.max_x509_ttl.max(self.agent_ttl) {
            return Err(invalid(
                "ca_ttl",
                "must be longer than max_x509_ttl and agent_ttl",
            ));
        }
        self.check_admin_ids()?;
        self.check_rbac()?;
        self.check_trust_domains()?;
        self.ha.check()?;
        self.rotation.check(self.ca_ttl, self.max_jwt_ttl)?;
        self.keys.check()?;
        self.node_attestor.check()?;
        if let Some(up) = &self.upstream {
            match &up.meshid {
                Some(m) => check_meshid_upstream(up, m, self.trust_domain.as_ref())?,
                None => check_upstream(up, self.keys.token().is_some())?,
            }
        }
        if self.downstream.ca_ttl.is_zero() || self.downstream.ca_ttl > MAX_TTL {
            return Err(invalid(
                "downstream.ca_ttl",
                "must be more than zero and at most 100 years",
            ));
        }
        Ok(())
    }

    /// Admin IDs name operators' workloads in this trust domain: the node
    /// API verifies client certificates against this CA's own roots, so an
    /// ID of another trust domain could never call, and an ID in meshid's
    /// reserved space (`/meshid/...`, the CA and its agents) must never
    /// hold admin rights.
    fn check_admin_ids(&self) -> Result<(), ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            field: "admin_ids",
            reason,
        };
        for id in &self.admin_ids {
            if id.is_reserved() {
                return Err(invalid(format!(
                    "{id} is in the space meshid reserves for the CA and agents ({}); \
                     give the operator's workload its own ID, e.g. spiffe://{}/ops/admin",
                    meshid_identity::id::RESERVED_PATH,
                    id.trust_domain()
                )));
            }
            if let Some(td) = &self.trust_domain
                && !id.is_member_of(td)
            {
                return Err(invalid(format!(
                    "{id} is not in the trust domain {td}; admin callers present an SVID \
                     issued by this CA, so their IDs are in {td}"
                )));
            }
        }
        Ok(())
    }

    /// `[[tenants]]` and `[[rbac.bindings]]` mean something in this trust
    /// domain (checked again at start-up, against the stored tenants), and
    /// `[audit]` is in range.
    fn check_rbac(&self) -> Result<(), ConfigError> {
        if let Some(td) = &self.trust_domain {
            super::tenants(&self.tenants, td)?;
            self.rbac.role_bindings(td, &self.tenants)?;
        }
        self.audit.check()
    }

    /// Fills in the defaults that depend on the data directory.
    fn resolve(self) -> Result<ValidConfig, ConfigError> {
        let trust_domain = self.trust_domain.clone().ok_or(ConfigError::Invalid {
            field: "trust_domain",
            reason: "is required (e.g. trust_domain = \"example.org\" or --trust-domain)".into(),
        })?;
        let data_dir = self.data_dir.clone().ok_or(ConfigError::Invalid {
            field: "data_dir",
            reason: "is required (e.g. --data-dir /var/lib/meshid/ca)".into(),
        })?;
        let store = self
            .store
            .clone()
            .unwrap_or_else(|| crate::store::StoreUrl::sqlite_file(&data_dir.join("ca.db")));
        let admin_socket = self
            .admin_socket
            .clone()
            .unwrap_or_else(|| data_dir.join("admin.sock"));
        Ok(ValidConfig {
            trust_domain,
            data_dir,
            store,
            admin_socket,
            raw: self,
        })
    }
}

/// `[upstream.meshid]` alone: no file settings beside it.
fn check_meshid_upstream(
    up: &UpstreamConfig,
    meshid: &super::MeshidUpstreamConfig,
    td: Option<&meshid_identity::TrustDomain>,
) -> Result<(), ConfigError> {
    if up.cert_chain_file.is_some()
        || up.key_file.is_some()
        || up.root_file.is_some()
        || up.dir.is_some()
    {
        return Err(ConfigError::Invalid {
            field: "upstream.meshid",
            reason: "the intermediate comes from the upstream meshid CA: drop cert_chain_file, \
                     key_file, root_file and dir, or drop [upstream.meshid]"
                .into(),
        });
    }
    meshid.check(td)
}

/// Either a directory or the two files, and every path named exists. With
/// the key on a token, the chain file (and root file) only.
fn check_upstream(up: &UpstreamConfig, key_on_token: bool) -> Result<(), ConfigError> {
    let invalid = |field, reason: String| ConfigError::Invalid { field, reason };
    let files = up.cert_chain_file.is_some() || up.key_file.is_some() || up.root_file.is_some();
    if key_on_token {
        if up.dir.is_some() || up.key_file.is_some() || up.cert_chain_file.is_none() {
            return Err(invalid(
                "upstream",
                "with keys.manager = \"pkcs11\" the key is on the token: give cert_chain_file \
                 (optionally root_file), without key_file or dir"
                    .into(),
            ));
        }
    } else {
        match (&up.dir, files) {
            (Some(_), true) => {
                return Err(invalid(
                    "upstream.dir",
                    "names the files itself; drop cert_chain_file, key_file and root_file, or drop dir"
                        .into(),
                ));
            }
            (None, _) if up.cert_chain_file.is_none() || up.key_file.is_none() => {
                return Err(invalid(
                    "upstream",
                    "needs cert_chain_file and key_file (optionally root_file), or dir".into(),
                ));
            }
            _ => {}
        }
    }
    for (field, p) in [
        ("upstream.cert_chain_file", &up.cert_chain_file),
        ("upstream.key_file", &up.key_file),
        ("upstream.root_file", &up.root_file),
        ("upstream.dir", &up.dir),
    ] {
        if let Some(p) = p
            && let Err(e) = std::fs::metadata(p)
        {
            return Err(invalid(field, format!("{}: {e}", p.display())));
        }
    }
    Ok(())
}

fn data_dir_error(reason: String) -> ConfigError {
    ConfigError::Invalid {
        field: "data_dir",
        reason,
    }
}

/// Creates `dir` (mode 0700) if missing and proves it is writable.
fn check_writable(dir: &Path) -> Result<(), ConfigError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .map_err(|e| data_dir_error(format!("cannot create {}: {e}", dir.display())))?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    }
    probe_write(dir)
}

/// `dir` is a writable directory, or missing below a writable directory.
fn check_creatable(dir: &Path) -> Result<(), ConfigError> {
    let mut existing = dir;
    while !existing.exists() {
        match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => existing = p,
            _ => return Ok(()),
        }
    }
    probe_write(existing)
}

/// `dir` is a directory this user can create files in (a probe file is
/// written and removed).
fn probe_write(dir: &Path) -> Result<(), ConfigError> {
    if !dir.is_dir() {
        return Err(data_dir_error(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let probe = dir.join(format!(".write-test.{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        data_dir_error(format!(
            "{} is not writable by this user: {e}",
            dir.display()
        ))
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
