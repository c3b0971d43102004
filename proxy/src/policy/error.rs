//! Errors and warnings from loading a policy file.

use std::fmt;
use std::path::PathBuf;

/// Why a policy file was rejected. A rejected file changes nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is larger than the limit.
    #[error("policy file is {size} bytes, more than the limit of {max} bytes; split or shorten it")]
    TooLarge {
        /// Size of the input in bytes.
        size: u64,
        /// The limit in bytes.
        max: u64,
    },
    /// The YAML is malformed, has a wrong type or an unknown field.
    #[error("policy file is not valid: {0}")]
    Syntax(String),
    /// A value inside a policy is invalid.
    #[error("policy {policy:?}: {field}: {problem}")]
    Invalid {
        /// Name of the policy (or `#<index>` if it has no usable name).
        policy: String,
        /// Where in the policy, e.g. `rules[0].from[1].source.principals[2]`.
        field: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// The file lists no policies: it is empty, only comments, or
    /// `policies: []`. Refused because it would allow all traffic and is
    /// what a truncated or half-written file looks like.
    #[error(
        "policy file lists no policies (it is empty, only comments, or `policies: []`), which would allow all traffic; \
         if it was cut short, rewrite it atomically (write a temporary file, then rename it over this one); \
         to allow all traffic on purpose, say so: `policies: [{{ name: allow-all, action: ALLOW, rules: [{{}}] }}]`"
    )]
    NoPolicies,
    /// The workload's labels file is malformed.
    #[error("labels {origin}: {problem}")]
    Labels {
        /// The labels file (or where the labels came from).
        origin: String,
        /// What is wrong.
        problem: String,
    },
    /// A policy has a selector but the workload's labels are unknown.
    #[error(
        "policy {policy:?} has a selector, so the workload's labels are needed to know whether it applies; \
         set `pod_labels_file` in the proxy config (or pass --labels to `meshid policy explain`)"
    )]
    LabelsRequired {
        /// The first policy with a selector.
        policy: String,
    },
    /// Two policies have the same name.
    #[error("policy {0:?} is defined twice; policy names must be unique")]
    DuplicateName(String),
    /// The file has more rules than the limit.
    #[error(
        "policy file has {count} rules, more than the limit of {max}; merge rules or raise the limit"
    )]
    TooManyRules {
        /// Rules in the file.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// Something suspicious but valid in a policy file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The policy concerned.
    pub policy: String,
    /// The rule concerned, if the warning is about one rule.
    pub rule_index: Option<usize>,
    /// What may be wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule_index {
            Some(i) => write!(f, "policy {:?} rules[{i}]: {}", self.policy, self.message),
            None => write!(f, "policy {:?}: {}", self.policy, self.message),
        }
    }
}
