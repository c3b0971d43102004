//! [`channel`] against a real tonic server on a temporary socket, and
//! against sockets nobody serves.

use std::sync::{Arc, Mutex};

use meshid_proto::workload::JwtsvidRequest;
use meshid_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tokio::net::UnixListener;
use tonic::Code;

use super::*;

/// A tonic server with no services on `path` (every call is answered
/// `UNIMPLEMENTED`), recording the `:authority` of each request.
fn serve(path: &Path) -> Arc<Mutex<Vec<String>>> {
    let listener = UnixListener::bind(path).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let incoming = futures::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(stream, _)| stream);
        Some((conn, l))
    });
    let server = tonic::transport::Server::builder()
        .layer(tower::util::MapRequestLayer::new(
            move |req: http::Request<tonic::body::Body>| {
                let authority = req.uri().authority().map(ToString::to_string);
                record.lock().unwrap().push(authority.unwrap_or_default());
                req
            },
        ))
        .add_routes(tonic::service::Routes::default())
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    seen
}

#[tokio::test]
async fn a_call_reaches_the_tonic_server_on_the_socket_with_authority_localhost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api.sock");
    let seen = serve(&path);

    let mut client = SpiffeWorkloadApiClient::new(channel(&path).await.unwrap());
    let status = client
        .fetch_jwtsvid(JwtsvidRequest::default())
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert_eq!(*seen.lock().unwrap(), ["localhost"]);
}

#[tokio::test]
async fn a_missing_socket_is_reported_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.sock");

    let err = channel(&path).await.unwrap_err();

    assert!(matches!(err, ChannelError::NotFound { .. }), "{err:?}");
    assert_eq!(err.path(), path);
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("no Unix socket"), "{msg}");
}

#[tokio::test]
async fn a_socket_file_nobody_serves_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());

    let err = channel(&path).await.unwrap_err();

    assert!(matches!(err, ChannelError::Refused { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}
