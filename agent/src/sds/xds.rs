//! The state-of-the-world xDS bookkeeping of one SDS stream: what Envoy
//! subscribed to, what was sent last, and which nonce it must echo.

use meshid_proto::envoy::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use meshid_proto::envoy::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prost::Name;
use tonic::Status;

use super::MAX_RESOURCE_NAMES;
use super::resources::to_any;

/// What to do after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send the current secrets for the (new) subscription.
    Send,
    /// Nothing: an ACK, a NACK, or a stale request.
    Nothing,
}

/// One stream's state.
#[derive(Debug, Default)]
pub(crate) struct XdsState {
    /// Subscribed names; `None` until the first request.
    names: Option<Vec<String>>,
    /// Nonce of the last response; the next ACK/NACK must echo it.
    last_nonce: String,
    /// Responses sent so far (the nonce counter).
    sent_count: u64,
    /// Secrets in the last response, to push only real changes.
    last_sent: Option<Vec<Secret>>,
}

// === impl XdsState ===

impl XdsState {
    /// The names Envoy subscribed to, once it has asked.
    pub(crate) fn names(&self) -> Option<&[String]> {
        self.names.as_deref()
    }

    /// Reads one request from Envoy.
    pub(crate) fn on_request(&mut self, req: &DiscoveryRequest) -> Result<Action, Status> {
        let secret_type = Secret::type_url();
        if !req.type_url.is_empty() && req.type_url != secret_type {
            return Err(Status::invalid_argument(format!(
                "this is the secret discovery service; type_url must be {secret_type}"
            )));
        }
        if req.resource_names.len() > MAX_RESOURCE_NAMES {
            return Err(Status::invalid_argument(format!(
                "at most {MAX_RESOURCE_NAMES} resource names per request"
            )));
        }
        if !req.response_nonce.is_empty() && req.response_nonce != self.last_nonce {
            tracing::debug!(nonce = %req.response_nonce, "ignoring SDS request with a stale nonce");
            return Ok(Action::Nothing);
        }
        if let Some(err) = &req.error_detail {
            tracing::warn!(
                code = err.code,
                message = %err.message,
                version = %req.version_info,
                resources = ?req.resource_names,
                "Envoy rejected the secrets sent (NACK); they will not be sent again until they change"
            );
        }
        if self.names.as_deref() != Some(req.resource_names.as_slice()) {
            self.names = Some(req.resource_names.clone());
            return Ok(Action::Send);
        }
        Ok(Action::Nothing)
    }

    /// True if `secrets` differ from what was sent last.
    pub(crate) fn changed(&self, secrets: &[Secret]) -> bool {
        self.last_sent.as_deref() != Some(secrets)
    }

    /// The response carrying `secrets` at `version`; remembers its nonce.
    pub(crate) fn respond(&mut self, version: u64, secrets: Vec<Secret>) -> DiscoveryResponse {
        self.sent_count += 1;
        self.last_nonce = self.sent_count.to_string();
        let resp = DiscoveryResponse {
            version_info: version.to_string(),
            resources: to_any(&secrets),
            type_url: Secret::type_url(),
            nonce: self.last_nonce.clone(),
            ..Default::default()
        };
        self.last_sent = Some(secrets);
        resp
    }
}

#[cfg(test)]
mod tests {
    use meshid_proto::envoy::pb::google::rpc;

    use super::*;

    fn req(names: &[&str], nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            resource_names: names.iter().map(|s| s.to_string()).collect(),
            response_nonce: nonce.into(),
            type_url: Secret::type_url(),
            ..Default::default()
        }
    }

    fn secret(name: &str) -> Secret {
        Secret {
            name: name.into(),
            r#type: None,
        }
    }

    #[test]
    fn first_request_then_ack_then_new_names() {
        let mut s = XdsState::default();
        assert_eq!(
            s.on_request(&req(&["default"], "")).ok(),
            Some(Action::Send)
        );
        let r = s.respond(7, vec![secret("default")]);
        assert_eq!(r.version_info, "7");
        assert_eq!(r.resources.len(), 1);
        assert_eq!(
            s.on_request(&req(&["default"], &r.nonce)).ok(),
            Some(Action::Nothing)
        );
        assert_eq!(
            s.on_request(&req(&["default", "ROOTCA"], &r.nonce)).ok(),
            Some(Action::Send)
        );
        assert_eq!(s.names().map(<[String]>::len), Some(2));
    }

    #[test]
    fn nack_is_not_answered_and_same_content_is_not_resent() {
        let mut s = XdsState::default();
        s.on_request(&req(&["default"], "")).ok();
        let r = s.respond(1, vec![secret("default")]);
        let mut nack = req(&["default"], &r.nonce);
        nack.error_detail = Some(rpc::Status {
            code: 3,
            message: "bad key".into(),
            details: vec![],
        });
        assert_eq!(s.on_request(&nack).ok(), Some(Action::Nothing));
        assert!(!s.changed(&[secret("default")]));
        assert!(s.changed(&[secret("other")]));
    }

    #[test]
    fn stale_nonce_is_ignored_and_wrong_type_refused() {
        let mut s = XdsState::default();
        s.on_request(&req(&["a"], "")).ok();
        let _ = s.respond(1, vec![]);
        let _ = s.respond(2, vec![]);
        assert_eq!(s.on_request(&req(&["b"], "1")).ok(), Some(Action::Nothing));
        let mut bad = req(&["a"], "");
        bad.type_url = "type.googleapis.com/envoy.config.cluster.v3.Cluster".into();
        assert_eq!(
            s.on_request(&bad).err().map(|e| e.code()),
            Some(tonic::Code::InvalidArgument)
        );
        let many: Vec<String> = (0..=MAX_RESOURCE_NAMES).map(|i| i.to_string()).collect();
        let mut big = req(&[], "");
        big.resource_names = many;
        assert!(s.on_request(&big).is_err());
    }
}
