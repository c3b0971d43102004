//! What the fake API server's own tests share: a kube client per token,
//! a namespace object, the code of an API error.

use kube::{Client, Config};
use meshid_tests::kube::FakeApiServer;
use serde_json::{Value, json};

/// A kube client for the fake with its own bearer token, through a
/// kubeconfig as a real client would get one.
pub async fn client(api: &FakeApiServer, token: &str) -> Client {
    let dir = meshid_tests::tempdir();
    let path = dir.path().join("kubeconfig");
    api.write_kubeconfig(&path, token);
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// A Namespace object.
pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

/// The HTTP code and `reason` of an API error.
pub fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("not an API error: {other}"),
    }
}
