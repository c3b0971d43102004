//! The authorize stage: evaluate the policy for an inbound request (peer
//! SPIFFE ID, port, method, path, headers, host) and refuse it with a 403
//! when the verdict is deny.

use super::ProxyBody;
use super::headers::{authority, path};
use super::outcome::RequestOutcome;
use crate::authz::{Verdict, rule_label};
use crate::context::{Peer, Shared};
use crate::policy::Request as AuthzRequest;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Full};

/// Response header that says why a request was denied.
pub const DENIED_HEADER: &str = "x-meshid-denied";

/// Decides `req` from `peer` to the application on `port`; records the
/// verdict (and the rule, when it is logged) in `outcome`. Returns the 403
/// to send back if the request is refused.
pub fn authorize<B>(
    shared: &Shared,
    port: u16,
    peer: &Peer,
    req: &Request<B>,
    outcome: &mut RequestOutcome,
) -> Option<Response<ProxyBody>> {
    let policy = shared.policy.load();
    let mut areq = AuthzRequest::http(
        peer.id.as_ref(),
        port,
        req.method().as_str(),
        path(req.uri()),
    )
    .with_headers(req.headers());
    if let Some(h) = authority(req) {
        areq = areq.with_host(h);
    }
    let d = policy.evaluate(&areq);
    outcome.verdict = shared.verdict(&d);
    if outcome.verdict != Verdict::Allow || shared.access_log.enabled() {
        outcome.rule = rule_label(&d);
    }
    if outcome.verdict != Verdict::Deny {
        return None;
    }
    let reason = match &d.policy {
        Some(p) => format!("{}: {p}", d.reason),
        None => d.reason.to_string(),
    };
    Some(forbidden(&reason))
}

/// The 403 of a denied request; `x-meshid-denied` says why.
fn forbidden(reason: &str) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from_static(
        b"RBAC: access denied\n",
    ))));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    if let Ok(v) = HeaderValue::from_str(reason) {
        resp.headers_mut()
            .insert(HeaderName::from_static(DENIED_HEADER), v);
    }
    resp
}
