//! An enterprise PKI made with the real `openssl` CLI in a temp dir: roots
//! and CA certificates with the extensions PKI teams set (pathlen,
//! nameConstraints), keys in the formats they export.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The key algorithm of a CA.
#[derive(Debug, Clone, Copy)]
pub enum Alg {
    /// ECDSA on P-256.
    P256,
    /// ECDSA on P-384.
    P384,
    /// RSA with this many bits.
    Rsa(u32),
}

/// A directory where `openssl` writes `<name>.pem` and `<name>.key`.
#[derive(Debug)]
pub struct Pki {
    /// Where the files are.
    pub dir: PathBuf,
}

/// Runs `openssl` with `args`; panics with its stderr on failure.
pub fn openssl<I, S>(args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A PKI writing its files into `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The certificate file of `name`.
    pub fn cert(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    /// The private key file of `name`.
    pub fn key(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    fn newkey(alg: Alg) -> Vec<String> {
        match alg {
            Alg::P256 => vec![
                "-newkey".into(),
                "ec".into(),
                "-pkeyopt".into(),
                "ec_paramgen_curve:P-256".into(),
            ],
            Alg::P384 => vec![
                "-newkey".into(),
                "ec".into(),
                "-pkeyopt".into(),
                "ec_paramgen_curve:P-384".into(),
            ],
            Alg::Rsa(bits) => vec!["-newkey".into(), format!("rsa:{bits}")],
        }
    }

    /// A self-signed root `name` (CA:true, keyCertSign, cRLSign).
    pub fn root(&self, name: &str, alg: Alg) {
        let mut args: Vec<String> =
            vec!["req".into(), "-x509".into(), "-new".into(), "-nodes".into()];
        args.extend(Self::newkey(alg));
        args.extend(
            [
                "-keyout",
                &self.key(name).display().to_string(),
                "-out",
                &self.cert(name).display().to_string(),
                "-subj",
                &format!("/O=Example Corp/CN={name}"),
                "-days",
                "30",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]
            .map(String::from),
        );
        openssl(args);
    }

    /// A CA `name` issued by `issuer`, with `extensions` (OpenSSL config
    /// lines, e.g. `basicConstraints=critical,CA:TRUE,pathlen:0`).
    pub fn ca(&self, name: &str, issuer: &str, alg: Alg, extensions: &str) {
        let csr = self.dir.join(format!("{name}.csr"));
        let mut args: Vec<String> = vec!["req".into(), "-new".into(), "-nodes".into()];
        args.extend(Self::newkey(alg));
        args.extend(
            [
                "-keyout",
                &self.key(name).display().to_string(),
                "-out",
                &csr.display().to_string(),
                "-subj",
                &format!("/O=Example Corp/CN={name}"),
            ]
            .map(String::from),
        );
        openssl(args);
        let ext = self.dir.join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!(
                "[v3]\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n{extensions}\n"
            ),
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", ext.display()));
        openssl([
            "x509",
            "-req",
            "-in",
            &csr.display().to_string(),
            "-CA",
            &self.cert(issuer).display().to_string(),
            "-CAkey",
            &self.key(issuer).display().to_string(),
            "-set_serial",
            "0x1234abcd",
            "-days",
            "20",
            "-extfile",
            &ext.display().to_string(),
            "-extensions",
            "v3",
            "-out",
            &self.cert(name).display().to_string(),
        ]);
    }

    /// The usual mesh intermediate extensions, plus `extra` lines.
    pub fn mesh_ca(&self, name: &str, issuer: &str, alg: Alg, extra: &str) {
        self.ca(
            name,
            issuer,
            alg,
            &format!("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n{extra}"),
        );
    }

    /// Rewrites `name.key` in the traditional format (SEC1 for EC, PKCS#1 for RSA).
    pub fn traditional_key(&self, name: &str) {
        let key = self.key(name).display().to_string();
        let tmp = format!("{key}.traditional");
        openssl(["pkey", "-in", &key, "-traditional", "-out", &tmp]);
        std::fs::rename(&tmp, &key).unwrap_or_else(|e| panic!("rename {tmp}: {e}"));
    }

    /// Concatenates the certificates `names` into `file`.
    pub fn bundle(&self, file: &str, names: &[&str]) -> PathBuf {
        let text: String = names
            .iter()
            .map(|n| {
                let cert = self.cert(n);
                std::fs::read_to_string(&cert)
                    .unwrap_or_else(|e| panic!("read {}: {e}", cert.display()))
            })
            .collect();
        let path = self.dir.join(file);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}
