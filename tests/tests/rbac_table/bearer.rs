//! `--token-file` / `MESHID_ADMIN_TOKEN_FILE`: a Kubernetes bearer token
//! sent by the CLI, checked by the CA with TokenReview on the fake API
//! server, and authorized by a `k8s-user:` binding and by a
//! SubjectAccessReview rule of the token's group.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use meshid_tests::Cmd;
use meshid_tests::kube::sa_token::DEFAULT_ISSUER;
use meshid_tests::kube::{AccessRule, FakeApiServer, SaClaims};

use super::world::{Col, World};

/// The uid the CLI runs as: bound to nothing, so only the token counts.
const UID: &str = "2005";

/// `meshid <args> --admin-socket <socket>` as [`UID`], with `env`; exit
/// success and stdout + stderr.
fn meshid<S: AsRef<std::ffi::OsStr>>(
    w: &World,
    args: &[S],
    env: &[(&str, &Path)],
) -> (bool, String) {
    let mut cmd = Cmd::new("setpriv")
        .args(["--reuid", UID, "--regid", UID, "--clear-groups", "--"])
        .args([meshid_tests::meshid_bin()])
        .args(args)
        .args(["--admin-socket".as_ref(), w.ca.admin_socket.as_os_str()]);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    let out = cmd.output();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A token file readable by [`UID`].
fn token_file(dir: &Path, name: &str, token: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

pub async fn run() {
    let api = FakeApiServer::start().await;
    let kube_dir = meshid_tests::tempdir();
    let kubeconfig = kube_dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, "meshid-ca");
    // Kubernetes RBAC grants the team's service accounts viewer on b.
    api.allow(
        AccessRule::group(
            "system:serviceaccounts:team",
            &["viewer"],
            "meshid.io",
            "tenants",
        )
        .names(&["b"]),
    );
    let user = "system:serviceaccount:team:deployer";
    let w = World::start(&format!(
        "[[rbac.bindings]]\nsubject = \"k8s-user:{user}\"\nrole = \"operator\"\ntenant = \"a\"\n\
         [rbac.kubernetes]\nkubeconfig = {:?}\n",
        kubeconfig.display().to_string()
    ))
    .await;
    // A service-account token bound to no pod, for the API server itself.
    let claims = SaClaims::bound(
        "team",
        "deployer",
        "",
        "",
        None,
        DEFAULT_ISSUER,
        Duration::from_secs(600),
    );
    let token = token_file(w.dir(), "token", &api.sa_issuer().mint(&claims));
    let forged = token_file(w.dir(), "forged", &api.sa_issuer().mint_forged(&claims));
    let tf = |p: &Path| ["--token-file".to_owned(), p.display().to_string()];
    let with = |args: &[&str], p: &Path| -> Vec<String> {
        args.iter().map(|&a| a.to_owned()).chain(tf(p)).collect()
    };

    // The CA takes the caller for the token's user and groups.
    let (ok, out) = meshid(&w, &with(&["rbac", "whoami"], &token), &[]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("k8s-user:{user}")), "{out}");
    assert!(
        out.contains("k8s-group:system:serviceaccounts:team"),
        "{out}"
    );

    // The binding: operator of a.
    let id_a = format!("{}/by-token", Col::A.prefix());
    let parent_a = w.agent[&Col::A].id.clone();
    let create_a = [
        "entry",
        "create",
        "--spiffe-id",
        &id_a,
        "--parent-id",
        &parent_a,
        "--selector",
        "unix:uid:7",
    ];
    let (ok, out) = meshid(&w, &with(&create_a, &token), &[]);
    assert!(ok, "operator of a by binding: {out}");

    // SubjectAccessReview: viewer of b, nothing more there.
    let entry_b = w.entry[&Col::B].clone();
    let (ok, out) = meshid(
        &w,
        &["entry", "show", &entry_b],
        &[("MESHID_ADMIN_TOKEN_FILE", &token)],
    );
    assert!(
        ok,
        "viewer of b by SubjectAccessReview (token from the env): {out}"
    );
    let (ok, out) = meshid(&w, &with(&["entry", "delete", &entry_b], &token), &[]);
    assert!(
        !ok && out.contains("PermissionDenied") && out.contains("lacks role operator on tenant b"),
        "{out}"
    );

    // Without the token the uid holds nothing; a forged token is refused.
    let (ok, out) = meshid(&w, &["entry", "show", &entry_b], &[]);
    assert!(!ok && out.contains("PermissionDenied"), "{out}");
    let (ok, out) = meshid(&w, &with(&["rbac", "whoami"], &forged), &[]);
    assert!(
        !ok && out.contains("Unauthenticated"),
        "forged token: {out}"
    );
}
