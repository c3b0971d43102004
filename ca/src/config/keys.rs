//! `[keys]`: where the CA's signing keys live. `manager = "disk"` (the
//! default) keeps them in the data directory; `manager = "pkcs11"` puts the
//! X.509 CA key on a PKCS#11 token (`[keys.pkcs11]`), while the JWT-SVID key
//! stays in the data directory (JWT signing needs the key in memory).
//!
//! ```toml
//! [keys]
//! manager = "pkcs11"
//! [keys.pkcs11]
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token_label = "meshid"            # or slot = 0
//! pin_file = "/etc/meshid/hsm.pin"  # or pin_env = "MESHID_HSM_PIN"
//! key_label = "meshid-x509-ca"
//! key_type = "ec-p256"              # ec-p384, rsa-2048, rsa-3072, rsa-4096
//! sessions = 4
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;

/// The key label used when `key_label` is not set.
pub const DEFAULT_KEY_LABEL: &str = "meshid-x509-ca";
/// Sessions opened on the token unless `sessions` says otherwise.
pub const DEFAULT_SESSIONS: usize = 4;
/// Most sessions `sessions` may ask for.
pub const MAX_SESSIONS: usize = 64;

/// The `[keys]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// Which key manager holds the X.509 CA key.
    #[serde(default)]
    pub manager: KeyManagerKind,
    /// The token, when `manager = "pkcs11"`.
    pub pkcs11: Option<Pkcs11Config>,
}

/// `keys.manager`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum KeyManagerKind {
    /// PKCS#8 files (mode 0600) in the data directory.
    #[default]
    Disk,
    /// The X.509 CA key on a PKCS#11 token.
    Pkcs11,
}

/// The type of a key generated on the token (and expected of one found).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub enum KeyType {
    /// ECDSA on P-256, signing with SHA-256.
    #[default]
    #[serde(rename = "ec-p256")]
    EcP256,
    /// ECDSA on P-384, signing with SHA-384.
    #[serde(rename = "ec-p384")]
    EcP384,
    /// RSA 2048, PKCS#1 v1.5 with SHA-256.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA 3072, PKCS#1 v1.5 with SHA-256.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA 4096, PKCS#1 v1.5 with SHA-256.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

impl KeyType {
    /// Every key type, in the order the docs list them.
    pub const ALL: [Self; 5] = [
        Self::EcP256,
        Self::EcP384,
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
    ];

    /// The name used in the config (`ec-p256`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::EcP256 => "ec-p256",
            Self::EcP384 => "ec-p384",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
        }
    }

    /// The RSA modulus size, `None` for EC keys.
    pub fn rsa_bits(self) -> Option<u64> {
        match self {
            Self::EcP256 | Self::EcP384 => None,
            Self::Rsa2048 => Some(2048),
            Self::Rsa3072 => Some(3072),
            Self::Rsa4096 => Some(4096),
        }
    }
}

impl std::str::FromStr for KeyType {
    type Err = String;

    /// A name of [`KeyType::name`].
    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "{name:?} is not a key type; use one of {}",
                    names.join(", ")
                )
            })
    }
}

/// `[keys.pkcs11]`: the module, the token, its PIN and the key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module (a shared library).
    pub module: PathBuf,
    /// The token, by label.
    pub token_label: Option<String>,
    /// The token, by slot ID.
    pub slot: Option<u64>,
    /// A file holding the user PIN (trailing newline ignored; mode 0600
    /// advised). The PIN is never taken from the command line.
    pub pin_file: Option<PathBuf>,
    /// An environment variable holding the user PIN.
    pub pin_env: Option<String>,
    /// CKA_LABEL of the CA key pair.
    #[serde(default = "default_key_label")]
    pub key_label: String,
    /// The key type to generate, and to expect of a key found.
    #[serde(default)]
    pub key_type: KeyType,
    /// Sessions kept logged in, so that many signatures run at once.
    #[serde(default = "default_sessions")]
    pub sessions: usize,
}

fn default_key_label() -> String {
    DEFAULT_KEY_LABEL.to_owned()
}

fn default_sessions() -> usize {
    DEFAULT_SESSIONS
}

// === impl KeysConfig ===

impl KeysConfig {
    /// The token settings when the X.509 CA key is on a token.
    pub fn token(&self) -> Option<&Pkcs11Config> {
        match self.manager {
            KeyManagerKind::Pkcs11 => self.pkcs11.as_ref(),
            KeyManagerKind::Disk => None,
        }
    }

    /// The table is complete and consistent (part of
    /// [`CaConfig::validate`](super::CaConfig::validate)).
    pub fn check(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| ConfigError::Invalid {
            field,
            reason: reason.to_owned(),
        };
        let p = match (self.manager, &self.pkcs11) {
            (KeyManagerKind::Disk, Some(_)) => {
                return Err(invalid(
                    "keys.pkcs11",
                    "is set but keys.manager is \"disk\"; set manager = \"pkcs11\" or drop [keys.pkcs11]",
                ));
            }
            (KeyManagerKind::Disk, None) => return Ok(()),
            (KeyManagerKind::Pkcs11, None) => {
                return Err(invalid(
                    "keys.pkcs11",
                    "is required with manager = \"pkcs11\" (module, token_label or slot, pin_file or pin_env)",
                ));
            }
            (KeyManagerKind::Pkcs11, Some(p)) => p,
        };
        match (&p.token_label, p.slot) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "keys.pkcs11.slot",
                    "and token_label both name the token; keep one",
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "keys.pkcs11.token_label",
                    "or slot is required to name the token",
                ));
            }
            (Some(l), None) if l.is_empty() || l.len() > 32 => {
                return Err(invalid(
                    "keys.pkcs11.token_label",
                    "must be 1 to 32 bytes (a PKCS#11 token label)",
                ));
            }
            _ => {}
        }
        match (&p.pin_file, &p.pin_env) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "keys.pkcs11.pin_env",
                    "and pin_file both give the PIN; keep one",
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "keys.pkcs11.pin_file",
                    "or pin_env is required: the PIN is read from a file or an environment variable, never from the command line",
                ));
            }
            _ => {}
        }
        if p.key_label.is_empty() || p.key_label.len() > 64 {
            return Err(invalid("keys.pkcs11.key_label", "must be 1 to 64 bytes"));
        }
        if p.sessions == 0 || p.sessions > MAX_SESSIONS {
            return Err(ConfigError::Invalid {
                field: "keys.pkcs11.sessions",
                reason: format!("must be 1 to {MAX_SESSIONS}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::CaConfig;
    use super::*;

    fn check(toml: &str) -> Result<KeysConfig, String> {
        let c = CaConfig::from_toml(toml).map_err(|e| e.to_string())?;
        c.keys.check().map_err(|e| e.to_string())?;
        Ok(c.keys)
    }

    #[test]
    fn a_full_pkcs11_table_parses_with_defaults() {
        let k = check(
            "[keys]\nmanager = \"pkcs11\"\n[keys.pkcs11]\nmodule = \"/m.so\"\ntoken_label = \"meshid\"\npin_env = \"PIN\"\nkey_type = \"rsa-3072\"\n",
        )
        .unwrap();
        let p = k.token().unwrap();
        assert_eq!(p.key_label, DEFAULT_KEY_LABEL);
        assert_eq!(p.key_type, KeyType::Rsa3072);
        assert_eq!(p.key_type.rsa_bits(), Some(3072));
        assert_eq!(p.sessions, DEFAULT_SESSIONS);
        for k in KeyType::ALL {
            assert_eq!(k.name().parse::<KeyType>(), Ok(k));
        }
        assert!(
            "ec-p521"
                .parse::<KeyType>()
                .unwrap_err()
                .contains("rsa-4096")
        );
        assert!(check("").unwrap().token().is_none());
    }

    #[test]
    fn inconsistent_tables_name_the_setting() {
        let base = "[keys]\nmanager = \"pkcs11\"\n[keys.pkcs11]\nmodule = \"/m.so\"\n";
        for (extra, want) in [
            ("pin_env = \"P\"\n", "keys.pkcs11.token_label"),
            (
                "token_label = \"t\"\nslot = 1\npin_env = \"P\"\n",
                "keys.pkcs11.slot",
            ),
            ("token_label = \"t\"\n", "keys.pkcs11.pin_file"),
            (
                "token_label = \"t\"\npin_env = \"P\"\npin_file = \"/p\"\n",
                "keys.pkcs11.pin_env",
            ),
            (
                "token_label = \"t\"\npin_env = \"P\"\nsessions = 0\n",
                "keys.pkcs11.sessions",
            ),
        ] {
            let e = check(&format!("{base}{extra}")).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
        let e = check("[keys]\nmanager = \"pkcs11\"\n").unwrap_err();
        assert!(e.contains("keys.pkcs11"), "{e}");
        let e = check("[keys.pkcs11]\nmodule = \"/m.so\"\n").unwrap_err();
        assert!(e.contains("manager is \"disk\""), "{e}");
        let e = check("[keys]\nmanager = \"pkcs11\"\n[keys.pkcs11]\nmodule = \"/m\"\ntoken_label = \"t\"\npin_env = \"P\"\nkey_type = \"ec-p521\"\n").unwrap_err();
        assert!(e.contains("ec-p521"), "{e}");
    }
}
