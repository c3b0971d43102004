//! The adversarial table: each bad certificate is refused by both TLS
//! backends, as server and as client, with the same reason label; the
//! valid ones pass on both. Every pairing runs on loopback: rustls and
//! OpenSSL on the verifying side, rustls and OpenSSL on the presenting side.
//!
//! The side that was refused must see the same label too, whichever backend
//! refused it (both send the alert rustls sends).
#![cfg(feature = "openssl")]

#[path = "backend_table/openssl_features.rs"]
mod openssl_features;
#[path = "backend_table/support.rs"]
mod support;

use meshid_identity::openssl::{ClientAuth, ContextOptions};
use meshid_identity::tls::PeerMatch;
use support::{
    BOTH, Backend, Ca, HOUR, Svid, bundles, ca_leaf, client, crafted, id, intermediate, now, root,
    run, san, server, svid, td,
};

/// Who checks the case's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The server checks the client's certificate.
    Server,
    /// The client checks the server's certificate.
    Client,
}

struct Case {
    name: &'static str,
    /// The certificate the presenting side offers.
    cert: Svid,
    /// What the checking side accepts.
    accepts: PeerMatch,
    /// `Ok` or the checking side's reason label.
    expect: Result<(), &'static str>,
}

struct Pki {
    root: Ca,
    inter: Ca,
    partner: Ca,
}

fn expected() -> PeerMatch {
    PeerMatch::OneOf(vec![id("spiffe://example.org/expected")])
}

fn cases(pki: &Pki) -> Vec<Case> {
    let foreign = root("example.org", "foreign root");
    let forged = root("example.org", "example.org root");
    let elsewhere = root("elsewhere.org", "elsewhere root");
    let ok = |name, cert| Case {
        name,
        cert,
        accepts: expected(),
        expect: Ok(()),
    };
    let bad = |name, cert, expect| Case {
        name,
        cert,
        accepts: expected(),
        expect: Err(expect),
    };
    vec![
        ok(
            "valid, leaf + intermediate (bundle holds the root only)",
            svid(&pki.inter, "spiffe://example.org/expected", &[&pki.inter]),
        ),
        ok(
            "valid, directly under the root",
            svid(&pki.root, "spiffe://example.org/expected", &[]),
        ),
        bad(
            "foreign CA",
            svid(&foreign, "spiffe://example.org/expected", &[]),
            "unknown_issuer",
        ),
        bad(
            "forged issuer (the root's name, another key)",
            svid(&forged, "spiffe://example.org/expected", &[]),
            "bad_signature",
        ),
        bad(
            "two URI SANs",
            crafted(&pki.root, |p| {
                p.subject_alt_names.push(san("spiffe://example.org/other"));
            }),
            "invalid_cert",
        ),
        bad("CA leaf", crafted(&pki.root, ca_leaf), "invalid_cert"),
        bad(
            "expired",
            crafted(&pki.root, |p| {
                p.not_before = (now() - 3 * HOUR).into();
                p.not_after = (now() - HOUR).into();
            }),
            "cert_expired",
        ),
        bad(
            "not yet valid",
            crafted(&pki.root, |p| {
                p.not_before = (now() + HOUR).into();
                p.not_after = (now() + 3 * HOUR).into();
            }),
            "cert_not_yet_valid",
        ),
        bad(
            "wrong trust domain, no bundle for it",
            svid(&elsewhere, "spiffe://elsewhere.org/expected", &[]),
            "unknown_issuer",
        ),
        Case {
            name: "wrong trust domain, federated but not accepted",
            cert: svid(&pki.partner, "spiffe://partner.org/expected", &[]),
            accepts: PeerMatch::TrustDomain(td("example.org")),
            expect: Err("peer_id_mismatch"),
        },
        bad(
            "wrong ID",
            svid(&pki.root, "spiffe://example.org/impostor", &[]),
            "peer_id_mismatch",
        ),
    ]
}

#[tokio::test]
async fn both_backends_decide_every_case_alike_as_server_and_as_client() {
    let ours = root("example.org", "example.org root");
    let pki = Pki {
        inter: intermediate(&ours, "example.org", "example.org intermediate"),
        root: ours,
        partner: root("partner.org", "partner root"),
    };
    let set = bundles(&[("example.org", &pki.root), ("partner.org", &pki.partner)]);
    let good_server = svid(&pki.root, "spiffe://example.org/server", &[]);
    let good_client = svid(&pki.root, "spiffe://example.org/client", &[]);
    let opts = ContextOptions {
        resumption: false,
        ..ContextOptions::default()
    };

    let mut table = Vec::new();
    let mut failures = Vec::new();
    for case in cases(&pki) {
        for role in [Role::Server, Role::Client] {
            // The refused side's label, per presenting backend, must not
            // depend on which backend refused it.
            let mut refused_seen: Vec<(Backend, Backend, &'static str)> = Vec::new();
            for checker in BOTH {
                for presenter in BOTH {
                    let (srv_backend, cli_backend) = match role {
                        Role::Server => (checker, presenter),
                        Role::Client => (presenter, checker),
                    };
                    let (srv, cli) = match role {
                        Role::Server => (
                            server(
                                srv_backend,
                                &good_server,
                                &set,
                                case.accepts.clone(),
                                &opts,
                                ClientAuth::Required,
                            ),
                            client(cli_backend, Some(&case.cert), &set, PeerMatch::Any, &opts),
                        ),
                        Role::Client => (
                            server(
                                srv_backend,
                                &case.cert,
                                &set,
                                PeerMatch::Any,
                                &opts,
                                ClientAuth::Required,
                            ),
                            client(
                                cli_backend,
                                Some(&good_client),
                                &set,
                                case.accepts.clone(),
                                &opts,
                            ),
                        ),
                    };
                    let (s, c) = run(&srv, &cli).await;
                    let (checked, presented) = match role {
                        Role::Server => (s, c),
                        Role::Client => (c, s),
                    };
                    let decided = checked.as_ref().map(|_| ()).map_err(|r| *r);
                    table.push(format!(
                        "{:<56} {role:?} checks on {checker:?}, peer on {presenter:?}: {decided:?}, peer saw {:?}",
                        case.name,
                        presented.as_ref().map(|_| ()),
                    ));
                    if decided != case.expect {
                        failures.push(format!(
                            "{}: {role:?} on {checker:?} (peer on {presenter:?}) decided {decided:?}, expected {:?}",
                            case.name, case.expect
                        ));
                    }
                    match (&case.expect, presented) {
                        (Ok(()), Ok(seen)) => {
                            let want = match role {
                                Role::Server => "spiffe://example.org/server",
                                Role::Client => "spiffe://example.org/client",
                            };
                            assert_eq!(seen.peer, Some(id(want)), "{}", case.name);
                        }
                        (Ok(()), Err(r)) => failures.push(format!(
                            "{}: the presenting side failed with {r} though the case is valid",
                            case.name
                        )),
                        (Err(_), Ok(_)) => failures.push(format!(
                            "{}: {role:?} on {checker:?} refused, but the peer on {presenter:?} saw success",
                            case.name
                        )),
                        (Err(_), Err(r)) => refused_seen.push((checker, presenter, r)),
                    }
                }
            }
            for presenter in BOTH {
                let labels: Vec<_> = refused_seen
                    .iter()
                    .filter(|(_, p, _)| *p == presenter)
                    .map(|(c, _, r)| (*c, *r))
                    .collect();
                if labels.windows(2).any(|w| w[0].1 != w[1].1) {
                    failures.push(format!(
                        "{}: {role:?} refusal seen differently by a {presenter:?} peer: {labels:?}",
                        case.name
                    ));
                }
            }
        }
    }
    eprintln!("{}", table.join("\n"));
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
