//! meshid on Kubernetes: the `meshid.io` custom resources, the controller
//! that registers pods with the CA and publishes trust bundles and policies
//! as ConfigMaps, and the sidecar-injection webhook.

pub mod controller;
pub mod crd;
pub mod istio;
pub mod leader;
pub mod publish;
pub mod rbac;
pub mod template;
pub mod webhook;
