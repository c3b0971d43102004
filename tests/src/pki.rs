//! An enterprise PKI made with the real `openssl` CLI in a temp dir: roots
//! and CA certificates with the extensions PKI teams set (pathlen,
//! nameConstraints), keys in the formats they export.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

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
    /// lines, e.g. `basicConstraints=critical,CA:TRUE,pathlen:0`), valid
    /// from now for 20 days.
    pub fn ca(&self, name: &str, issuer: &str, alg: Alg, extensions: &str) {
        let (csr, _) = self.request(name, alg, extensions);
        self.sign(name, &csr, issuer, extensions);
    }

    /// Signs the request `csr` (made elsewhere, e.g. by `meshid ca csr`)
    /// with `issuer`, as `openssl x509 -req` does for a PKI team: the CA
    /// certificate `name` with `extensions`, valid from now for 20 days.
    pub fn sign(&self, name: &str, csr: &Path, issuer: &str, extensions: &str) {
        let ext = self.extfile(name, extensions);
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

    /// [`ca`](Self::ca) valid from `not_before` to `not_after` (whole
    /// seconds), signed with `openssl ca`: OpenSSL 3.0's `x509 -req` only
    /// counts days from now, so expired and not-yet-valid CAs need it.
    pub fn ca_between(
        &self,
        name: &str,
        issuer: &str,
        alg: Alg,
        extensions: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) {
        let (csr, ext) = self.request(name, alg, extensions);
        let path = |suffix: &str| self.dir.join(format!("{name}.{suffix}"));
        let (db, serial, certs, conf) = (
            path("index"),
            path("serial"),
            path("newcerts"),
            path("ca.cnf"),
        );
        write(&db, "");
        write(&serial, "1234ABCD\n");
        std::fs::create_dir_all(&certs)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", certs.display()));
        write(
            &conf,
            &format!(
                "[ca]\ndefault_ca = mesh\n[mesh]\ndatabase = {db}\nserial = {serial}\n\
                 new_certs_dir = {certs}\ndefault_md = sha256\npolicy = any\n\
                 unique_subject = no\nemail_in_dn = no\n\
                 [any]\norganizationName = optional\ncommonName = supplied\n",
                db = db.display(),
                serial = serial.display(),
                certs = certs.display(),
            ),
        );
        openssl([
            "ca",
            "-batch",
            "-notext",
            "-config",
            &conf.display().to_string(),
            "-cert",
            &self.cert(issuer).display().to_string(),
            "-keyfile",
            &self.key(issuer).display().to_string(),
            "-in",
            &csr.display().to_string(),
            "-startdate",
            &asn1_time(not_before),
            "-enddate",
            &asn1_time(not_after),
            "-extfile",
            &ext.display().to_string(),
            "-extensions",
            "v3",
            "-out",
            &self.cert(name).display().to_string(),
        ]);
    }

    /// A key and CSR for `name` and the extension file for its certificate.
    fn request(&self, name: &str, alg: Alg, extensions: &str) -> (PathBuf, PathBuf) {
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
        (csr, self.extfile(name, extensions))
    }

    /// The `[v3]` extension file for the certificate `name`.
    fn extfile(&self, name: &str, extensions: &str) -> PathBuf {
        let ext = self.dir.join(format!("{name}.ext"));
        write(
            &ext,
            &format!(
                "[v3]\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n{extensions}\n"
            ),
        );
        ext
    }

    /// Writes the RSA-4096 root made once per test process (RSA-4096 key
    /// generation takes seconds) as `name`. Its subject is
    /// `O=Example Corp, CN=enterprise-root-rsa-4096` whatever `name` is.
    pub fn rsa_4096_root(&self, name: &str) {
        static ROOT: OnceLock<(String, String)> = OnceLock::new();
        let (cert, key) = ROOT.get_or_init(|| {
            let tmp = crate::tempdir();
            let made = Pki::new(tmp.path());
            let root = "enterprise-root-rsa-4096";
            made.root(root, Alg::Rsa(4096));
            (read(&made.cert(root)), read(&made.key(root)))
        });
        write(&self.cert(name), cert);
        write(&self.key(name), key);
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

    /// Points the files a CA's `[upstream]` watches (`key.pem`, `chain.pem`
    /// and `root.pem` in [`dir`](Self::dir)) at intermediate `mesh` under
    /// `root`, each file renamed over the old one (key first, then chain,
    /// as an operator replacing a Secret's files would).
    pub fn install(&self, mesh: &str, root: &str) {
        for (file, from) in [
            ("root.pem", self.cert(root)),
            ("key.pem", self.key(mesh)),
            ("chain.pem", self.cert(mesh)),
        ] {
            let path = self.dir.join(file);
            let tmp = path.with_extension("tmp");
            write(&tmp, &read(&from));
            std::fs::rename(&tmp, &path)
                .unwrap_or_else(|e| panic!("rename {}: {e}", tmp.display()));
        }
    }

    /// The CA config's `[upstream]` section on the files [`install`]
    /// writes, polled every `watch_interval` (e.g. `"200ms"`).
    ///
    /// [`install`]: Self::install
    pub fn upstream_config(&self, watch_interval: &str) -> String {
        let show = |n: &str| self.dir.join(n).display().to_string();
        format!(
            "[upstream]\ncert_chain_file = {:?}\nkey_file = {:?}\nroot_file = {:?}\n\
             watch_interval = {watch_interval:?}\n",
            show("chain.pem"),
            show("key.pem"),
            show("root.pem"),
        )
    }

    /// Concatenates the certificates `names` into `file`.
    pub fn bundle(&self, file: &str, names: &[&str]) -> PathBuf {
        let text: String = names.iter().map(|n| read(&self.cert(n))).collect();
        let path = self.dir.join(file);
        write(&path, &text);
        path
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// `t` as `openssl ca -startdate` takes it: GeneralizedTime, `YYYYMMDDHHMMSSZ`
/// (UTC; times before 1970 are clamped to the epoch).
fn asn1_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (the proleptic Gregorian
    // calendar in 400-year eras of 146,097 days).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}Z",
        rem / 3_600,
        rem % 3_600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn asn1_time_is_generalized_time() {
        let at = |secs| asn1_time(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "19700101000000Z");
        assert_eq!(at(1_700_000_000), "20231114221320Z");
        assert_eq!(at(951_782_400), "20000229000000Z"); // a leap day
        assert_eq!(at(4_102_444_799), "20991231235959Z");
    }

    #[test]
    fn ca_between_sets_both_dates() {
        let tmp = crate::tempdir();
        let pki = Pki::new(tmp.path());
        pki.root("root", Alg::P256);
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let end = start + Duration::from_secs(86_400);
        pki.ca_between(
            "old",
            "root",
            Alg::P256,
            "basicConstraints=critical,CA:TRUE",
            start,
            end,
        );
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-dates", "-subject", "-in"])
            .arg(pki.cert("old"))
            .output()
            .unwrap_or_else(|e| panic!("openssl: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("notBefore=Nov 14 22:13:20 2023 GMT"),
            "{text}"
        );
        assert!(text.contains("notAfter=Nov 15 22:13:20 2023 GMT"), "{text}");
        assert!(text.contains("O = Example Corp, CN = old"), "{text}");
    }
}
