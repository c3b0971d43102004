//! The few admin API calls `meshid up` makes on the CA's Unix socket.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use meshid_identity::{TrustBundle, TrustDomain};
use meshid_proto::ca::admin_client::AdminClient;
use meshid_proto::ca::{
    CreateEntriesRequest, CreateJoinTokenRequest, Entry, GetAuthorityRequest, GetBundleRequest,
    JoinToken, Selector, entry_result,
};
use rustls_pki_types::CertificateDer;
use tonic::transport::Channel;

use super::config::Plan;

/// A connected admin client.
#[derive(Debug)]
pub struct Admin {
    client: AdminClient<Channel>,
}

// === impl Admin ===

impl Admin {
    /// Connects to `socket`, retrying until `deadline`.
    pub async fn connect(socket: &Path, deadline: Instant) -> anyhow::Result<Self> {
        loop {
            match meshid_runtime::uds::channel(socket).await {
                Ok(channel) => {
                    return Ok(Self {
                        client: AdminClient::new(channel),
                    });
                }
                Err(e) if Instant::now() > deadline => {
                    return Err(anyhow::Error::new(e).context(format!(
                        "cannot reach the CA admin API at {}",
                        socket.display()
                    )));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// A join token for the demo agent.
    pub async fn join_token(&mut self) -> anyhow::Result<JoinToken> {
        let t = self
            .client
            .create_join_token(CreateJoinTokenRequest {
                ttl_seconds: 600,
                spiffe_id: String::new(),
                tenant: String::new(),
            })
            .await
            .context("CreateJoinToken failed")?
            .into_inner();
        if t.agent_spiffe_id.is_empty() {
            anyhow::bail!("the CA returned a join token without the agent's SPIFFE ID");
        }
        Ok(t)
    }

    /// One registration entry per demo service, parented to the agent.
    pub async fn create_entries(&mut self, plan: &Plan, agent_id: &str) -> anyhow::Result<()> {
        let entries = plan
            .services
            .iter()
            .map(|svc| Entry {
                spiffe_id: svc.spiffe_id.clone(),
                parent_id: agent_id.to_owned(),
                selectors: svc
                    .selectors
                    .iter()
                    .map(|(t, v)| Selector {
                        r#type: t.clone(),
                        value: v.clone(),
                    })
                    .collect(),
                ..Entry::default()
            })
            .collect();
        let resp = self
            .client
            .create_entries(CreateEntriesRequest { entries })
            .await
            .context("CreateEntries failed")?
            .into_inner();
        for (svc, r) in plan.services.iter().zip(resp.results) {
            if let Some(entry_result::Result::Error(e)) = r.result {
                anyhow::bail!(
                    "cannot create the entry of {}: {}",
                    svc.spiffe_id,
                    e.message
                );
            }
        }
        Ok(())
    }

    /// The trust bundle's X.509 roots as PEM.
    pub async fn bundle_pem(&mut self, td: &TrustDomain) -> anyhow::Result<String> {
        let resp = self
            .client
            .get_bundle(GetBundleRequest {
                trust_domain: String::new(),
            })
            .await
            .context("GetBundle failed")?
            .into_inner();
        let b = resp
            .bundle
            .ok_or_else(|| anyhow::anyhow!("the CA returned no bundle"))?;
        let mut bundle = TrustBundle::new(td.clone());
        bundle.x509_authorities = b
            .x509_authorities
            .into_iter()
            .map(CertificateDer::from)
            .collect();
        if bundle.x509_authorities.is_empty() {
            anyhow::bail!("the CA's bundle has no X.509 authority");
        }
        Ok(bundle.to_pem())
    }

    /// When the CA's signing certificate expires (Unix seconds).
    pub async fn ca_expires_at(&mut self) -> anyhow::Result<i64> {
        Ok(self
            .client
            .get_authority(GetAuthorityRequest {})
            .await
            .context("GetAuthority failed")?
            .into_inner()
            .expires_at)
    }
}
