//! The injected sidecar: the `meshid-proxy` native sidecar (an init
//! container with `restartPolicy: Always`) and the three volumes it mounts.

use super::config::InjectConfig;
use super::proxy_config::{Inbound, OPS_LISTEN};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, DownwardAPIVolumeFile,
    DownwardAPIVolumeSource, ExecAction, HostPathVolumeSource, ObjectFieldSelector, Probe,
    ResourceRequirements, SeccompProfile, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use std::collections::BTreeMap;

/// The sidecar's container name.
pub const CONTAINER: &str = "meshid-proxy";
/// The annotation holding the proxy config (read by the downward API volume).
pub const PROXY_CONFIG_ANNOTATION: &str = "meshid.io/proxy-config";
/// Volume with the agent's socket directory.
pub const SOCKETS_VOLUME: &str = "meshid-sockets";
/// Volume with the proxy config and the pod's labels.
pub const PODINFO_VOLUME: &str = "meshid-podinfo";
/// Volume with the namespace's policy ConfigMap.
pub const POLICY_VOLUME: &str = "meshid-policy";
/// The binary inside the image (it has no shell).
const BINARY: &str = "/usr/local/bin/meshid";

/// The sidecar container serving `inbound`.
pub fn container(cfg: &InjectConfig, inbound: &[Inbound]) -> Container {
    let probe = |period, failures| Probe {
        exec: Some(ExecAction {
            command: Some(vec![
                BINARY.into(),
                "healthcheck".into(),
                "--url".into(),
                format!("http://{OPS_LISTEN}/readyz"),
            ]),
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    };
    let quantity = |q: &str| Quantity(q.to_owned());
    Container {
        name: CONTAINER.into(),
        image: Some(cfg.image.clone()),
        image_pull_policy: Some(cfg.image_pull_policy.clone()),
        args: Some(vec![
            "proxy".into(),
            "run".into(),
            "--config".into(),
            "/etc/meshid/proxy/config.yaml".into(),
        ]),
        restart_policy: Some("Always".into()),
        ports: (!inbound.is_empty()).then(|| {
            inbound
                .iter()
                .map(|l| ContainerPort {
                    name: Some(format!("mesh-{}", l.app)),
                    container_port: i32::from(l.listen),
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                })
                .collect()
        }),
        // Started before the app's containers: ready within a minute.
        startup_probe: Some(probe(1, 60)),
        readiness_probe: Some(probe(5, 3)),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), quantity(&cfg.cpu_request)),
                ("memory".into(), quantity(&cfg.memory_request)),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".into(),
                quantity(&cfg.memory_limit),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(cfg.proxy_uid),
            run_as_group: Some(cfg.proxy_uid),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount(SOCKETS_VOLUME, "/run/meshid/sockets"),
            mount(PODINFO_VOLUME, "/etc/meshid/proxy"),
            mount(POLICY_VOLUME, "/etc/meshid/policy"),
        ]),
        ..Container::default()
    }
}

/// The volumes the sidecar mounts.
pub fn volumes(cfg: &InjectConfig) -> Vec<Volume> {
    let field = |name: &str, path: &str| DownwardAPIVolumeFile {
        path: name.into(),
        field_ref: Some(ObjectFieldSelector {
            field_path: path.into(),
            api_version: None,
        }),
        ..DownwardAPIVolumeFile::default()
    };
    vec![
        Volume {
            name: SOCKETS_VOLUME.into(),
            host_path: Some(HostPathVolumeSource {
                path: cfg.agent_socket_dir.display().to_string(),
                type_: Some("Directory".into()),
            }),
            ..Volume::default()
        },
        Volume {
            name: PODINFO_VOLUME.into(),
            downward_api: Some(DownwardAPIVolumeSource {
                items: Some(vec![
                    field(
                        "config.yaml",
                        &format!("metadata.annotations['{PROXY_CONFIG_ANNOTATION}']"),
                    ),
                    field("labels", "metadata.labels"),
                ]),
                ..DownwardAPIVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: POLICY_VOLUME.into(),
            config_map: Some(ConfigMapVolumeSource {
                name: cfg.policy_configmap.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
    ]
}

fn mount(volume: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}
