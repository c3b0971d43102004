//! `[rbac]`, `[[rbac.bindings]]`, `[rbac.kubernetes]`, `[[tenants]]` and
//! `[audit]`: who may call the admin API, the tenants created at start-up,
//! and what the audit log records.
//!
//! ```toml
//! [rbac]
//! socket_open = false        # every local user may open the admin socket (their uid decides)
//! [[rbac.bindings]]
//! subject = "uid:1001"       # uid:<n>, gid:<n>, spiffe://..., k8s-user:<name>, k8s-group:<name>
//! role = "operator"          # viewer, operator, admin, cluster-admin
//! tenant = "payments"        # absent exactly for cluster-admin
//! [rbac.kubernetes]          # bearer tokens of Kubernetes users (TokenReview, SubjectAccessReview)
//! # kubeconfig = "/etc/meshid/kubeconfig"   # absent: in-cluster
//!
//! [[tenants]]
//! name = "payments"
//! spiffe_id_prefixes = ["spiffe://example.org/ns/payments"]
//! k8s_namespaces = ["payments"]
//! allowed_parents = ["spiffe://example.org/meshid/agent/k8s_psat/prod"]
//! federates_with = []
//!
//! [audit]
//! issuances = true           # record every issued SVID
//! checkpoint_interval = "5m" # sign the chain's head this often (when it moved)
//! ```
//!
//! Config tenants are created at start-up when missing; one that differs
//! from the stored tenant of its name stops the CA. Config bindings are
//! held in memory, never stored, and cannot be unbound over the API.

use std::path::PathBuf;
use std::time::Duration;

use meshid_identity::TrustDomain;
use serde::Deserialize;

use super::ConfigError;
use crate::store::{MAX_BINDINGS, MAX_TENANTS, Role, RoleBinding, Tenant};

/// `checkpoint_interval` unless set.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);
/// The range `checkpoint_interval` may take.
const CHECKPOINT_RANGE: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(7 * 86400));

/// The `[rbac]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RbacConfig {
    /// Make the admin socket usable by every local user (mode 0666, its
    /// directory 0755); also implied by any `uid:`/`gid:` binding.
    #[serde(default)]
    pub socket_open: bool,
    /// Role bindings held in memory (source `config`).
    #[serde(default)]
    pub bindings: Vec<BindingConfig>,
    /// `[rbac.kubernetes]`: check bearer tokens with this cluster.
    #[serde(default)]
    pub kubernetes: Option<KubeRbacConfig>,
}

/// One `[[rbac.bindings]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingConfig {
    /// `uid:<n>`, `gid:<n>`, `spiffe://...`, `k8s-user:<name>`, `k8s-group:<name>`.
    pub subject: String,
    /// `viewer`, `operator`, `admin` or `cluster-admin`.
    pub role: String,
    /// The tenant; absent exactly for `cluster-admin`.
    #[serde(default)]
    pub tenant: String,
}

/// `[rbac.kubernetes]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeRbacConfig {
    /// The kubeconfig of the CA's access; absent: the in-cluster config.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
}

/// One `[[tenants]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// 1-63 of `a-z`, `0-9`, `-`, starting with a letter.
    pub name: String,
    /// SPIFFE ID prefixes in the CA's trust domain.
    pub spiffe_id_prefixes: Vec<String>,
    /// Kubernetes namespaces of the tenant.
    #[serde(default)]
    pub k8s_namespaces: Vec<String>,
    /// Parents (or prefixes of parents) the tenant's entries may name.
    #[serde(default)]
    pub allowed_parents: Vec<String>,
    /// Trust domains the tenant's entries may federate with.
    #[serde(default)]
    pub federates_with: Vec<String>,
}

/// The `[audit]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Record every issued SVID in the audit log.
    #[serde(default = "yes")]
    pub issuances: bool,
    /// How often the chain's head is signed (when it moved).
    #[serde(
        default = "default_checkpoint_interval",
        with = "meshid_runtime::duration"
    )]
    pub checkpoint_interval: Duration,
}

fn yes() -> bool {
    true
}

fn default_checkpoint_interval() -> Duration {
    DEFAULT_CHECKPOINT_INTERVAL
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            issuances: true,
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
        }
    }
}

// === impl AuditConfig ===

impl AuditConfig {
    /// `checkpoint_interval` in range.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let (min, max) = CHECKPOINT_RANGE;
        let d = self.checkpoint_interval;
        if d < min || d > max {
            return Err(ConfigError::Invalid {
                field: "audit.checkpoint_interval",
                reason: format!(
                    "{} is out of range: use {} to {}",
                    humantime::format_duration(d),
                    humantime::format_duration(min),
                    humantime::format_duration(max)
                ),
            });
        }
        Ok(())
    }
}

// === impl RbacConfig ===

impl RbacConfig {
    /// Whether the admin socket is opened to every local user: asked for,
    /// or needed by a `uid:`/`gid:` binding.
    pub fn socket_is_open(&self) -> bool {
        self.socket_open
            || self
                .bindings
                .iter()
                .any(|b| b.subject.starts_with("uid:") || b.subject.starts_with("gid:"))
    }

    /// The bindings checked against `td` and the configured `tenants`.
    pub fn role_bindings(
        &self,
        td: &TrustDomain,
        tenants: &[TenantConfig],
    ) -> Result<Vec<RoleBinding>, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            field: "rbac.bindings",
            reason,
        };
        if self.bindings.len() > MAX_BINDINGS {
            return Err(invalid(format!(
                "{} bindings; the limit is {MAX_BINDINGS}",
                self.bindings.len()
            )));
        }
        let mut out: Vec<RoleBinding> = Vec::with_capacity(self.bindings.len());
        for b in &self.bindings {
            let subject = crate::rbac::check_subject(&b.subject, td)
                .map_err(|e| invalid(format!("subject {e}")))?;
            let role: Role = b.role.parse().map_err(|_| {
                invalid(format!(
                    "role {:?} of {subject} is not one of viewer, operator, admin, cluster-admin",
                    b.role.chars().take(64).collect::<String>()
                ))
            })?;
            match (role, b.tenant.is_empty()) {
                (Role::ClusterAdmin, false) => {
                    return Err(invalid(format!(
                        "{subject}: cluster-admin holds on every tenant; drop tenant = {:?}",
                        b.tenant
                    )));
                }
                (Role::ClusterAdmin, true) => {}
                (_, true) => {
                    return Err(invalid(format!(
                        "{subject}: role {} needs a tenant (tenant = \"...\")",
                        role.as_str()
                    )));
                }
                (_, false) => {
                    if !tenants.iter().any(|t| t.name == b.tenant) {
                        return Err(invalid(format!(
                            "{subject}: tenant {:?} is not one of the [[tenants]] of this config",
                            b.tenant
                        )));
                    }
                }
            }
            let binding = RoleBinding {
                subject,
                role,
                tenant: b.tenant.clone(),
                created_at: std::time::UNIX_EPOCH,
            };
            if !out.contains(&binding) {
                out.push(binding);
            }
        }
        Ok(out)
    }
}

// === impl TenantConfig ===

impl TenantConfig {
    /// The tenant, its meaning not checked yet (see [`tenants`]).
    pub fn tenant(&self) -> Result<Tenant, ConfigError> {
        let mut federates_with = Vec::with_capacity(self.federates_with.len());
        for raw in &self.federates_with {
            let bare = raw.strip_prefix("spiffe://").unwrap_or(raw);
            let t = TrustDomain::new(bare).map_err(|e| ConfigError::Invalid {
                field: "tenants.federates_with",
                reason: format!("tenant {}: {raw:?} is not a trust domain: {e}", self.name),
            })?;
            federates_with.push(t);
        }
        Ok(Tenant {
            name: self.name.clone(),
            spiffe_id_prefixes: self.spiffe_id_prefixes.clone(),
            k8s_namespaces: self.k8s_namespaces.clone(),
            allowed_parents: self.allowed_parents.clone(),
            federates_with,
            created_at: std::time::UNIX_EPOCH,
        })
    }
}

/// The configured tenants of `td`, each checked as the admin API checks a
/// new tenant (against the others of the config), normalized.
pub fn tenants(configured: &[TenantConfig], td: &TrustDomain) -> Result<Vec<Tenant>, ConfigError> {
    if configured.len() > MAX_TENANTS {
        return Err(ConfigError::Invalid {
            field: "tenants",
            reason: format!("{} tenants; the limit is {MAX_TENANTS}", configured.len()),
        });
    }
    let mut out: Vec<Tenant> = Vec::with_capacity(configured.len());
    for c in configured {
        if out.iter().any(|t| t.name == c.name) {
            return Err(ConfigError::Invalid {
                field: "tenants",
                reason: format!("tenant {:?} is configured twice", c.name),
            });
        }
        let tenant = crate::tenancy::check_tenant(c.tenant()?, td, &out).map_err(|e| {
            ConfigError::Invalid {
                field: "tenants",
                reason: format!(
                    "tenant {:?}: {e}",
                    c.name.chars().take(64).collect::<String>()
                ),
            }
        })?;
        out.push(tenant);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::CaConfig;

    const BASE: &str = "trust_domain = \"example.org\"\n";

    fn parse(extra: &str) -> CaConfig {
        CaConfig::from_toml(&format!("{BASE}{extra}")).unwrap()
    }

    fn td() -> TrustDomain {
        TrustDomain::new("example.org").unwrap()
    }

    const TENANT: &str = "[[tenants]]\nname = \"payments\"\n\
        spiffe_id_prefixes = [\"spiffe://example.org/ns/payments\"]\n";

    #[test]
    fn defaults_without_the_tables() {
        let cfg = parse("");
        assert_eq!(cfg.rbac, RbacConfig::default());
        assert!(cfg.tenants.is_empty());
        assert_eq!(cfg.audit, AuditConfig::default());
        assert!(cfg.audit.issuances);
        assert!(!cfg.rbac.socket_is_open());
    }

    #[test]
    fn bindings_tenants_and_audit_are_read_and_checked() {
        let cfg = parse(&format!(
            "{TENANT}[rbac]\n[[rbac.bindings]]\nsubject = \"uid:1001\"\nrole = \"operator\"\n\
             tenant = \"payments\"\n[[rbac.bindings]]\nsubject = \"k8s-group:ops\"\n\
             role = \"cluster-admin\"\n[rbac.kubernetes]\n[audit]\nissuances = false\n\
             checkpoint_interval = \"1m\"\n"
        ));
        assert!(cfg.rbac.socket_is_open());
        assert!(cfg.rbac.kubernetes.is_some());
        let b = cfg.rbac.role_bindings(&td(), &cfg.tenants).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].role, Role::Operator);
        assert_eq!(b[1].tenant, "");
        assert!(!cfg.audit.issuances);
        assert_eq!(cfg.audit.checkpoint_interval, Duration::from_secs(60));
        let t = tenants(&cfg.tenants, &td()).unwrap();
        assert_eq!(
            t[0].spiffe_id_prefixes,
            ["spiffe://example.org/ns/payments"]
        );
    }

    #[test]
    fn bad_bindings_name_the_problem() {
        for (binding, needle) in [
            (
                "subject = \"alice\"\nrole = \"viewer\"\ntenant = \"payments\"",
                "not a subject",
            ),
            (
                "subject = \"uid:1\"\nrole = \"boss\"\ntenant = \"payments\"",
                "not one of",
            ),
            ("subject = \"uid:1\"\nrole = \"viewer\"", "needs a tenant"),
            (
                "subject = \"uid:1\"\nrole = \"cluster-admin\"\ntenant = \"payments\"",
                "drop tenant",
            ),
            (
                "subject = \"uid:1\"\nrole = \"viewer\"\ntenant = \"nope\"",
                "not one of the [[tenants]]",
            ),
        ] {
            let cfg = parse(&format!("{TENANT}[[rbac.bindings]]\n{binding}\n"));
            let e = cfg
                .rbac
                .role_bindings(&td(), &cfg.tenants)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{binding}: {e}");
        }
    }

    #[test]
    fn overlapping_config_tenants_are_refused() {
        let cfg = parse(&format!(
            "{TENANT}[[tenants]]\nname = \"cards\"\n\
             spiffe_id_prefixes = [\"spiffe://example.org/ns/payments/cards\"]\n"
        ));
        let e = tenants(&cfg.tenants, &td()).unwrap_err().to_string();
        assert!(e.contains("overlaps"), "{e}");
    }

    #[test]
    fn checkpoint_interval_out_of_range_is_refused() {
        let cfg = parse("[audit]\ncheckpoint_interval = \"0s\"\n");
        let e = cfg.audit.check().unwrap_err().to_string();
        assert!(e.contains("audit.checkpoint_interval"), "{e}");
    }
}
