//! URL paths: discovery documents and resource requests
//! (`/api/v1/namespaces/<ns>/<plural>/<name>/<sub>`,
//! `/apis/<group>/<version>/<plural>/<name>`, ...).

use serde_json::{Value, json};

use super::resources;

/// What a path asks for.
#[derive(Debug, PartialEq)]
pub enum Route {
    /// A discovery document, answered as is.
    Discovery(Value),
    /// A resource request.
    Resource(Target),
}

/// The resource a request is about, as the path names it (the resource may
/// be one the server does not know).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Target {
    /// API group (`""`: core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural resource name.
    pub plural: String,
    /// The namespace in the path.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: Option<String>,
    /// The subresource (`status`).
    pub sub: Option<String>,
}

/// Routes a path; `None` when nothing is served there.
pub fn route(path: &str, server: &str) -> Option<Route> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let doc = |v: Value| Some(Route::Discovery(v));
    match segs.as_slice() {
        ["version"] => doc(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-meshid-fake",
            "platform": "linux/amd64",
        })),
        ["api"] => doc(resources::core_versions(server)),
        ["api", "v1"] => resources::resource_list("", "v1").map(Route::Discovery),
        ["apis"] => doc(resources::groups()),
        ["apis", group, version] => resources::resource_list(group, version).map(Route::Discovery),
        ["api", "v1", rest @ ..] => target("", "v1", rest),
        ["apis", group, version, rest @ ..] => target(group, version, rest),
        _ => None,
    }
}

fn target(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let t = |ns: Option<&str>, plural: &str, name: Option<&str>, sub: Option<&str>| {
        Some(Route::Resource(Target {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: plural.to_owned(),
            namespace: ns.map(str::to_owned),
            name: name.map(str::to_owned),
            sub: sub.map(str::to_owned),
        }))
    };
    match rest {
        ["namespaces", name, sub @ ("status" | "finalize")] => {
            t(None, "namespaces", Some(name), Some(sub))
        }
        ["namespaces", ns, plural] => t(Some(ns), plural, None, None),
        ["namespaces", ns, plural, name] => t(Some(ns), plural, Some(name), None),
        ["namespaces", ns, plural, name, sub] => t(Some(ns), plural, Some(name), Some(sub)),
        [plural] => t(None, plural, None, None),
        [plural, name] => t(None, plural, Some(name), None),
        [plural, name, sub] => t(None, plural, Some(name), Some(sub)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> Target {
        match route(path, "") {
            Some(Route::Resource(t)) => t,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        let t = res("/api/v1/namespaces/shop/pods/web-1/status");
        assert_eq!(
            (
                t.group.as_str(),
                t.plural.as_str(),
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.sub.as_deref()
            ),
            ("", "pods", Some("shop"), Some("web-1"), Some("status"))
        );
        let t = res("/api/v1/namespaces/shop");
        assert_eq!(
            (t.plural.as_str(), t.namespace, t.name.as_deref()),
            ("namespaces", None, Some("shop"))
        );
        let t = res("/api/v1/namespaces/shop/status");
        assert_eq!(
            (t.plural.as_str(), t.name.as_deref(), t.sub.as_deref()),
            ("namespaces", Some("shop"), Some("status"))
        );
        let t = res("/apis/meshid.io/v1alpha1/clusteridentitytemplates");
        assert_eq!(
            (t.group.as_str(), t.version.as_str(), t.name),
            ("meshid.io", "v1alpha1", None)
        );
        assert!(matches!(
            route("/apis/coordination.k8s.io/v1", ""),
            Some(Route::Discovery(_))
        ));
        assert_eq!(route("/apis/nope.io/v1", ""), None);
        assert_eq!(route("/healthz", ""), None);
    }
}
