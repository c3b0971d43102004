//! `fetch --write DIR`: the X.509-SVIDs as PEM files that curl, openssl and
//! nginx read, named as SPIRE's `api fetch x509 -write` names them:
//!
//! | file | content | mode |
//! |---|---|---|
//! | `svid.<n>.pem` | leaf, then intermediates | 0644 |
//! | `svid.<n>.key` | the SVID's key, PKCS#8 `PRIVATE KEY` | 0600 |
//! | `bundle.<n>.pem` | roots of the SVID's trust domain | 0644 |
//! | `federated_bundle.<n>.<m>.pem` | roots of the m-th federated trust domain, sorted by name | 0644 |
//!
//! Each SVID is checked against its bundle and its key against its leaf
//! before anything is written. Every file is written to a new temporary
//! file in `DIR` and renamed into place, so readers see the old file or the
//! new one, never a torn one, and an existing symlink at a target name is
//! replaced, never written through. A missing `DIR` is created 0700.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail, ensure};
use meshid_identity::x509::{public_key_of, split_chain};
use meshid_identity::{BundleSet, PrivateKey, SpiffeId, TrustBundle, verify_x509_svid};
use meshid_proto::workload::X509svidResponse;
use rustls_pki_types::CertificateDer;

/// Mode of certificate and bundle files.
const PUBLIC: u32 = 0o644;
/// Mode of key files.
const PRIVATE: u32 = 0o600;
/// Mode of a directory `--write` creates.
const DIR_MODE: u32 = 0o700;

/// One file to write.
struct File {
    name: String,
    contents: zeroize::Zeroizing<Vec<u8>>,
    mode: u32,
}

/// Checks every SVID in `resp`, then writes all files into `dir`; returns
/// the paths written, in order.
pub(super) fn x509(dir: &Path, resp: &X509svidResponse) -> anyhow::Result<Vec<PathBuf>> {
    let files = files(resp)?;
    prepare_dir(dir)?;
    let mut written = Vec::with_capacity(files.len());
    for f in &files {
        let path = dir.join(&f.name);
        write_atomic(dir, &path, &f.contents, f.mode)
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))?;
    Ok(written)
}

/// The files for `resp`, after checking each SVID.
fn files(resp: &X509svidResponse) -> anyhow::Result<Vec<File>> {
    ensure!(
        !resp.svids.is_empty(),
        "the agent sent no X.509-SVID for this process; nothing written"
    );
    let federated: BTreeMap<&String, Vec<CertificateDer<'static>>> = resp
        .federated_bundles
        .iter()
        .map(|(td, der)| {
            certs(der)
                .with_context(|| format!("federated bundle of {td:?}"))
                .map(|c| (td, c))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut out = Vec::new();
    for (n, s) in resp.svids.iter().enumerate() {
        let what = || format!("SVID #{n} ({})", s.spiffe_id);
        let id = SpiffeId::parse(&s.spiffe_id).with_context(what)?;
        let chain = certs(&s.x509_svid).with_context(what)?;
        let roots = certs(&s.bundle).with_context(|| format!("bundle of {}", what()))?;
        let key = PrivateKey::from_pkcs8_der(s.x509_svid_key.clone())
            .with_context(|| format!("key of {}", what()))?;
        check(&id, &chain, &roots, &key).with_context(what)?;
        out.push(public(format!("svid.{n}.pem"), &chain));
        out.push(File {
            name: format!("svid.{n}.key"),
            contents: zeroize::Zeroizing::new(key.to_pkcs8_pem().as_bytes().to_vec()),
            mode: PRIVATE,
        });
        out.push(public(format!("bundle.{n}.pem"), &roots));
        for (m, roots) in federated.values().enumerate() {
            out.push(public(format!("federated_bundle.{n}.{m}.pem"), roots));
        }
    }
    Ok(out)
}

/// The chain verifies against the SVID's own bundle and names `id`; the
/// key is the leaf's.
fn check(
    id: &SpiffeId,
    chain: &[CertificateDer<'static>],
    roots: &[CertificateDer<'static>],
    key: &PrivateKey,
) -> anyhow::Result<()> {
    let mut bundle = TrustBundle::new(id.trust_domain());
    bundle.x509_authorities = roots.to_vec();
    let bundles: BundleSet = std::iter::once(bundle).collect();
    let verified = verify_x509_svid(chain, &bundles, SystemTime::now())
        .context("the chain does not verify against its bundle")?;
    ensure!(
        verified.spiffe_id == *id,
        "the certificate names {}, not {id}",
        verified.spiffe_id
    );
    let leaf = chain.first().context("empty chain")?;
    let spki = public_key_of(leaf).context("leaf certificate")?;
    ensure!(
        spki == key.public_key_der(),
        "the key does not belong to the certificate"
    );
    Ok(())
}

fn certs(der: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = split_chain(der)?;
    ensure!(!certs.is_empty(), "no certificate");
    Ok(certs)
}

fn public(name: String, certs: &[CertificateDer<'_>]) -> File {
    File {
        name,
        contents: zeroize::Zeroizing::new(meshid_identity::x509::to_pem(certs).into_bytes()),
        mode: PUBLIC,
    }
}

/// Creates `dir` (0700) if missing; refuses a path that is not a directory.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => bail!("{} exists and is not a directory", dir.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display())),
        Err(e) => Err(e).with_context(|| format!("cannot use {}", dir.display())),
    }
}

/// A new temporary file in `dir` (exclusive create, so never a symlink's
/// target) with `mode`, synced, then renamed over `path`.
fn write_atomic(dir: &Path, path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut tmp = tempfile::Builder::new()
        .prefix(".meshid-write-")
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
