//! Errors of CA calls, classified by what the agent should do next.

use std::error::Error as StdError;

use meshid_identity::SpiffeId;

/// A CA call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// The CA could not be reached or failed transiently: retry with backoff.
    #[error("CA is unavailable: {0}; will retry")]
    Unavailable(String),
    /// The server at the CA address is not the CA: its SVID is valid but
    /// names another SPIFFE ID. The handshake was aborted, so nothing (no
    /// join token, no CSR) was sent. Retried with backoff, since a wrong
    /// route or DNS answer may be temporary.
    #[error(
        "the server at the CA address presented {presented}, but the CA must present {expected}; nothing was sent to it. Check ca_address (and the DNS or routing to it); if your CA is deployed with another SPIFFE ID, set ca_spiffe_id in the agent config (or --ca-spiffe-id) to that ID"
    )]
    WrongCa {
        /// The CA's ID the agent requires (`ca_spiffe_id`).
        expected: SpiffeId,
        /// The ID in the server's certificate.
        presented: SpiffeId,
    },
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
        matches!(self, Self::Unavailable(_) | Self::WrongCa { .. })
    }

    /// [`Self::WrongCa`] if `e` or an error it wraps (through `source()`,
    /// `io::Error`, rustls or OpenSSL) is the CA-ID check failing.
    pub(super) fn wrong_ca_in(e: &(dyn StdError + 'static)) -> Option<Self> {
        let mut next = Some(e);
        let mut depth = 0;
        while let Some(e) = next
            && depth < 32
        {
            depth += 1;
            let inner = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|i| i as &(dyn StdError + 'static));
            for candidate in [Some(e), inner].into_iter().flatten() {
                if let Some(refused) = super::tls::peer_not_allowed(candidate)
                    && let [expected] = refused.expected_ids()
                {
                    return Some(Self::WrongCa {
                        expected: expected.clone(),
                        presented: refused.presented.clone(),
                    });
                }
            }
            next = inner.or_else(|| e.source());
        }
        None
    }
}

impl From<tonic::Status> for CaError {
    fn from(s: tonic::Status) -> Self {
        use tonic::Code;
        if let Some(wrong) = s.source().and_then(Self::wrong_ca_in) {
            return wrong;
        }
        let msg = s.message().to_owned();
        match s.code() {
            code if meshid_runtime::backoff::retryable(code) => {
                Self::Unavailable(format!("{code:?}: {msg}"))
            }
            Code::Unauthenticated | Code::NotFound => Self::AgentUnknown(msg),
            Code::PermissionDenied => Self::Banned(msg),
            code => Self::Rejected { code, message: msg },
        }
    }
}
