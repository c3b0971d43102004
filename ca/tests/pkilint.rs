//! Every kind of certificate meshid issues passes pkilint's RFC 5280 linter
//! (`lint_pkix_cert`, PyPI `pkilint`) with no finding of WARNING or worse.
//!
//! The certificates come from the real code paths: a CA started in-process
//! with its self-signed root, its serving certificate as a TLS client sees
//! it, agent and workload SVIDs from its `Authority`, and an intermediate
//! from the identity crate's signing-certificate template.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use meshid_ca::authority::X509SvidSpec;
use meshid_ca::node_attestor::join_token;
use meshid_identity::x509::{self, CaTemplate, self_signed_ca, sign_ca};
use meshid_identity::{PrivateKey, SpiffeId};
use rustls::pki_types::CertificateDer;

#[path = "support/server.rs"]
mod server;

use server::TD;

/// A pkilint tool: `lint_pkix_cert` is `$MESHID_TEST_PKILINT`, else the one
/// in the test venv that `scripts/test` fills; the other tools sit beside it.
/// Missing is a failure, never a skip.
fn pkilint(tool: &str) -> PathBuf {
    let cert_linter = std::env::var_os("MESHID_TEST_PKILINT").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-venv/bin/lint_pkix_cert"),
        PathBuf::from,
    );
    let bin = cert_linter.with_file_name(tool);
    assert!(
        bin.is_file(),
        "pkilint not found at {}; run ./scripts/test (it installs it) or \
         `target/test-venv/bin/pip install pkilint`, or set MESHID_TEST_PKILINT",
        bin.display()
    );
    bin
}

/// Lints `cert` alone and, given its issuer, the issuer/subject pair.
/// Returns the WARNING-or-worse findings, minus the one false positive.
fn lint(
    dir: &Path,
    name: &str,
    cert: &CertificateDer<'_>,
    issuer: Option<&CertificateDer<'_>>,
) -> Vec<String> {
    let write = |file: String, c: &CertificateDer<'_>| {
        let path = dir.join(file);
        std::fs::write(&path, x509::to_pem(std::slice::from_ref(c))).unwrap();
        path
    };
    let subject = write(format!("{name}.pem"), cert);
    let id = x509::spiffe_id_of(cert).unwrap();
    let mut findings = run("lint_pkix_cert", std::slice::from_ref(&subject), &id);
    if let Some(issuer) = issuer {
        let issuer = write(format!("{name}-issuer.pem"), issuer);
        findings.extend(run(
            "lint_pkix_signer_signee_cert_chain",
            &[issuer, subject],
            &id,
        ));
    }
    findings
}

/// Runs one pkilint tool on `files`; `id` is the subject's SPIFFE ID.
fn run(tool: &str, files: &[PathBuf], id: &SpiffeId) -> Vec<String> {
    let out = Command::new(pkilint(tool))
        .args(["lint", "-s", "WARNING", "-f", "JSON"])
        .args(files)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{tool} gave no JSON for {files:?} ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    // pkilint checks URIs with the `validators` package's URL rule, which
    // knows only web schemes and so calls every `spiffe://` ID invalid. Drop
    // exactly that finding, and only for the subject's own SPIFFE ID (which
    // x509::spiffe_id_of parsed under the SPIFFE-ID rules).
    let false_positive = format!("Invalid URI syntax: \"{id}\"");
    let mut findings = Vec::new();
    for result in report["results"].as_array().unwrap() {
        let node = result["node_path"].as_str().unwrap_or("");
        for f in result["finding_descriptions"].as_array().unwrap() {
            let code = f["code"].as_str().unwrap_or("");
            let message = f["message"].as_str().unwrap_or("");
            let is_spiffe_uri = code == "pkix.invalid_uri_syntax"
                && node.ends_with("subjectAltName.0.uniformResourceIdentifier")
                && message == false_positive;
            if !is_spiffe_uri {
                let severity = &f["severity"];
                findings.push(format!("{tool}: {severity} {code} at {node}: {message}"));
            }
        }
    }
    findings
}

/// An intermediate from the signing-certificate template, under a root
/// from the same template (meshid's CA signs no intermediates itself today).
/// Returns (root, intermediate).
fn intermediate(now: SystemTime) -> (CertificateDer<'static>, CertificateDer<'static>) {
    let ca = |cn: &str, path_len| CaTemplate {
        trust_domain: TD.parse().unwrap(),
        common_name: cn.into(),
        not_before: now,
        not_after: now + Duration::from_secs(86_400),
        path_len,
    };
    let root_key = PrivateKey::generate_p256().unwrap().key_pair().unwrap();
    let root = self_signed_ca(&ca("meshid root CA", Some(1)), &root_key).unwrap();
    let key = PrivateKey::generate_p256().unwrap();
    let inter = sign_ca(
        &ca("meshid intermediate CA", Some(0)),
        &key.public_key_der(),
        &root,
        &root_key,
    )
    .unwrap();
    (root, inter)
}

#[tokio::test]
async fn every_certificate_kind_meshid_issues_passes_pkilint() {
    let dir = tempfile::tempdir().unwrap();
    let ca = server::start(server::config(&dir.path().join("ca"))).await;
    let now = SystemTime::now();
    let authority = ca.authority.load();
    let key = PrivateKey::generate_p256().unwrap().public_key_der();

    let agent_id = join_token::agent_id(authority.trust_domain(), "0123456789abcdef").unwrap();
    let agent = authority.sign_agent_svid(&agent_id, &key, now).unwrap();
    let workload = |dns: &[String]| {
        let id = SpiffeId::parse("spiffe://example.org/ns/payments/sa/api").unwrap();
        let spec = X509SvidSpec {
            spiffe_id: &id,
            dns_names: dns,
            public_key_der: &key,
            requested_ttl: Duration::ZERO,
            entry_ttl: Duration::ZERO,
        };
        authority.sign_x509_svid(&spec, now).unwrap().chain[0].clone()
    };
    let dns = [
        "api.payments.example.org".to_string(),
        "api.payments.svc".to_string(),
    ];
    let root = authority.bundle().x509_authorities[0].clone();
    let (template_root, inter) = intermediate(now);
    // (name, certificate, its issuer)
    let certs = [
        ("root", root.clone(), None),
        ("intermediate", inter, Some(template_root)),
        (
            "ca-serving",
            server::serving_chain(&ca).await.remove(0),
            Some(root.clone()),
        ),
        ("agent-svid", agent.chain[0].clone(), Some(root.clone())),
        ("workload-svid", workload(&[]), Some(root.clone())),
        ("workload-svid-dns", workload(&dns), Some(root.clone())),
    ];

    let mut failures = Vec::new();
    for (name, cert, issuer) in &certs {
        for finding in lint(dir.path(), name, cert, issuer.as_ref()) {
            failures.push(format!("{name}: {finding}"));
        }
    }
    assert!(
        failures.is_empty(),
        "pkilint findings:\n{}",
        failures.join("\n")
    );
    ca.shutdown().await.unwrap();
}
