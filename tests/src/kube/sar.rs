//! `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: the API
//! server's authorizer, run on the rules the test sets
//! ([`FakeApiServer::allow`](super::FakeApiServer::allow)) instead of
//! RBAC objects. As RBAC: a rule names a user or a group, verbs, API
//! groups, resources and optionally resource names (`*` matches any); a
//! review is allowed when any rule matches, and a rule with names matches
//! only a request naming one of them. Answers `201` with the review and
//! its `status` (`allowed`, `reason`).

use serde_json::{Value, json};

use super::status::ApiError;

/// One rule: who (a user or a group) may do which verbs on what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRule {
    /// `User` or `Group`.
    pub kind: SubjectKind,
    /// The user or group name.
    pub subject: String,
    /// Verbs (`*`: any).
    pub verbs: Vec<String>,
    /// API groups (`*`: any; `""`: core).
    pub api_groups: Vec<String>,
    /// Resources (`*`: any).
    pub resources: Vec<String>,
    /// Resource names; empty: any name, and requests without one.
    pub names: Vec<String>,
}

/// Whom a rule binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubjectKind {
    /// A user name (`system:serviceaccount:<ns>:<sa>` for a service account).
    User,
    /// A group name.
    Group,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

impl AccessRule {
    /// `user` may use `verbs` on `resource` of `api_group` (any name).
    pub fn user(user: &str, verbs: &[&str], api_group: &str, resource: &str) -> Self {
        Self {
            kind: SubjectKind::User,
            subject: user.to_owned(),
            verbs: strings(verbs),
            api_groups: vec![api_group.to_owned()],
            resources: vec![resource.to_owned()],
            names: Vec::new(),
        }
    }

    /// Members of `group` may use `verbs` on `resource` of `api_group`.
    pub fn group(group: &str, verbs: &[&str], api_group: &str, resource: &str) -> Self {
        Self {
            kind: SubjectKind::Group,
            ..Self::user(group, verbs, api_group, resource)
        }
    }

    /// Only on the objects named `names` (RBAC's `resourceNames`).
    pub fn names(mut self, names: &[&str]) -> Self {
        self.names = strings(names);
        self
    }

    fn matches(&self, user: &str, groups: &[String], attrs: &Value) -> bool {
        let field = |k: &str| attrs.get(k).and_then(Value::as_str).unwrap_or_default();
        let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        let who = match self.kind {
            SubjectKind::User => self.subject == user,
            SubjectKind::Group => groups.contains(&self.subject),
        };
        let name = field("name");
        who && any(&self.verbs, field("verb"))
            && any(&self.api_groups, field("group"))
            && any(&self.resources, field("resource"))
            && (self.names.is_empty() || (!name.is_empty() && self.names.iter().any(|n| n == name)))
    }
}

/// Answers one review (the body as the client sent it).
pub fn review(rules: &[AccessRule], body: &[u8]) -> Result<Value, ApiError> {
    let review: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("SubjectAccessReview in the body: {e}")))?;
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let user = spec.get("user").and_then(Value::as_str).unwrap_or_default();
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if user.is_empty() && groups.is_empty() {
        return Err(ApiError::invalid(
            "SubjectAccessReview",
            "",
            "spec.user: Invalid value: \"\": at least one of user or group must be specified",
        ));
    }
    let Some(attrs) = spec.get("resourceAttributes") else {
        return Err(ApiError::invalid(
            "SubjectAccessReview",
            "",
            "spec.resourceAttributes: Required value (the fake serves resource reviews only)",
        ));
    };
    let allowed = rules.iter().any(|r| r.matches(user, &groups, attrs));
    let reason = if allowed {
        "allowed by a rule of the test"
    } else {
        "no rule of the test allows it"
    };
    Ok(json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {"creationTimestamp": null},
        "spec": spec,
        "status": {"allowed": allowed, "reason": reason},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(
        rules: &[AccessRule],
        user: &str,
        groups: &[&str],
        verb: &str,
        name: Option<&str>,
    ) -> bool {
        let mut attrs = json!({"group": "meshid.io", "resource": "tenants", "verb": verb});
        if let Some(n) = name {
            attrs["name"] = json!(n);
        }
        let body = json!({"spec": {"user": user, "groups": groups, "resourceAttributes": attrs}});
        let v = review(rules, body.to_string().as_bytes()).expect("review");
        v["status"]["allowed"].as_bool().expect("allowed")
    }

    #[test]
    fn rules_match_as_rbac_does() {
        let rules = [
            AccessRule::user("alice", &["operator"], "meshid.io", "tenants").names(&["a"]),
            AccessRule::group("ops", &["*"], "meshid.io", "tenants"),
        ];
        assert!(ask(&rules, "alice", &[], "operator", Some("a")));
        assert!(!ask(&rules, "alice", &[], "operator", Some("b")));
        assert!(!ask(&rules, "alice", &[], "operator", None));
        assert!(!ask(&rules, "alice", &[], "admin", Some("a")));
        assert!(ask(&rules, "bob", &["ops"], "cluster-admin", None));
        assert!(!ask(&rules, "bob", &["dev"], "viewer", Some("a")));
    }
}
