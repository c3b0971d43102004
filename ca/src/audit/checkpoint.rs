//! One checkpoint: the chain's head at `seq` signed with the active X.509
//! CA key ([`sign_checkpoint`]), and its check against the trust bundle
//! ([`check_checkpoint`]): the signature by the leaf of its certificate
//! chain, that leaf a CA certificate that leads to a root of the bundle.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use meshid_identity::{TrustBundle, TrustDomain, X509Error};
use x509_parser::asn1_rs::BitString;
use x509_parser::oid_registry::{
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::AlgorithmIdentifier;

use super::chain::unix_ms;
use crate::authority::Authority;
use crate::keymanager::CaSignError;
use crate::store::{AuditCheckpoint, checkpoint_message};

/// Longest certificate chain a checkpoint may carry, in PEM bytes.
const MAX_CHAIN_PEM: usize = 64 * 1024;
/// Most certificates walked from the signing certificate to a root.
const MAX_CHAIN_CERTS: usize = 8;

/// What [`check_checkpoint`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointVerdict {
    /// Signed by a CA certificate the bundle trusts: its (seq, hash) holds.
    Valid,
    /// Its certificate does not lead to the bundle (a retired root, or not
    /// a CA certificate): not a failure, but it proves nothing.
    Untrusted(String),
    /// Its certificate is trusted but the signature does not verify: the
    /// checkpoint was edited.
    Bad(String),
}

/// Signs the chain's head (`seq`, `hash`) at `at` with `authority`'s X.509
/// CA key; the checkpoint carries the signing certificate and its chain.
pub fn sign_checkpoint(
    authority: &Authority,
    seq: i64,
    hash: [u8; 32],
    at: SystemTime,
) -> Result<AuditCheckpoint, CaSignError> {
    // Milliseconds, as stored: what is signed is what is read back.
    let at_ms = unix_ms(at).ok_or(CaSignError::Certificate(X509Error::TimeOutOfRange))?;
    let at = UNIX_EPOCH + Duration::from_millis(at_ms.unsigned_abs());
    let message = checkpoint_message(authority.trust_domain(), seq, &hash, at_ms);
    let signature = authority.material().key.sign_with(|key| {
        key.sign(&message)
            .map_err(|e| X509Error::Sign(e.to_string()))
    })?;
    let pems: Vec<pem::Pem> = authority
        .cert_chain()
        .iter()
        .map(|c| pem::Pem::new("CERTIFICATE", c.as_ref()))
        .collect();
    Ok(AuditCheckpoint {
        seq,
        hash,
        at,
        key_id: authority.x509_key_id().to_owned(),
        cert_chain_pem: pem::encode_many(&pems),
        signature,
    })
}

/// Checks `cp`'s signature for trust domain `td` against `bundle`.
pub fn check_checkpoint(
    cp: &AuditCheckpoint,
    td: &TrustDomain,
    bundle: &TrustBundle,
) -> CheckpointVerdict {
    let untrusted = |why: String| {
        CheckpointVerdict::Untrusted(format!(
            "checkpoint at {} is signed by a key the bundle no longer trusts ({why})",
            cp.seq
        ))
    };
    let ders = match chain_ders(&cp.cert_chain_pem) {
        Ok(d) => d,
        Err(why) => return untrusted(why),
    };
    let certs: Vec<X509Certificate<'_>> = match ders
        .iter()
        .map(|d| X509Certificate::from_der(d).map(|(_, c)| c))
        .collect::<Result<_, _>>()
    {
        Ok(c) => c,
        Err(e) => return untrusted(format!("unreadable certificate: {e}")),
    };
    let Some(leaf) = certs.first() else {
        return untrusted("no certificate".into());
    };
    if !is_ca(leaf) {
        return untrusted("its certificate is not a CA certificate".into());
    }
    if let Err(why) = leads_to_bundle(&certs, bundle) {
        return untrusted(why);
    }
    let Some(at_ms) = unix_ms(cp.at) else {
        return CheckpointVerdict::Bad(format!("checkpoint at {}: time out of range", cp.seq));
    };
    let message = checkpoint_message(td, cp.seq, &cp.hash, at_ms);
    if signed_by(leaf, &message, &cp.signature) {
        CheckpointVerdict::Valid
    } else {
        CheckpointVerdict::Bad(format!(
            "checkpoint at {} does not match: its signature does not verify",
            cp.seq
        ))
    }
}

/// The DER certificates of a bounded PEM chain.
fn chain_ders(text: &str) -> Result<Vec<Vec<u8>>, String> {
    if text.len() > MAX_CHAIN_PEM {
        return Err(format!(
            "certificate chain longer than {MAX_CHAIN_PEM} bytes"
        ));
    }
    let pems = pem::parse_many(text).map_err(|e| format!("unreadable PEM: {e}"))?;
    if pems.len() > MAX_CHAIN_CERTS {
        return Err(format!("more than {MAX_CHAIN_CERTS} certificates"));
    }
    Ok(pems
        .into_iter()
        .filter(|p| p.tag() == "CERTIFICATE")
        .map(pem::Pem::into_contents)
        .collect())
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    matches!(cert.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// Walks from the signing certificate through the chain's certificates
/// to a root of `bundle`, every signature checked.
fn leads_to_bundle(certs: &[X509Certificate<'_>], bundle: &TrustBundle) -> Result<(), String> {
    let roots: Vec<X509Certificate<'_>> = bundle
        .x509_authorities
        .iter()
        .filter_map(|c| X509Certificate::from_der(c).ok().map(|(_, c)| c))
        .collect();
    let mut current = &certs[0];
    for _ in 0..MAX_CHAIN_CERTS {
        let anchored = roots.iter().any(|r| {
            (r.as_raw() == current.as_raw())
                || (r.subject() == current.issuer()
                    && current.verify_signature(Some(r.public_key())).is_ok())
        });
        if anchored {
            return Ok(());
        }
        let issuer = certs.iter().find(|c| {
            c.as_raw() != current.as_raw()
                && c.subject() == current.issuer()
                && is_ca(c)
                && current.verify_signature(Some(c.public_key())).is_ok()
        });
        match issuer {
            Some(next) => current = next,
            None => break,
        }
    }
    Err("its certificate chain leads to no root of the current bundle".into())
}

/// Whether `signature` over `message` verifies with `cert`'s key, under
/// any of the algorithms a CA key signs with.
fn signed_by(cert: &X509Certificate<'_>, message: &[u8], signature: &[u8]) -> bool {
    let value = BitString {
        unused_bits: 0,
        data: Cow::Borrowed(signature),
    };
    [
        OID_SIG_ECDSA_WITH_SHA256,
        OID_SIG_ECDSA_WITH_SHA384,
        OID_PKCS1_SHA256WITHRSA,
        OID_PKCS1_SHA384WITHRSA,
        OID_PKCS1_SHA512WITHRSA,
        OID_SIG_ED25519,
    ]
    .into_iter()
    .any(|oid| {
        let alg = AlgorithmIdentifier::new(oid, None);
        x509_parser::verify::verify_signature(cert.public_key(), &alg, &value, message).is_ok()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::authority::AuthorityConfig;
    use crate::keymanager::MemoryKeyManager;
    use crate::upstream::SelfSigned;

    fn authority(dir: &std::path::Path, td: &TrustDomain) -> Authority {
        let upstream = SelfSigned::new(dir, Duration::from_secs(86400));
        Authority::new(
            AuthorityConfig::new(td.clone()),
            &upstream,
            &MemoryKeyManager::new(),
            SystemTime::now(),
        )
        .unwrap()
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_an_edited_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let td = TrustDomain::new("example.org").unwrap();
        let a = authority(dir.path(), &td);
        let cp = sign_checkpoint(&a, 12, [5; 32], SystemTime::now()).unwrap();
        assert_eq!(cp.key_id, a.x509_key_id());
        assert_eq!(
            check_checkpoint(&cp, &td, a.bundle()),
            CheckpointVerdict::Valid
        );

        for edit in [
            |c: &mut AuditCheckpoint| c.hash[0] ^= 1,
            |c: &mut AuditCheckpoint| c.seq += 1,
            |c: &mut AuditCheckpoint| c.at += Duration::from_millis(1),
            |c: &mut AuditCheckpoint| c.signature[10] ^= 1,
        ] {
            let mut forged = cp.clone();
            edit(&mut forged);
            assert!(
                matches!(
                    check_checkpoint(&forged, &td, a.bundle()),
                    CheckpointVerdict::Bad(_)
                ),
                "{forged:?}"
            );
        }
        // Another trust domain's message does not verify either.
        let other = TrustDomain::new("other.org").unwrap();
        assert!(matches!(
            check_checkpoint(&cp, &other, a.bundle()),
            CheckpointVerdict::Bad(_)
        ));
    }

    #[test]
    fn a_key_the_bundle_does_not_hold_is_untrusted_not_bad() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let td = TrustDomain::new("example.org").unwrap();
        let (a, b) = (authority(d1.path(), &td), authority(d2.path(), &td));
        let cp = sign_checkpoint(&a, 1, [1; 32], SystemTime::now()).unwrap();
        let v = check_checkpoint(&cp, &td, b.bundle());
        let CheckpointVerdict::Untrusted(why) = v else {
            panic!("{v:?}")
        };
        assert!(why.contains("no longer trusts"), "{why}");
        // A forger's own root placed in the chain does not help.
        let mut forged = sign_checkpoint(&b, 1, [1; 32], SystemTime::now()).unwrap();
        forged.cert_chain_pem.push_str(&cp.cert_chain_pem);
        assert!(matches!(
            check_checkpoint(&forged, &td, a.bundle()),
            CheckpointVerdict::Untrusted(_)
        ));
        let mut garbage = cp.clone();
        garbage.cert_chain_pem = "not pem".into();
        assert!(matches!(
            check_checkpoint(&garbage, &td, a.bundle()),
            CheckpointVerdict::Untrusted(_)
        ));
    }
}
