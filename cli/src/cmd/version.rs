//! `meshid version`: this build's version, the TLS backends compiled in
//! and, with OpenSSL, its version and whether a FIPS provider loads.
//!
//! ```text
//! meshid 0.1.0
//! tls backends: rustls (ring), openssl (OpenSSL 3.0.19 27 Jan 2026)
//! fips provider: not available
//! ```

use meshid_identity::tls::TlsBackend;

/// Arguments of `meshid version` (none).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Prints the version report to stdout.
pub fn run(_args: Args) -> anyhow::Result<()> {
    print!("{}", render());
    Ok(())
}

/// The report, one item a line.
fn render() -> String {
    let backends: Vec<String> = TlsBackend::compiled()
        .iter()
        .map(|b| describe(*b))
        .collect();
    let mut text = format!(
        "meshid {}\ntls backends: {}\n",
        env!("CARGO_PKG_VERSION"),
        backends.join(", ")
    );
    if let Some(fips) = openssl::fips_provider() {
        text.push_str(&format!("fips provider: {fips}\n"));
    }
    text
}

/// `rustls (ring)`, `openssl (OpenSSL 3.0.19 27 Jan 2026)`.
fn describe(backend: TlsBackend) -> String {
    match backend {
        TlsBackend::Rustls => "rustls (ring)".to_owned(),
        TlsBackend::Openssl => match openssl::version() {
            Some(v) => format!("openssl ({v})"),
            None => "openssl".to_owned(),
        },
    }
}

/// What only a build with the OpenSSL backend can say.
#[cfg(feature = "openssl")]
mod openssl {
    /// OpenSSL's version text.
    pub fn version() -> Option<&'static str> {
        Some(meshid_identity::openssl::version())
    }

    /// `available` when OpenSSL's "fips" provider loads, else `not available`.
    pub fn fips_provider() -> Option<&'static str> {
        Some(if meshid_identity::openssl::fips::available() {
            "available"
        } else {
            "not available"
        })
    }
}

/// Without the OpenSSL backend there is no OpenSSL to describe.
#[cfg(not(feature = "openssl"))]
mod openssl {
    /// None: OpenSSL is not compiled in.
    pub fn version() -> Option<&'static str> {
        None
    }

    /// None: no FIPS provider line without OpenSSL.
    pub fn fips_provider() -> Option<&'static str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_this_version_and_every_compiled_backend() {
        let text = render();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(format!("meshid {}", env!("CARGO_PKG_VERSION")).as_str())
        );
        let backends = lines.next().expect("a backends line");
        assert!(
            backends.starts_with("tls backends: rustls (ring)"),
            "{text}"
        );
        assert_eq!(
            backends.contains(", openssl (OpenSSL "),
            cfg!(feature = "openssl"),
            "{text}"
        );
        let fips = lines.next();
        assert_eq!(fips.is_some(), cfg!(feature = "openssl"), "{text}");
        if let Some(fips) = fips {
            assert!(
                fips == "fips provider: available" || fips == "fips provider: not available",
                "{text}"
            );
        }
        assert_eq!(lines.next(), None, "{text}");
    }
}
