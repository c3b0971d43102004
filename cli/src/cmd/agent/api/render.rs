//! Printing Workload API answers for people (`text`) or scripts (`json`).

use std::time::SystemTime;

use anyhow::Context;
use meshid_identity::x509::split_chain;
use meshid_proto::workload::{JwtsvidResponse, X509svidResponse};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::admin_client::Output;

/// One certificate of a chain, summarized.
struct CertSummary {
    id: Option<String>,
    not_after: Option<SystemTime>,
}

/// An X509SVIDResponse: IDs, expiry, chain and bundle summaries.
pub(super) fn x509(resp: &X509svidResponse, output: Output) -> anyhow::Result<String> {
    let mut svids = vec![];
    for s in &resp.svids {
        let chain =
            summarize(&s.x509_svid).context("the X.509-SVID chain is not DER certificates")?;
        let roots = split_chain(&s.bundle)
            .context("the bundle is not DER certificates")?
            .len();
        svids.push((s, chain, roots));
    }
    let mut federated: Vec<(&String, usize)> = resp
        .federated_bundles
        .iter()
        .map(|(td, der)| (td, split_chain(der).map(|v| v.len()).unwrap_or(0)))
        .collect();
    federated.sort();
    match output {
        Output::Json => {
            let svids: Vec<_> = svids
                .iter()
                .map(|(s, chain, roots)| {
                    json!({
                        "spiffe_id": s.spiffe_id,
                        "hint": s.hint,
                        "expires_at": chain.first().and_then(|c| c.not_after).map(rfc3339),
                        "chain": chain.iter().map(|c| json!({
                            "uri_san": c.id,
                            "not_after": c.not_after.map(rfc3339),
                        })).collect::<Vec<_>>(),
                        "bundle_roots": roots,
                    })
                })
                .collect();
            let fed: serde_json::Map<_, _> = federated
                .iter()
                .map(|(td, n)| ((*td).clone(), json!({ "roots": n })))
                .collect();
            Ok(serde_json::to_string_pretty(
                &json!({ "svids": svids, "federated_bundles": fed }),
            )?)
        }
        Output::Text => {
            let mut out = String::new();
            for (i, (s, chain, roots)) in svids.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out += &format!("SPIFFE ID:  {}\n", s.spiffe_id);
                if !s.hint.is_empty() {
                    out += &format!("Hint:       {}\n", s.hint);
                }
                if let Some(t) = chain.first().and_then(|c| c.not_after) {
                    out += &format!("Expires:    {} ({})\n", rfc3339(t), remaining(t));
                }
                out += &format!("Chain:      {} certificate(s)\n", chain.len());
                for (n, c) in chain.iter().enumerate() {
                    out += &format!(
                        "  [{n}] {}  not after {}\n",
                        c.id.as_deref().unwrap_or("(no SPIFFE ID)"),
                        c.not_after.map(rfc3339).unwrap_or_else(|| "?".into())
                    );
                }
                out += &format!("Bundle:     {roots} root(s)\n");
            }
            for (td, n) in &federated {
                out += &format!("Federated:  {td} ({n} root(s))\n");
            }
            Ok(out.trim_end().to_owned())
        }
    }
}

/// A JWTSVIDResponse: one line per token (text) or a JSON document.
pub(super) fn jwt(resp: &JwtsvidResponse, output: Output) -> anyhow::Result<String> {
    match output {
        Output::Json => {
            let svids: Vec<_> = resp
                .svids
                .iter()
                .map(|s| json!({ "spiffe_id": s.spiffe_id, "hint": s.hint, "token": s.svid }))
                .collect();
            Ok(serde_json::to_string_pretty(&json!({ "svids": svids }))?)
        }
        Output::Text => Ok(resp
            .svids
            .iter()
            .map(|s| format!("SPIFFE ID:  {}\nToken:      {}", s.spiffe_id, s.svid))
            .collect::<Vec<_>>()
            .join("\n\n")),
    }
}

fn summarize(concat: &[u8]) -> anyhow::Result<Vec<CertSummary>> {
    Ok(split_chain(concat)?
        .iter()
        .map(|der| CertSummary {
            id: meshid_identity::x509::spiffe_id_of(der)
                .ok()
                .map(|id| id.as_str().to_owned()),
            not_after: meshid_identity::x509::not_after(der).ok(),
        })
        .collect())
}

fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "?".into())
}

fn remaining(t: SystemTime) -> String {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => {
            let s = d.as_secs();
            format!("in {}h{:02}m", s / 3600, (s % 3600) / 60)
        }
        Err(_) => "EXPIRED".into(),
    }
}
