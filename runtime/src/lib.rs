//! meshid runtime: async plumbing shared by the long-running parts (CA,
//! agent, proxy). It knows nothing of them.
//!
//! - [`accept`]: the one accept loop of the small HTTP servers (ops,
//!   webhook): connection cap, bounded drain on shutdown.
//! - [`authority`]: lets HTTP/2 servers on Unix sockets accept the
//!   `:authority` that gRPC C-core, Java and Swift clients send there.
//! - [`clock`]: the one wall clock trait, real and manual (tests).
//! - [`backoff`]: exponential backoff with jitter for retry loops, and
//!   which gRPC status codes are worth a retry.
//! - [`fs`]: bounded reads of the small files meshid is given or keeps.
//! - [`duration`]: the one duration grammar (humantime) of every config
//!   file and flag, as a serde field helper and a parser.
//! - [`ops`]: the ops HTTP endpoint (`/healthz`, `/readyz`, `/metrics`)
//!   with a readiness seam each component fills, and its probe client.
//! - [`tls`]: the TCP + TLS connector of tonic client channels.
//! - [`uds`]: hardened Unix-socket listeners for tonic servers: connection
//!   caps (total and per user), handshake and idle timeouts, metrics; and
//!   [`uds::channel`], the tonic client channel to a Unix socket.
#![forbid(unsafe_code)]

pub mod accept;
pub mod authority;
pub mod backoff;
pub mod clock;
pub mod duration;
pub mod fs;
pub mod ops;
pub mod tls;
pub mod uds;
