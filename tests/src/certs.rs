//! What a TLS server presents and what its certificates say, read with the
//! real `openssl` CLI: the chain a proxy or Envoy serves right now, a
//! certificate's AuthorityKeyIdentifier and serial.

use std::path::Path;

use meshid_identity::x509::pem_certs;

use crate::Cmd;

/// The certificate chain (leaf first, DER) that `127.0.0.1:port` presents
/// in a TLS handshake (`openssl s_client -showcerts`); empty if none came.
/// The server may then refuse us for having no client certificate: the
/// chain has been sent by then.
pub fn served_chain(port: u16) -> Vec<Vec<u8>> {
    let out = Cmd::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-showcerts"])
        .output();
    let text = String::from_utf8_lossy(&out.stdout);
    pem_blocks(&text)
}

/// The certificates (DER, in order) of a PEM file; panics if it cannot be
/// read or holds anything else.
pub fn read_pem(path: &Path) -> Vec<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    pem_certs(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|c| c.to_vec())
        .collect()
}

/// The CERTIFICATE blocks of a text that also holds other lines.
fn pem_blocks(text: &str) -> Vec<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    const END: &str = "-----END CERTIFICATE-----";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        let Some(len) = rest[start..].find(END) else {
            break;
        };
        let block = &rest[start..start + len + END.len()];
        if let Ok(certs) = pem_certs(block) {
            blocks.extend(certs.into_iter().map(|c| c.to_vec()));
        }
        rest = &rest[start + len + END.len()..];
    }
    blocks
}

/// The keyIdentifier of a certificate's AuthorityKeyIdentifier as
/// lowercase hex (as `meshid ca rotation show` prints key IDs), read by
/// `openssl x509` from a scratch file in `dir`.
pub fn authority_key_id(der: &[u8], dir: &Path) -> Option<String> {
    key_id_extension(der, dir, "authorityKeyIdentifier")
}

/// A CA certificate's SubjectKeyIdentifier as lowercase hex: what the
/// leaves it signs carry as their AKI.
pub fn subject_key_id(der: &[u8], dir: &Path) -> Option<String> {
    key_id_extension(der, dir, "subjectKeyIdentifier")
}

fn key_id_extension(der: &[u8], dir: &Path, extension: &str) -> Option<String> {
    let file = dir.join(format!("key-id-{}.der", std::process::id()));
    std::fs::write(&file, der).ok()?;
    let out = Cmd::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-ext", extension, "-in"])
        .args([&file])
        .output();
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .lines()
        .nth(1)?
        .trim()
        .trim_start_matches("keyid:")
        .replace(':', "")
        .to_ascii_lowercase();
    (!hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

/// The SQL (SQLite and PostgreSQL alike) listing the signing key of every
/// issuance record of `serial`, one line each (empty for none recorded).
pub fn issuance_query(serial: &str) -> String {
    assert!(
        !serial.is_empty() && serial.chars().all(|c| c.is_ascii_hexdigit()),
        "not a serial: {serial:?}"
    );
    format!("SELECT COALESCE(ca_key_id, '') FROM issuances WHERE serial = '{serial}'")
}

/// A certificate's serial as lowercase hex, as the CA records it.
pub fn serial(der: &[u8]) -> String {
    meshid_identity::x509::serial_of(der).unwrap_or_else(|e| panic!("not a certificate: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aki_of_an_openssl_made_intermediate_is_its_roots_key_id() {
        let dir = crate::tempdir();
        let pki = crate::Pki::new(dir.path());
        pki.root("root", crate::Alg::P256);
        pki.mesh_ca("mesh", "root", crate::Alg::P256, "");
        let text = std::fs::read_to_string(pki.cert("mesh")).unwrap_or_default();
        let blocks = pem_blocks(&format!("noise\n{text}\nmore noise\n"));
        assert_eq!(blocks.len(), 1);
        let aki = authority_key_id(&blocks[0], dir.path())
            .unwrap_or_else(|| panic!("no AKI in an openssl intermediate"));
        // openssl's default subjectKeyIdentifier is the SHA-1 of the key: 20 bytes.
        assert_eq!(aki.len(), 40, "{aki}");
        let root = std::fs::read_to_string(pki.cert("root")).unwrap_or_default();
        let root = pem_blocks(&root).remove(0);
        assert_eq!(subject_key_id(&root, dir.path()), Some(aki));
        assert!(!serial(&blocks[0]).is_empty());
    }
}
