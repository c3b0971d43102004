//! The `SpiffeWorkloadAPI` gRPC service.

use std::sync::Arc;

use meshid_identity::SpiffeId;
use meshid_proto::workload::spiffe_workload_api_server::SpiffeWorkloadApi;
use meshid_proto::workload::{
    JwtBundlesRequest, JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse,
    ValidateJwtsvidRequest, ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse,
    X509svidRequest, X509svidResponse,
};
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::messages;
use super::{Build, Caller, JwtMinter, MintError, ShutdownSignal, watch_stream};
use crate::attestor::WorkloadAttestor;
use crate::cache::Snapshot;
use meshid_runtime::clock::SharedClock;

mod claims;

/// Most audiences one JWT-SVID request may name.
const MAX_AUDIENCES: usize = 32;
/// Longest audience string accepted.
const MAX_AUDIENCE_LEN: usize = 512;

/// The Workload API service (see [`serve`](super::serve) to run it).
#[derive(Debug, Clone)]
pub struct WorkloadApi {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    attestor: Arc<dyn WorkloadAttestor>,
    jwt: Arc<dyn JwtMinter>,
    clock: SharedClock,
    stop: ShutdownSignal,
}

type Stream<T> = ReceiverStream<Result<T, Status>>;

// === impl WorkloadApi ===

impl WorkloadApi {
    pub(crate) fn new(
        snapshots: watch::Receiver<Arc<Snapshot>>,
        attestor: Arc<dyn WorkloadAttestor>,
        jwt: Arc<dyn JwtMinter>,
        clock: SharedClock,
        stop: ShutdownSignal,
    ) -> Self {
        Self {
            snapshots,
            attestor,
            jwt,
            clock,
            stop,
        }
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        Caller::check_header(request)?;
        Caller::attest(request, self.attestor.as_ref()).await
    }

    fn stream<T>(&self, caller: Caller, build: Build<T>) -> Result<Stream<T>, Status>
    where
        T: PartialEq + Clone + Send + 'static,
    {
        watch_stream(
            caller,
            self.snapshots.clone(),
            self.clock.clone(),
            self.stop.clone(),
            build,
        )
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = Stream<X509svidResponse>;
    type FetchX509BundlesStream = Stream<X509BundlesResponse>;
    type FetchJWTBundlesStream = Stream<JwtBundlesResponse>;

    #[tracing::instrument(name = "FetchX509SVID", skip_all)]
    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let caller = self.caller(&request).await?;
        let build = Box::new(messages::x509_svid_response);
        Ok(Response::new(self.stream(caller, build)?))
    }

    #[tracing::instrument(name = "FetchX509Bundles", skip_all)]
    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        let caller = self.caller(&request).await?;
        let build = Box::new(messages::x509_bundles_response);
        Ok(Response::new(self.stream(caller, build)?))
    }

    #[tracing::instrument(name = "FetchJWTSVID", skip_all)]
    async fn fetch_jwtsvid(
        &self,
        request: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        check_audience(&req.audience)?;
        let mut svids = messages::entitled(&self.snapshot(), &caller.selectors, self.clock.now())?;
        if !req.spiffe_id.is_empty() {
            let wanted: SpiffeId = req.spiffe_id.parse().map_err(|e| {
                Status::invalid_argument(format!("spiffe_id is not a valid SPIFFE ID: {e}"))
            })?;
            svids.retain(|s| s.entry.spiffe_id == wanted);
            if svids.is_empty() {
                return Err(Status::permission_denied(format!(
                    "this workload is not entitled to {wanted}"
                )));
            }
        }
        let mut out = JwtsvidResponse::default();
        for s in &svids {
            let token = self
                .jwt
                .mint(&s.entry.id, &req.audience)
                .await
                .map_err(|e| match e {
                    MintError::Unavailable(_) => Status::unavailable(e.to_string()),
                    _ => Status::permission_denied(e.to_string()),
                })?;
            out.svids.push(Jwtsvid {
                spiffe_id: s.entry.spiffe_id.as_str().to_owned(),
                svid: token,
                hint: s.entry.hint.clone(),
            });
        }
        caller.still_same()?;
        Ok(Response::new(out))
    }

    #[tracing::instrument(name = "FetchJWTBundles", skip_all)]
    async fn fetch_jwt_bundles(
        &self,
        request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        let caller = self.caller(&request).await?;
        let build = Box::new(messages::jwt_bundles_response);
        Ok(Response::new(self.stream(caller, build)?))
    }

    #[tracing::instrument(name = "ValidateJWTSVID", skip_all)]
    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        // Any attested process may validate tokens; it needs no entry.
        let caller = self.caller(&request).await?;
        let req = request.into_inner();
        if req.audience.is_empty() {
            return Err(Status::invalid_argument("audience must be specified"));
        }
        if req.svid.is_empty() {
            return Err(Status::invalid_argument("svid must be specified"));
        }
        let snap = self.snapshot();
        let claims = meshid_identity::jwt::validate(
            &req.svid,
            &req.audience,
            &snap.bundles,
            self.clock.now(),
        )
        .map_err(|e| Status::invalid_argument(format!("the JWT-SVID is not valid: {e}")))?;
        caller.still_same()?;
        Ok(Response::new(ValidateJwtsvidResponse {
            spiffe_id: claims.spiffe_id.as_str().to_owned(),
            claims: Some(claims::to_struct(&claims.claims)),
        }))
    }
}

fn check_audience(audience: &[String]) -> Result<(), Status> {
    if audience.is_empty() {
        return Err(Status::invalid_argument("audience must be specified"));
    }
    if audience.len() > MAX_AUDIENCES {
        return Err(Status::invalid_argument(format!(
            "at most {MAX_AUDIENCES} audiences per request"
        )));
    }
    if audience
        .iter()
        .any(|a| a.is_empty() || a.len() > MAX_AUDIENCE_LEN)
    {
        return Err(Status::invalid_argument(format!(
            "each audience must be 1 to {MAX_AUDIENCE_LEN} bytes"
        )));
    }
    Ok(())
}
