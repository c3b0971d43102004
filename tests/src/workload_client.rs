//! A real SPIFFE Workload API client for tests: JWT-SVIDs fetched and
//! validated by an agent, and the JWT bundles it serves. Every call opens
//! its own channel, so a test may call while the agent restarts; `None`
//! when the agent refuses or cannot be reached.

use std::path::Path;

use meshid_identity::{BundleSet, TrustBundle, TrustDomain};
use meshid_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use meshid_proto::workload::{JwtBundlesRequest, JwtsvidRequest, ValidateJwtsvidRequest};
use tonic::transport::Channel;

async fn client(socket: &Path) -> Option<SpiffeWorkloadApiClient<Channel>> {
    let channel = meshid_runtime::uds::channel(socket).await.ok()?;
    Some(SpiffeWorkloadApiClient::new(channel))
}

/// `msg` with the `workload.spiffe.io: true` header the Workload API needs.
fn with_header<T>(msg: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        meshid_proto::WORKLOAD_HEADER,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    req
}

/// A JWT-SVID for `audience` from the agent at `socket` (its first SVID).
pub async fn fetch_jwt(socket: &Path, audience: &str) -> Option<String> {
    let req = JwtsvidRequest {
        audience: vec![audience.to_owned()],
        spiffe_id: String::new(),
    };
    let resp = client(socket)
        .await?
        .fetch_jwtsvid(with_header(req))
        .await
        .ok()?;
    resp.into_inner().svids.into_iter().next().map(|s| s.svid)
}

/// The SPIFFE ID of `token` if the agent at `socket` validates it.
pub async fn validate_jwt(socket: &Path, token: &str, audience: &str) -> Option<String> {
    let req = ValidateJwtsvidRequest {
        audience: audience.to_owned(),
        svid: token.to_owned(),
    };
    let resp = client(socket)
        .await?
        .validate_jwtsvid(with_header(req))
        .await
        .ok()?;
    Some(resp.into_inner().spiffe_id)
}

/// The JWT bundles the agent at `socket` serves now (the first message of
/// its FetchJWTBundles stream), as a relying party would cache them.
pub async fn jwt_bundles(socket: &Path) -> Option<BundleSet> {
    let mut stream = client(socket)
        .await?
        .fetch_jwt_bundles(with_header(JwtBundlesRequest::default()))
        .await
        .ok()?
        .into_inner();
    let msg = stream.message().await.ok()??;
    let mut set = BundleSet::new();
    for (td, json) in msg.bundles {
        let td = TrustDomain::new(td.strip_prefix("spiffe://").unwrap_or(&td)).ok()?;
        set.insert(TrustBundle::from_spiffe_json(td, &json).ok()?);
    }
    Some(set)
}
