//! Which files hold the intermediate: named one by one, or a directory in
//! one of the layouts PKI tooling writes, recognised by the files present.

use std::path::{Path, PathBuf};

use super::super::UpstreamError;

/// Istio's plug-in CA files: (signing cert, key, chain to the root, roots).
pub(super) const ISTIO: [&str; 4] = [
    "ca-cert.pem",
    "ca-key.pem",
    "cert-chain.pem",
    "root-cert.pem",
];
/// A Kubernetes TLS Secret as cert-manager writes it: (chain, key, roots).
pub(super) const KUBERNETES: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// The files to read, whatever layout they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Files {
    /// PEM certificates, read in order: the signing certificate first.
    pub chain: Vec<PathBuf>,
    /// The signing key.
    pub key: PathBuf,
    /// The roots, when given apart from the chain.
    pub roots: Option<PathBuf>,
}

/// Recognises the layout of `dir`: Istio's plug-in CA or a Kubernetes TLS
/// Secret. A directory with both, or with only part of one, is refused.
pub(crate) fn detect(dir: &Path) -> Result<Files, UpstreamError> {
    let listing = std::fs::read_dir(dir).map_err(|source| UpstreamError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let mut present: Vec<String> = listing
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        // Kubernetes keeps the real files under `..data` and `..<timestamp>`.
        .filter(|n| !n.starts_with(".."))
        .collect();
    present.sort();
    let has = |n: &&&str| present.iter().any(|p| p == **n);
    let istio = ISTIO.iter().filter(has).count();
    let kube = KUBERNETES.iter().filter(has).count();
    let invalid = |reason: String| UpstreamError::Invalid {
        path: dir.display().to_string(),
        reason,
    };
    let expected = format!(
        "expected either Istio's plug-in CA files ({}) or a Kubernetes TLS Secret ({})",
        ISTIO.join(", "),
        KUBERNETES.join(", ")
    );
    let found = if present.is_empty() {
        "it is empty".to_owned()
    } else {
        format!("it holds {}", present.join(", "))
    };
    let path = |n: &str| dir.join(n);
    match (istio, kube) {
        (4, 0) => Ok(Files {
            chain: vec![path(ISTIO[0]), path(ISTIO[2])],
            key: path(ISTIO[1]),
            roots: Some(path(ISTIO[3])),
        }),
        (0, 3) => Ok(Files {
            chain: vec![path(KUBERNETES[0])],
            key: path(KUBERNETES[1]),
            roots: Some(path(KUBERNETES[2])),
        }),
        (i, k) if i > 0 && k > 0 => Err(invalid(format!(
            "is ambiguous: {found}; {expected}, not files of both"
        ))),
        _ => Err(invalid(format!("is incomplete: {found}; {expected}"))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dir_with(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for n in names {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        dir
    }

    #[test]
    fn istio_and_kubernetes_layouts_are_recognised() {
        let d = dir_with(&ISTIO);
        let f = detect(d.path()).unwrap();
        assert_eq!(f.key, d.path().join("ca-key.pem"));
        assert_eq!(f.chain.len(), 2);
        let d = dir_with(&KUBERNETES);
        let f = detect(d.path()).unwrap();
        assert_eq!(f.chain, vec![d.path().join("tls.crt")]);
        assert_eq!(f.roots, Some(d.path().join("ca.crt")));
    }

    #[test]
    fn mixed_partial_and_empty_directories_are_refused() {
        let d = dir_with(&["ca-cert.pem", "tls.key"]);
        let e = detect(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("is ambiguous: it holds ca-cert.pem, tls.key"),
            "{e}"
        );
        let d = dir_with(&["tls.crt", "tls.key"]);
        let e = detect(d.path()).unwrap_err().to_string();
        assert!(
            e.contains("is incomplete: it holds tls.crt, tls.key"),
            "{e}"
        );
        assert!(e.contains("(tls.crt, tls.key, ca.crt)"), "{e}");
        let d = dir_with(&[]);
        let e = detect(d.path()).unwrap_err().to_string();
        assert!(e.contains("is incomplete: it is empty"), "{e}");
    }
}
