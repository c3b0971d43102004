//! Errors of CA calls, classified by what the agent should do next.

/// A CA call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The CA could not be reached or failed transiently: retry with backoff.
    #[error("CA is unavailable: {0}; will retry")]
    Unavailable(String),
    /// The CA does not know this agent (never attested, or evicted):
    /// attest again with a join token.
    #[error("CA does not recognise this agent ({0}); it must attest again with a new join token")]
    AgentUnknown(String),
    /// The CA banned this agent: stop.
    #[error(
        "CA has banned this agent ({0}); an operator must delete the agent on the CA before it can attest again"
    )]
    Banned(String),
    /// The CA refused the request for another reason.
    #[error("CA refused the request ({code:?}): {message}")]
    Rejected {
        /// gRPC status code.
        code: tonic::Code,
        /// The CA's message.
        message: String,
    },
    /// No agent SVID yet for an RPC that needs mTLS.
    #[error("the agent has no SVID yet; attest before calling the CA")]
    NoCredentials,
    /// The TLS configuration could not be built.
    #[error("cannot set up TLS to the CA: {0}")]
    Tls(String),
    /// The CA's answer does not make sense (wrong count, missing field).
    #[error("CA sent a malformed response: {0}")]
    BadResponse(String),
}

// === impl CaError ===

impl CaError {
    /// True when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<tonic::Status> for CaError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        let msg = s.message().to_owned();
        match s.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal => Self::Unavailable(format!("{:?}: {msg}", s.code())),
            Code::Unauthenticated | Code::NotFound => Self::AgentUnknown(msg),
            Code::PermissionDenied => Self::Banned(msg),
            code => Self::Rejected { code, message: msg },
        }
    }
}
