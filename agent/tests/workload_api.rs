//! The Workload API server against real clients on a real Unix socket:
//! the independent `spiffe` crate, our generated client, and a Python
//! gRPC client running as another user.

#![allow(clippy::unwrap_used)]

#[path = "workload_api/fixture.rs"]
mod fixture;
#[path = "workload_api/harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fixture::{Pki, entry, my_entry, serial_of, snapshot};
use harness::{Agent, client, next_message, python_fetch, with_header, x509_stream};
use meshid_proto::workload::{
    JwtBundlesRequest, JwtsvidRequest, ValidateJwtsvidRequest, X509svidRequest,
};
use tonic::Code;

const TD: &str = "example.org";

#[tokio::test]
async fn spiffe_client_fetches_svid_and_federated_bundles() {
    let pki = Pki::new(TD);
    let other = Pki::new("partner.test");
    let mut e = my_entry("e1", "spiffe://example.org/api");
    e.federates_with = vec![other.td.clone()];
    e.hint = "api".into();
    let svid = pki.fresh_svid(e);
    let unrelated = pki.fresh_svid(entry("e2", "spiffe://example.org/db", &["uid:4242"]));
    let agent = Agent::start(snapshot(
        &pki.td,
        vec![pki.bundle(), other.bundle()],
        vec![svid.clone(), unrelated],
        1,
    ))
    .await;

    let c = spiffe::WorkloadApiClient::connect_to(format!("unix:{}", agent.socket.display()))
        .await
        .unwrap();
    let ctx = c.fetch_x509_context().await.unwrap();
    let svids = ctx.svids();
    assert_eq!(svids.len(), 1, "only the entry matching our uid is served");
    assert_eq!(svids[0].spiffe_id().to_string(), "spiffe://example.org/api");
    assert_eq!(svids[0].leaf().as_bytes(), svid.chain[0].as_ref());
    assert_eq!(svids[0].hint(), Some("api"));
    let bundles = ctx.bundle_set();
    let own = bundles.get(&spiffe::TrustDomain::new(TD).unwrap()).unwrap();
    assert_eq!(own.authorities()[0].as_bytes(), pki.root.as_ref());
    let partner = bundles
        .get(&spiffe::TrustDomain::new("partner.test").unwrap())
        .unwrap();
    assert_eq!(partner.authorities()[0].as_bytes(), other.root.as_ref());

    let set = c.fetch_x509_bundles().await.unwrap();
    assert_eq!(set.len(), 2, "own and federated X.509 bundles");
}

#[tokio::test]
async fn missing_security_header_is_invalid_argument() {
    let pki = Pki::new(TD);
    let svid = pki.fresh_svid(my_entry("e1", "spiffe://example.org/api"));
    let agent = Agent::start(pki.snapshot(vec![svid], 1)).await;
    let mut c = client(&agent.socket).await;

    let err = c
        .fetch_x509svid(X509svidRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("security header"), "{err}");
    let err = c
        .fetch_jwtsvid(JwtsvidRequest {
            audience: vec!["a".into()],
            spiffe_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // The same call with the header succeeds.
    let mut stream = x509_stream(&mut c).await;
    let first = next_message(&mut stream).await;
    assert_eq!(first.svids.len(), 1);
}

/// Needs root (to switch uid with setpriv) and Python with grpcio.
#[tokio::test]
async fn caller_matching_no_entry_is_denied_while_ours_is_served() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test switches uid with setpriv and must run as root"
    );
    let pki = Pki::new(TD);
    let svid = pki.fresh_svid(my_entry("e1", "spiffe://example.org/api"));
    let agent = Agent::start(pki.snapshot(vec![svid], 1)).await;

    let ours = python_fetch(&agent.socket, &[]).await;
    assert!(ours.starts_with("OK "), "our uid must get its SVID: {ours}");
    let nobody = python_fetch(
        &agent.socket,
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ],
    )
    .await;
    assert_eq!(
        nobody.trim(),
        "PERMISSION_DENIED no identity registered for this workload"
    );
}

#[tokio::test]
async fn rotation_reaches_the_open_stream_and_shutdown_ends_it() {
    let pki = Pki::new(TD);
    let e = my_entry("e1", "spiffe://example.org/api");
    let old = pki.fresh_svid(e.clone());
    let mut agent = Agent::start(pki.snapshot(vec![old.clone()], 1)).await;
    let mut c = client(&agent.socket).await;
    let mut stream = x509_stream(&mut c).await;
    let first = next_message(&mut stream).await;
    assert_eq!(serial_of(&first.svids[0].x509_svid), old.serial);
    assert_eq!(first.svids[0].x509_svid_key, old.key.pkcs8_der());

    // An unrelated change (new generation, same SVIDs) sends nothing; the
    // rotation right after is the next message.
    agent.publish(pki.snapshot(vec![old.clone()], 2));
    let new = pki.fresh_svid(e);
    assert_ne!(new.serial, old.serial);
    agent.publish(pki.snapshot(vec![new.clone()], 3));
    let next = next_message(&mut stream).await;
    assert_eq!(serial_of(&next.svids[0].x509_svid), new.serial);

    // Removing the caller's entry ends the stream with PermissionDenied.
    agent.publish(pki.snapshot(vec![], 4));
    let err = stream.message().await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // Shutdown ends open streams and the server returns.
    agent.publish(pki.snapshot(vec![new], 5));
    let mut again = x509_stream(&mut c).await;
    assert!(again.message().await.unwrap().is_some());
    agent.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(10), again.message())
        .await
        .expect("stream still open after shutdown");
    assert!(!matches!(end, Ok(Some(_))), "no message after shutdown");
}

/// A publish that leaves this caller's SVIDs alone (another workload's SVID
/// rotates) sends nothing on its stream; rotating its own SVID does.
#[tokio::test]
async fn only_a_rotation_of_the_callers_own_svid_reaches_its_stream() {
    let pki = Pki::new(TD);
    let mine = my_entry("e1", "spiffe://example.org/api");
    let theirs = entry("e2", "spiffe://example.org/db", &["uid:4242"]);
    let old = pki.fresh_svid(mine.clone());
    let agent =
        Agent::start(pki.snapshot(vec![old.clone(), pki.fresh_svid(theirs.clone())], 1)).await;
    let mut c = client(&agent.socket).await;
    let mut stream = x509_stream(&mut c).await;
    let first = next_message(&mut stream).await;
    assert_eq!(serial_of(&first.svids[0].x509_svid), old.serial);

    // Two rotations of the other workload's SVID, then ours: the very next
    // message is ours, carrying only our SVID.
    for generation in [2, 3] {
        agent.publish(pki.snapshot(
            vec![old.clone(), pki.fresh_svid(theirs.clone())],
            generation,
        ));
    }
    let new = pki.fresh_svid(mine);
    agent.publish(pki.snapshot(vec![new.clone(), pki.fresh_svid(theirs)], 4));
    let next = next_message(&mut stream).await;
    assert_eq!(next.svids.len(), 1);
    assert_eq!(serial_of(&next.svids[0].x509_svid), new.serial);
    assert_eq!(next.svids[0].x509_svid_key, new.key.pkcs8_der());
}

#[tokio::test]
async fn expired_svid_is_never_served() {
    let pki = Pki::new(TD);
    let now = SystemTime::now();
    let expired = Arc::new(pki.svid(
        my_entry("old", "spiffe://example.org/old"),
        now - Duration::from_secs(7200),
        now - Duration::from_secs(60),
    ));
    let agent = Agent::start(pki.snapshot(vec![expired.clone()], 1)).await;
    let mut c = client(&agent.socket).await;
    let err = c
        .fetch_x509svid(with_header(X509svidRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err}");

    let valid = pki.fresh_svid(my_entry("new", "spiffe://example.org/new"));
    agent.publish(pki.snapshot(vec![expired, valid], 2));
    let mut stream = x509_stream(&mut c).await;
    let msg = next_message(&mut stream).await;
    let ids: Vec<_> = msg.svids.iter().map(|s| s.spiffe_id.as_str()).collect();
    assert_eq!(ids, ["spiffe://example.org/new"]);
}

#[tokio::test]
async fn jwt_svid_fetch_validate_and_bundles() {
    let pki = Pki::new(TD);
    let svid = pki.fresh_svid(my_entry("e1", "spiffe://example.org/api"));
    let agent = Agent::start_with_jwt(pki.snapshot(vec![svid], 1), pki.jwt_key.clone()).await;
    let mut c = client(&agent.socket).await;

    let err = c
        .fetch_jwtsvid(with_header(JwtsvidRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "audience is required");
    let err = c
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["payments".into()],
            spiffe_id: "spiffe://example.org/not-mine".into(),
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let resp = c
        .fetch_jwtsvid(with_header(JwtsvidRequest {
            audience: vec!["payments".into()],
            spiffe_id: "spiffe://example.org/api".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.svids.len(), 1);
    let token = resp.svids[0].svid.clone();

    let ok = c
        .validate_jwtsvid(with_header(ValidateJwtsvidRequest {
            audience: "payments".into(),
            svid: token.clone(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.spiffe_id, "spiffe://example.org/api");
    let claims = ok.claims.unwrap();
    assert_eq!(
        claims.fields["sub"].kind,
        Some(prost_types::value::Kind::StringValue(
            "spiffe://example.org/api".into()
        ))
    );
    let err = c
        .validate_jwtsvid(with_header(ValidateJwtsvidRequest {
            audience: "other".into(),
            svid: token,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "wrong audience");

    let mut bundles = c
        .fetch_jwt_bundles(with_header(JwtBundlesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let b = next_message(&mut bundles).await;
    let jwks: serde_json::Value =
        serde_json::from_slice(&b.bundles["spiffe://example.org"]).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "only the JWT key: {jwks}");
    assert_eq!(keys[0]["kid"], "test-kid");
}

#[tokio::test]
async fn meshid_cli_fetch_prints_svid_summary_and_jwt() {
    let pki = Pki::new(TD);
    let mut e = my_entry("e1", "spiffe://example.org/api");
    e.hint = "api".into();
    let svid = pki.fresh_svid(e);
    let agent = Agent::start_with_jwt(pki.snapshot(vec![svid], 1), pki.jwt_key.clone()).await;
    let bin = tokio::task::spawn_blocking(meshid_tests::meshid_bin)
        .await
        .unwrap();
    let run = |args: Vec<String>| {
        let bin = bin.clone();
        async move {
            let out = tokio::process::Command::new(bin)
                .args(&args)
                .env_remove("SPIFFE_ENDPOINT_SOCKET")
                .output()
                .await
                .unwrap();
            assert!(
                out.status.success(),
                "meshid {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        }
    };
    let socket = format!("unix:{}", agent.socket.display());

    let json: serde_json::Value = serde_json::from_str(
        &run(vec![
            "agent".into(),
            "api".into(),
            "fetch".into(),
            "--socket".into(),
            socket.clone(),
            "--output".into(),
            "json".into(),
        ])
        .await,
    )
    .unwrap();
    assert_eq!(json["svids"][0]["spiffe_id"], "spiffe://example.org/api");
    assert_eq!(json["svids"][0]["hint"], "api");
    assert_eq!(json["svids"][0]["chain"].as_array().unwrap().len(), 1);
    assert_eq!(json["svids"][0]["bundle_roots"], 1);
    assert!(
        json["svids"][0]["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("20")
    );

    let text = run(vec![
        "agent".into(),
        "api".into(),
        "fetch".into(),
        "--socket".into(),
        socket.clone(),
    ])
    .await;
    assert!(
        text.contains("SPIFFE ID:  spiffe://example.org/api"),
        "{text}"
    );
    assert!(text.contains("Chain:      1 certificate(s)"), "{text}");

    let jwt = run(vec![
        "agent".into(),
        "api".into(),
        "fetch".into(),
        "--socket".into(),
        socket,
        "--jwt".into(),
        "--audience".into(),
        "payments".into(),
        "--output".into(),
        "json".into(),
    ])
    .await;
    let jwt: serde_json::Value = serde_json::from_str(&jwt).unwrap();
    let token = jwt["svids"][0]["token"].as_str().unwrap();
    let claims = meshid_identity::jwt::validate(
        token,
        "payments",
        &[pki.bundle()].into_iter().collect(),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(claims.spiffe_id.as_str(), "spiffe://example.org/api");
}
