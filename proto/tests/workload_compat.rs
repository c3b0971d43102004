//! Wire compatibility of our Workload API definition: the independent
//! `spiffe` crate's client calls a minimal server built from `proto/` over a
//! Unix socket, and gets what the server sent.

#![allow(clippy::unwrap_used)]

use std::pin::Pin;

use meshid_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use meshid_proto::workload::*;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

type Stream2<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

struct Fixed {
    svid: X509svid,
}

fn require_header<T>(req: &Request<T>) -> Result<(), Status> {
    match req.metadata().get(meshid_proto::WORKLOAD_HEADER) {
        Some(v) if v == "true" => Ok(()),
        _ => Err(Status::invalid_argument(
            "missing workload.spiffe.io header",
        )),
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for Fixed {
    type FetchX509SVIDStream = Stream2<X509svidResponse>;
    type FetchX509BundlesStream = Stream2<X509BundlesResponse>;
    type FetchJWTBundlesStream = Stream2<JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        req: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        require_header(&req)?;
        let msg = X509svidResponse {
            svids: vec![self.svid.clone()],
            ..Default::default()
        };
        let s = tokio_stream::iter(vec![Ok(msg)]).chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(s)))
    }

    async fn fetch_x509_bundles(
        &self,
        req: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        require_header(&req)?;
        let mut bundles = std::collections::HashMap::new();
        bundles.insert("spiffe://example.org".to_string(), self.svid.bundle.clone());
        let msg = X509BundlesResponse {
            bundles,
            ..Default::default()
        };
        let s = tokio_stream::iter(vec![Ok(msg)]).chain(tokio_stream::pending());
        Ok(Response::new(Box::pin(s)))
    }

    async fn fetch_jwtsvid(
        &self,
        _req: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn fetch_jwt_bundles(
        &self,
        _req: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn validate_jwtsvid(
        &self,
        _req: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

use tokio_stream::StreamExt as _;

fn test_svid() -> X509svid {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://example.org".try_into().unwrap(),
    )];
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, &ca_key);

    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.is_ca = rcgen::IsCa::ExplicitNoCa;
    leaf.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://example.org/workload".try_into().unwrap(),
    )];
    leaf.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let leaf_cert = leaf.signed_by(&key, &issuer).unwrap();
    X509svid {
        spiffe_id: "spiffe://example.org/workload".into(),
        x509_svid: leaf_cert.der().to_vec(),
        x509_svid_key: key.serialize_der(),
        bundle: ca_cert.der().to_vec(),
        hint: "internal".into(),
    }
}

#[tokio::test]
async fn spiffe_crate_client_talks_to_our_service() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
    let svc = SpiffeWorkloadApiServer::new(Fixed { svid: test_svid() });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming),
    );

    let client = spiffe::WorkloadApiClient::connect_to(format!("unix:{}", sock.display()))
        .await
        .unwrap();
    let svid = client.fetch_x509_svid().await.unwrap();
    assert_eq!(
        svid.spiffe_id().to_string(),
        "spiffe://example.org/workload"
    );
    assert_eq!(svid.hint(), Some("internal"));
    let bundles = client.fetch_x509_bundles().await.unwrap();
    let td = spiffe::TrustDomain::new("example.org").unwrap();
    assert!(bundles.get(&td).is_some(), "bundle for example.org");
}

#[tokio::test]
async fn method_paths_have_no_package() {
    // The spec's paths are `/SpiffeWorkloadAPI/<Method>`.
    assert_eq!(
        <SpiffeWorkloadApiServer<Fixed> as tonic::server::NamedService>::NAME,
        "SpiffeWorkloadAPI"
    );
}
