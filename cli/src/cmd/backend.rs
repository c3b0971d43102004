//! `--tls-backend`: the one flag, shared by `ca serve`, `agent run`,
//! `proxy run` and `up`, that picks the TLS library of a component over its
//! config file's `tls_backend`.

use meshid_identity::tls::TlsBackend;

/// The `--tls-backend` flag, flattened into each command's arguments.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct BackendFlag {
    /// TLS library of this component (the CA also signs with it): `rustls`
    /// (ring) or `openssl` (needs a meshid built with `--features
    /// openssl`). Overrides `tls_backend` in the config file.
    #[arg(long, value_enum, value_name = "BACKEND")]
    pub tls_backend: Option<BackendArg>,
}

/// The values `--tls-backend` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// rustls with the ring crypto provider (the default).
    Rustls,
    /// OpenSSL through the `openssl` crate (`--features openssl`).
    Openssl,
}

impl BackendFlag {
    /// The backend asked for on the command line, if any.
    pub fn get(self) -> Option<TlsBackend> {
        self.tls_backend.map(TlsBackend::from)
    }
}

impl From<BackendArg> for TlsBackend {
    fn from(a: BackendArg) -> Self {
        match a {
            BackendArg::Rustls => TlsBackend::Rustls,
            BackendArg::Openssl => TlsBackend::Openssl,
        }
    }
}

/// The backend as the `validate` summaries print it: `rustls`, `openssl`,
/// or `openssl with the FIPS provider` (`fips = true`).
pub fn describe(backend: TlsBackend, fips: bool) -> String {
    if fips {
        format!("{backend} with the FIPS provider")
    } else {
        backend.to_string()
    }
}
