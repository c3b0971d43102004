//! Printing Workload API answers for people (`text`) or scripts (`json`).

use std::time::SystemTime;

use anyhow::Context;
use meshid_proto::workload::{JwtsvidResponse, X509svidResponse};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::admin_client::Output;

/// Most certificates one concatenated-DER field is split into.
const MAX_CERTS: usize = 64;

/// One certificate of a chain, summarized.
struct CertSummary {
    id: Option<String>,
    not_after: Option<SystemTime>,
}

/// An X509SVIDResponse: IDs, expiry, chain and bundle summaries.
pub(super) fn x509(resp: &X509svidResponse, output: Output) -> anyhow::Result<String> {
    let mut svids = vec![];
    for s in &resp.svids {
        let chain = summarize(&s.x509_svid).context("the X.509-SVID chain is not DER")?;
        let roots = split_der(&s.bundle).context("the bundle is not DER")?.len();
        svids.push((s, chain, roots));
    }
    let mut federated: Vec<(&String, usize)> = resp
        .federated_bundles
        .iter()
        .map(|(td, der)| (td, split_der(der).map(|v| v.len()).unwrap_or(0)))
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
    Ok(split_der(concat)?
        .into_iter()
        .map(|der| CertSummary {
            id: meshid_identity::x509::spiffe_id_of(der)
                .ok()
                .map(|id| id.as_str().to_owned()),
            not_after: meshid_identity::x509::not_after(der).ok(),
        })
        .collect())
}

/// Splits concatenated DER certificates (each a SEQUENCE) apart.
pub(super) fn split_der(mut rest: &[u8]) -> anyhow::Result<Vec<&[u8]>> {
    let mut out = vec![];
    while !rest.is_empty() {
        anyhow::ensure!(out.len() < MAX_CERTS, "more than {MAX_CERTS} certificates");
        let len = der_len(rest).context("truncated or malformed DER certificate")?;
        let (cert, tail) = rest.split_at(len);
        out.push(cert);
        rest = tail;
    }
    Ok(out)
}

/// Total length (header + content) of the DER SEQUENCE at the start.
fn der_len(b: &[u8]) -> Option<usize> {
    if *b.first()? != 0x30 {
        return None;
    }
    let first = *b.get(1)? as usize;
    let (header, content) = if first < 0x80 {
        (2, first)
    } else {
        let n = first & 0x7f;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (2 + n, len)
    };
    let total = header.checked_add(content)?;
    (total <= b.len()).then_some(total)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_concatenated_der_and_refuses_garbage() {
        let short = [0x30, 0x03, 1, 2, 3];
        let long = {
            let mut v = vec![0x30, 0x81, 0x80];
            v.extend(std::iter::repeat_n(7u8, 0x80));
            v
        };
        let both: Vec<u8> = short.iter().chain(long.iter()).copied().collect();
        let parts = split_der(&both).unwrap_or_default();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].len(), 0x83);
        assert!(split_der(&[0x30, 0x05, 1]).is_err());
        assert!(split_der(&[0x02, 0x01, 0]).is_err());
    }
}
