//! [`Forward`]: one listener's request path. Each request goes through the
//! stages in order, around one [`RequestOutcome`]:
//!
//! ```text
//! authorize (inbound) ─deny─▶ 403 ───────────────┐
//!     │ allow                                    ▼
//! trace (join the hop, traceparent) → forward (rewrite, send) → record
//! ```
//!
//! The stages are plain functions (no boxed services): the path costs no
//! allocation or dynamic dispatch beyond what hyper itself does.

use super::ProxyBody;
use super::authorize::authorize;
use super::hop::TraceHop;
use super::outcome::{RequestLine, RequestOutcome};
use super::record::record;
use super::send::{Client, UpstreamVersion};
use super::serve::Downstream;
use crate::connect::Upstream;
use crate::context::Shared;
use crate::metrics::{Direction, INBOUND};
use http::{Request, Response};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;

/// Forwards requests of one listener to its upstream.
#[derive(Debug)]
pub struct Forward {
    direction: Direction,
    /// Destination label (address or expected server ID).
    destination: Arc<str>,
    /// Port given to the policy engine (the application's port); `None`:
    /// requests are not authorized (outbound).
    authorize: Option<u16>,
    client: Client,
    shared: Arc<Shared>,
}

// === impl Forward ===

impl Forward {
    /// A forwarder to `upstream`; inbound requests are authorized for
    /// `port`. `pool: false` opens a connection per request. Call from
    /// within the runtime that will serve it.
    pub fn new(
        (direction, destination): (Direction, Arc<str>),
        port: u16,
        upstream: (Upstream, UpstreamVersion),
        pool: bool,
        shared: Arc<Shared>,
    ) -> Self {
        let (upstream, version) = upstream;
        Self {
            direction,
            client: Client::new(upstream, version, pool, destination.clone()),
            destination,
            authorize: (direction == INBOUND).then_some(port),
            shared,
        }
    }

    /// The state shared by every listener.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// This listener's direction and destination label.
    pub fn listener(&self) -> (Direction, Arc<str>) {
        (self.direction, self.destination.clone())
    }

    /// Handles one request; never fails (errors become 403/400/502
    /// responses).
    pub async fn handle(
        &self,
        conn: &Downstream,
        mut req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let _active = conn.active();
        let shared = &*self.shared;
        let log = shared.access_log.enabled();
        let mut outcome = RequestOutcome::start(log.then(|| RequestLine::of(&req)));
        let hop = TraceHop::join(shared.spans.as_ref(), self.direction, &req);
        let denied = self
            .authorize
            .and_then(|port| authorize(shared, port, &conn.peer, &req, &mut outcome));
        let resp = match denied {
            Some(resp) => resp,
            None => {
                outcome.trace = hop.propagate(&mut req, log);
                self.client.forward(req, &mut outcome).await
            }
        };
        outcome.status = resp.status();
        let verdict = outcome.verdict;
        record(&shared.access_log, conn, outcome);
        hop.finish(shared.spans.as_ref(), &conn.peer, resp.status(), verdict);
        Ok(resp)
    }
}
