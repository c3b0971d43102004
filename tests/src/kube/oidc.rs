//! [`OidcIssuer`]: a service-account issuer's OIDC discovery over HTTPS on
//! loopback, as kube-apiserver publishes it: `GET
//! /.well-known/openid-configuration` (issuer, `jwks_uri`) and `GET
//! /openid/v1/jwks`. The issuer URL is the server's own
//! `https://127.0.0.1:<port>`, so tokens minted by
//! [`OidcIssuer::issuer`] carry an `iss` a verifier can discover; set
//! [`SaClaims::issuer`](super::SaClaims::issuer) to [`OidcIssuer::url`].

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::json;

use super::https::{self, HttpsServer};
use super::sa_token::{SaIssuer, SaKeyAlg};

/// Path of the discovery document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// Path of the key set.
pub const JWKS_PATH: &str = "/openid/v1/jwks";

#[derive(Debug, Default)]
struct State {
    issuer: Mutex<Option<Arc<SaIssuer>>>,
    discovery_fetches: AtomicUsize,
    jwks_fetches: AtomicUsize,
}

impl State {
    fn current(&self) -> Option<Arc<SaIssuer>> {
        self.issuer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A running OIDC issuer; it stops when dropped.
#[derive(Debug)]
pub struct OidcIssuer {
    server: HttpsServer,
    state: Arc<State>,
    alg: SaKeyAlg,
}

impl OidcIssuer {
    /// Serves discovery for a fresh [`SaIssuer`] of `alg` whose issuer URL
    /// is this server's URL.
    pub async fn start(alg: SaKeyAlg) -> Self {
        let state = Arc::new(State::default());
        let shared = state.clone();
        let server = HttpsServer::start(Arc::new(move |parts, _body| {
            let Some(issuer) = shared.current() else {
                return https::text(503, "issuer not ready");
            };
            if parts.method != http::Method::GET {
                return https::text(405, "method not allowed");
            }
            match parts.uri.path() {
                DISCOVERY_PATH => {
                    shared.discovery_fetches.fetch_add(1, Ordering::SeqCst);
                    https::json(
                        200,
                        &json!({
                            "issuer": issuer.issuer(),
                            "jwks_uri": format!("{}{JWKS_PATH}", issuer.issuer()),
                            "response_types_supported": ["id_token"],
                            "subject_types_supported": ["public"],
                            "id_token_signing_alg_values_supported": [
                                match issuer.alg() { SaKeyAlg::Es256 => "ES256", SaKeyAlg::Rs256 => "RS256" }
                            ],
                        }),
                    )
                }
                JWKS_PATH => {
                    shared.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    https::respond(
                        200,
                        "application/jwk-set+json",
                        issuer.jwks_json().into_bytes(),
                    )
                }
                _ => https::text(404, "404 page not found"),
            }
        }))
        .await;
        let me = Self { server, state, alg };
        me.rotate();
        me
    }

    /// The issuer URL, `https://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// The current signing key's issuer.
    pub fn issuer(&self) -> Arc<SaIssuer> {
        self.state.current().expect("the issuer is set at start")
    }

    /// Replaces the key by a fresh one (new `kid`); the key set then lists
    /// only the new key. Returns the new issuer.
    pub fn rotate(&self) -> Arc<SaIssuer> {
        let issuer = Arc::new(SaIssuer::new(&self.url(), self.alg));
        *self
            .state
            .issuer
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(issuer.clone());
        issuer
    }

    /// The PEM of the CA of the server's TLS certificate.
    pub fn ca_pem(&self) -> &str {
        self.server.ca_pem()
    }

    /// Writes [`ca_pem`](Self::ca_pem) to `path`.
    pub fn write_ca(&self, path: &Path) {
        std::fs::write(path, self.ca_pem())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// How many times the discovery document was fetched.
    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    /// How many times the key set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }
}
