//! Start-up checks of an upstream chain: order it from the signing
//! certificate to its root, then refuse anything agents could not verify,
//! each problem with its own message naming the file and the fix. The
//! final word is the shared verifier ([`verify_x509_svid`]): a probe SVID
//! signed with the key must verify against the roots, so signatures and
//! RFC 5280 name constraints (applied to `spiffe://<trust domain>/…`) are
//! checked exactly as agents check them.

use std::time::{Duration, SystemTime};

use meshid_identity::x509::sign_svid;
use meshid_identity::{
    BundleSet, PrivateKey, SvidError, SvidTemplate, TrustBundle, TrustDomain, verify_x509_svid,
};

use super::super::UpstreamError;
use super::cert::ChainCert;
use crate::keymanager::CaKey;

/// The probe SVID's path: reserved, so no entry can ever hold it.
const PROBE_PATH: &str = "/meshid/ca/upstream-check";

/// A chain in issuing order: the signing certificate, the CAs above it,
/// and the roots (the one that anchors the chain first).
#[derive(Debug)]
pub(crate) struct Ordered {
    pub path: Vec<ChainCert>,
    pub roots: Vec<ChainCert>,
}

fn invalid(path: &str, reason: String) -> UpstreamError {
    UpstreamError::Invalid {
        path: path.to_owned(),
        reason,
    }
}

/// Orders `chain` (signing certificate first, the rest in any order, the
/// roots possibly included) up to a root of `roots` (or of the chain when
/// no root file is given). `roots_file` names the root file for messages.
pub(crate) fn order(
    chain: Vec<ChainCert>,
    mut roots: Vec<ChainCert>,
    roots_file: Option<&str>,
) -> Result<Ordered, UpstreamError> {
    let mut rest = chain.into_iter();
    let Some(signing) = rest.next() else {
        return Err(invalid("upstream", "no certificate was given".into()));
    };
    let mut others = Vec::new();
    for c in rest {
        if c.der == signing.der || others.iter().any(|o: &ChainCert| o.der == c.der) {
            continue; // Istio repeats ca-cert.pem at the top of cert-chain.pem.
        }
        if !c.self_issued() {
            others.push(c);
        } else if roots_file.is_none() {
            roots.push(c);
        } else if !roots.iter().any(|r| r.der == c.der) {
            return Err(invalid(
                &c.file,
                format!(
                    "{} is a root that is not in the root file {}; put the chain's root there \
                     or remove it from the chain",
                    c.describe(),
                    roots_file.unwrap_or_default()
                ),
            ));
        }
    }
    if signing.self_issued() && roots.is_empty() {
        // A self-signed root used directly: it is its own anchor.
        roots.push(signing.clone());
    }
    let mut path = vec![signing];
    let mut used = vec![false; others.len()];
    while let Some(top) = path.last().filter(|t| !t.self_issued()) {
        if let Some(i) = roots.iter().position(|r| top.named_issuer(r)) {
            roots.swap(0, i);
            break;
        }
        let next = (0..others.len()).find(|&i| !used[i] && top.named_issuer(&others[i]));
        let Some(i) = next else {
            return Err(missing_issuer(top, &roots, roots_file));
        };
        used[i] = true;
        path.push(others[i].clone());
    }
    if let Some(i) = used.iter().position(|u| !u) {
        let c = &others[i];
        return Err(invalid(
            &c.file,
            format!(
                "the chain does not link: {} neither issued nor was issued by the other \
                 certificates on the path from the signing certificate to its root; remove it \
                 or supply the certificates that connect it",
                c.describe()
            ),
        ));
    }
    Ok(Ordered { path, roots })
}

fn missing_issuer(top: &ChainCert, roots: &[ChainCert], roots_file: Option<&str>) -> UpstreamError {
    if roots.is_empty() {
        return invalid(
            &top.file,
            format!(
                "no root was given: the chain ends with {}, which is not a root; an intermediate \
                 must not become the trust bundle, so give the enterprise root with `root_file` \
                 (or append it to the chain, or use a directory layout with its root file)",
                top.describe()
            ),
        );
    }
    invalid(
        &top.file,
        format!(
            "{} was issued by a CA that is neither in the chain nor among the roots in {}: a \
             middle CA is missing from the chain (add it), or the root given is not this \
             chain's anchor (give the root that issued it)",
            top.describe(),
            roots_file.unwrap_or(&top.file)
        ),
    )
}

impl Ordered {
    /// Every rule agents apply, at `now`, for SVIDs of `td` signed with `key`.
    pub fn check(
        &self,
        td: &TrustDomain,
        key: &CaKey,
        key_file: &str,
        now: SystemTime,
        min_remaining: Duration,
    ) -> Result<(), UpstreamError> {
        let signing = &self.path[0];
        if signing.spki != key.public_key_der() {
            return Err(invalid(
                key_file,
                format!(
                    "the key does not match the signing {}; give the key it was issued for",
                    signing.describe()
                ),
            ));
        }
        for (below, c) in all_certs(self).enumerate() {
            check_one(c, below, now)?;
        }
        warn_if_expiring(all_certs(self), now, min_remaining);
        self.probe(td, key, now)
    }

    /// Signs a throw-away SVID and verifies it as an agent would.
    fn probe(&self, td: &TrustDomain, key: &CaKey, now: SystemTime) -> Result<(), UpstreamError> {
        let signing = &self.path[0];
        let fail = |reason: String| invalid(&signing.file, reason);
        let id = td
            .id_with_path(PROBE_PATH)
            .map_err(|e| fail(e.to_string()))?;
        let leaf_key = PrivateKey::generate_p256().map_err(|e| fail(e.to_string()))?;
        let template = SvidTemplate {
            spiffe_id: id,
            dns_names: Vec::new(),
            not_before: now,
            not_after: (now + Duration::from_secs(60)).min(signing.not_after),
        };
        let leaf = key
            .sign_with(|k| sign_svid(&template, &leaf_key.public_key_der(), &signing.der, &k))
            .map_err(|e| fail(format!("cannot sign with this certificate and key: {e}")))?;
        let mut chain = vec![leaf];
        chain.extend(self.path.iter().map(|c| c.der.clone()));
        let mut bundle = TrustBundle::new(td.clone());
        bundle.x509_authorities = self.roots.iter().map(|r| r.der.clone()).collect();
        let bundles: BundleSet = [bundle].into_iter().collect();
        verify_x509_svid(&chain, &bundles, now)
            .map(|_| ())
            .map_err(|e| self.explain(td, e))
    }

    /// Turns a verifier error into a message naming the certificate.
    fn explain(&self, td: &TrustDomain, e: SvidError) -> UpstreamError {
        let at = |pos: usize| {
            pos.checked_sub(1)
                .and_then(|i| self.path.get(i).or(self.roots.first()))
                .unwrap_or(&self.path[0])
        };
        match e {
            SvidError::NameExcluded { ca, .. } | SvidError::NameNotPermitted { ca, .. } => {
                let c = at(ca);
                invalid(
                    &c.file,
                    format!(
                        "the nameConstraints of {} exclude this trust domain's SPIFFE IDs \
                         (spiffe://{td}/…): {e}; ask the PKI team for an intermediate whose \
                         constraints permit URI:{td}",
                        c.describe()
                    ),
                )
            }
            SvidError::BadSignature => invalid(
                &self.path[0].file,
                "a signature in the chain does not verify: a certificate was not signed by \
                 the certificate named as its issuer (is the root given this chain's anchor, \
                 or a different CA with the same name?)"
                    .into(),
            ),
            other => invalid(
                &self.path[0].file,
                format!("SVIDs signed with this chain would not verify: {other}"),
            ),
        }
    }
}

/// The signing certificate, the CAs above it and the anchoring root.
fn all_certs(o: &Ordered) -> impl Iterator<Item = &ChainCert> {
    o.path.iter().chain(o.roots.first())
}

/// Warns when the first certificate of `certs` to expire has less than
/// `min_remaining` left at `now`: it names the file, the certificate, its
/// notAfter and what to do.
fn warn_if_expiring<'a>(
    certs: impl Iterator<Item = &'a ChainCert>,
    now: SystemTime,
    min_remaining: Duration,
) {
    let Some(first) = certs.min_by_key(|c| c.not_after) else {
        return;
    };
    let Ok(left) = first.not_after.duration_since(now) else {
        return; // expired: check_one refuses it
    };
    if left >= min_remaining {
        return;
    }
    let format = meshid_runtime::duration::format;
    tracing::warn!(
        file = %first.file,
        certificate = %first.subject,
        not_after = %humantime::format_rfc3339_seconds(first.not_after),
        remaining = %format(Duration::from_secs(left.as_secs())),
        min_remaining = %format(min_remaining),
        "the upstream CA chain expires soon: renew it before not_after (have the PKI team \
         issue a new intermediate and replace the files), or the CA stops issuing; \
         upstream.min_remaining sets when this warning starts"
    );
}

/// CA, keyCertSign, pathLen and validity of `c`, which has `below`
/// intermediates under it on the path to a leaf.
fn check_one(c: &ChainCert, below: usize, now: SystemTime) -> Result<(), UpstreamError> {
    let fail = |reason: String| invalid(&c.file, format!("{} {reason}", c.describe()));
    if !c.ca {
        return Err(fail(
            "is not a CA (needs basicConstraints CA:true); the PKI team must issue a CA certificate"
                .into(),
        ));
    }
    if !c.cert_sign {
        return Err(fail(
            "lacks keyUsage keyCertSign, so it may not sign certificates; reissue it with keyCertSign"
                .into(),
        ));
    }
    if let Some(n) = c.path_len
        && usize::try_from(n).is_ok_and(|n| below > n)
    {
        return Err(fail(format!(
            "has pathLenConstraint {n}, which forbids the {below} CA(s) below it on the path to \
             our SVIDs; reissue it with a larger pathlen or sign the intermediate directly"
        )));
    }
    if now < c.not_before {
        return Err(fail(format!(
            "is not valid yet (notBefore {}); check the clock or wait",
            humantime::format_rfc3339_seconds(c.not_before)
        )));
    }
    if now >= c.not_after {
        return Err(fail(format!(
            "has expired (notAfter {}); renew it",
            humantime::format_rfc3339_seconds(c.not_after)
        )));
    }
    Ok(())
}
