//! A Workload API socket that workloads of other users could not reach is
//! refused at start-up, before the agent contacts the CA.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use meshid_agent::config::AgentConfig;
use meshid_agent::run::{RunError, run};
use meshid_agent::workload_api::{BindError, check_socket_reachable};

fn config(data_dir: &Path, socket: &Path) -> AgentConfig {
    AgentConfig::from_toml(&format!(
        "trust_domain = \"example.org\"\nca_address = \"127.0.0.1:1\"\n\
         data_dir = {:?}\nworkload_api_socket = {:?}\njoin_token = \"t\"\n",
        data_dir.display().to_string(),
        socket.display().to_string(),
    ))
    .unwrap()
}

fn open_dir(path: &Path, mode: u32) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn a_socket_inside_a_0700_data_dir_is_refused_naming_the_directory() {
    let tmp = tempfile::tempdir().unwrap();
    open_dir(tmp.path(), 0o755);
    let data = tmp.path().join("agent");
    open_dir(&data, 0o700);
    let socket = data.join("agent.sock");
    let err = run(config(&data, &socket), std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RunError::Bind(BindError::Unreachable { dir, .. }) if *dir == data),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&data.display().to_string()), "{msg}");
    assert!(
        msg.contains("mode 700") && msg.contains("chmod o+x"),
        "{msg}"
    );
    assert!(!socket.exists(), "nothing is bound");
}

#[test]
fn a_socket_inside_a_data_dir_the_agent_will_create_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    open_dir(tmp.path(), 0o755);
    let data = tmp.path().join("agent");
    let err = check_socket_reachable(&data.join("run/agent.sock"), &data).unwrap_err();
    assert!(err.to_string().contains("creates 0700"), "{err}");
}

#[test]
fn a_socket_directory_of_its_own_is_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    open_dir(tmp.path(), 0o755);
    let data = tmp.path().join("agent");
    open_dir(&data, 0o700);
    // Missing: the agent creates it 0755.
    check_socket_reachable(&tmp.path().join("run/agent.sock"), &data).unwrap();
    // Existing and traversable.
    open_dir(&tmp.path().join("sockets"), 0o711);
    check_socket_reachable(&tmp.path().join("sockets/agent.sock"), &data).unwrap();
    // The data dir opened to others (as `meshid up` does) is fine too.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    check_socket_reachable(&data.join("agent.sock"), &data).unwrap();
    // A closed directory of its own is not.
    open_dir(&tmp.path().join("private"), 0o750);
    assert!(check_socket_reachable(&tmp.path().join("private/agent.sock"), &data).is_err());
}
