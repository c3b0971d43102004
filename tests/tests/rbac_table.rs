//! Every admin RPC × every role × the caller's own tenant, another tenant
//! and no tenant, against the real `meshid ca serve`:
//!
//! - on the admin socket, through the real CLI run as each uid under
//!   `setpriv` (bindings of uids 2001-2004 in the CA's config: viewer,
//!   operator and admin of tenant a, cluster-admin; uid 2005 holds none);
//! - on the node port over mTLS with SVIDs of tenants a and b and of the
//!   platform (bound in config, or admin of b through an entry with
//!   `admin = true`; one holds nothing).
//!
//! Each cell must be served or refused exactly as the design's table says;
//! a refusal must be PermissionDenied naming the missing role, and a
//! listing must show the column's object exactly when the caller holds the
//! role on its tenant. Every mismatch is collected and reported at once.
//!
//! Then `--token-file`: a Kubernetes service-account token the CA checks
//! with TokenReview on the fake API server, whose user is bound in config
//! and whose group a SubjectAccessReview rule grants a role.
#![allow(clippy::unwrap_used)]

#[path = "rbac_table/bearer.rs"]
mod bearer;
#[path = "rbac_table/callers.rs"]
mod callers;
#[path = "rbac_table/rows.rs"]
mod rows;
#[path = "rbac_table/world.rs"]
mod world;

use callers::{Caller, Expect, Via, expect};
use meshid_tests::Cmd;
use rows::{ROWS, Row};
use world::{Col, World};

/// What one call came to.
#[derive(Debug)]
enum Outcome {
    /// Served; what a listing showed.
    Served(Vec<String>),
    /// Refused: whether as PermissionDenied, and the message.
    Refused { denied: bool, message: String },
}

/// The columns of `row` (one `None` for an RPC without a resource).
fn cols(row: &Row) -> Vec<Option<Col>> {
    if row.cols.is_empty() {
        vec![None]
    } else {
        row.cols.iter().copied().map(Some).collect()
    }
}

/// `meshid <args> --admin-socket <socket>` as `uid`.
fn cli_as(w: &World, uid: u32, row: &Row, args: &[String]) -> Outcome {
    let uid = uid.to_string();
    let out = Cmd::new("setpriv")
        .args(["--reuid", &uid, "--regid", &uid, "--clear-groups", "--"])
        .args([meshid_tests::meshid_bin()])
        .args(args)
        .args(["--admin-socket".as_ref(), w.ca.admin_socket.as_os_str()])
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        let listed = match row.need {
            callers::Need::Listed(_) => row.rpc.listed_cli(&stdout),
            _ => Vec::new(),
        };
        Outcome::Served(listed)
    } else {
        Outcome::Refused {
            denied: stderr.contains("PermissionDenied"),
            message: stderr.trim().to_owned(),
        }
    }
}

/// Compares one cell with its expectation; the mismatch, if any.
fn check(row: &Row, want: &Expect, got: &Outcome, marker: &str) -> Option<String> {
    match (want, got) {
        (Expect::Allowed { listed }, Outcome::Served(shown)) => {
            let seen = shown.iter().any(|s| s == marker);
            match listed {
                Some(l) if *l != seen => Some(format!(
                    "served, but {marker:?} was {} (want {})",
                    if seen { "listed" } else { "not listed" },
                    if *l { "listed" } else { "hidden" }
                )),
                _ => None,
            }
        }
        (Expect::Allowed { .. }, Outcome::Refused { denied, message }) => {
            (!row.loose || *denied).then(|| format!("want served, got: {message}"))
        }
        (Expect::Denied(_) | Expect::NoRole, Outcome::Served(_)) => Some(format!(
            "want PermissionDenied ({want:?}), but it was served"
        )),
        (Expect::NoRole, Outcome::Refused { denied, message }) => (!denied
            || !message.contains("holds no role"))
        .then(|| format!("want PermissionDenied saying it holds no role, got: {message}")),
        (Expect::Denied(roles), Outcome::Refused { denied, message }) => {
            if !denied {
                Some(format!("want PermissionDenied, got: {message}"))
            } else if !roles
                .iter()
                .any(|r| message.contains(&format!("lacks role {} ", r.as_str())))
            {
                Some(format!(
                    "the denial does not name role {}: {message}",
                    roles[0].as_str()
                ))
            } else {
                None
            }
        }
    }
}

/// Runs every row for `callers`; each mismatch as one line.
async fn run_table(w: &World, callers: &[Caller], mismatches: &mut Vec<String>) -> usize {
    let mut clients = std::collections::BTreeMap::new();
    for c in callers {
        if let Via::Svid(path) = c.via {
            clients.insert(path, w.mtls_client(path).await);
        }
    }
    let mut cells = 0;
    for row in ROWS {
        for col in cols(row) {
            for caller in callers {
                let target = row.rpc.target(w, col).await;
                let (want, got) = match caller.via {
                    Via::Uid(uid) => (
                        expect(caller, row.need, col, row.read_first),
                        cli_as(w, uid, row, &row.rpc.cli(w, col, &target)),
                    ),
                    Via::Svid(path) => {
                        let client = clients.get_mut(path).unwrap();
                        let got = match row.rpc.grpc(client, w, col, &target).await {
                            Ok(listed) => Outcome::Served(listed),
                            Err(s) => Outcome::Refused {
                                denied: s.code() == tonic::Code::PermissionDenied,
                                message: format!("{:?}: {}", s.code(), s.message()),
                            },
                        };
                        (expect(caller, row.need, col, false), got)
                    }
                };
                if let Some(m) = check(row, &want, &got, &target) {
                    mismatches.push(format!(
                        "{:?} on {} by {}: {m}",
                        row.rpc,
                        col_name(col),
                        caller.name
                    ));
                }
                cells += 1;
            }
        }
    }
    cells
}

fn col_name(col: Option<Col>) -> &'static str {
    match col {
        Some(Col::A) => "tenant a",
        Some(Col::B) => "tenant b",
        Some(Col::P) => "the platform",
        None => "-",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_rpc_by_every_role_on_own_other_and_no_tenant() {
    let w = World::start("").await;
    let started = std::time::Instant::now();
    let mut mismatches = Vec::new();
    let socket = run_table(&w, &callers::SOCKET, &mut mismatches).await;
    let socket_took = started.elapsed();
    let mtls = run_table(&w, &callers::MTLS, &mut mismatches).await;
    eprintln!(
        "{socket} socket cells (CLI) in {socket_took:?}, {mtls} mTLS cells in {:?}",
        started.elapsed() - socket_took
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} cells differ from the design's table:\n{}",
        mismatches.len(),
        socket + mtls,
        mismatches.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_bearer_token_from_token_file_is_authorized_by_binding_and_sar() {
    bearer::run().await;
}
