//! The CA admin API client shared by `meshid entry|token|agent|bundle|
//! tenant|rbac|audit`.
//!
//! The admin API is served on a local Unix socket; the CA authorizes each
//! call by the caller's uid/gid (peer credentials) and, with
//! `--token-file`, a Kubernetes bearer token. Its path comes from, in
//! order: `--admin-socket`, the `MESHID_ADMIN_SOCKET` environment variable,
//! then [`DEFAULT_ADMIN_SOCKET`] (where `meshid ca serve` puts it with its
//! default data directory, relative to the working directory).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use meshid_proto::ca::admin_client::AdminClient;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The admin socket of a CA started with its default data directory.
pub const DEFAULT_ADMIN_SOCKET: &str = "./.meshid/ca/admin.sock";

/// Flags every admin command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Path of the CA's admin Unix socket.
    #[arg(
        long,
        env = "MESHID_ADMIN_SOCKET",
        default_value = DEFAULT_ADMIN_SOCKET,
        value_name = "PATH"
    )]
    pub admin_socket: PathBuf,
    /// A file holding a Kubernetes bearer token (e.g. a service account's),
    /// sent as `authorization: Bearer …`: the CA checks it with TokenReview
    /// and authorizes its user and groups.
    #[arg(long, env = "MESHID_ADMIN_TOKEN_FILE", value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Output format: `text` for people, `json` for scripts.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// The longest bearer token read from `--token-file` (the CA refuses
/// longer ones too).
pub const MAX_TOKEN_LEN: u64 = 16 * 1024;

/// An admin client on the socket, adding the bearer token (if any) to
/// every call.
pub type Client = AdminClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` to each request when a token was
/// given; `Debug` never shows the token.
#[derive(Clone, Default)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = if self.0.is_some() {
            "Some(***)"
        } else {
            "None"
        };
        f.debug_tuple("Bearer")
            .field(&format_args!("{shown}"))
            .finish()
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

impl Bearer {
    /// The token in `path`: surrounding whitespace (a trailing newline)
    /// ignored; empty, oversized or non-printable content refused.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = meshid_runtime::fs::read_to_string(path, MAX_TOKEN_LEN)
            .with_context(|| format!("cannot read the token file {}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            anyhow::bail!("the token file {} is empty", path.display());
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            anyhow::bail!(
                "the token file {} holds characters a bearer token cannot have \
                 (only printable ASCII without spaces)",
                path.display()
            );
        }
        let mut value =
            AsciiMetadataValue::try_from(format!("Bearer {token}")).with_context(|| {
                format!(
                    "the token in {} is not a valid header value",
                    path.display()
                )
            })?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Human-readable text.
    Text,
    /// One JSON document on stdout.
    Json,
}

impl Conn {
    /// Connects to the admin socket, with the bearer token of
    /// `--token-file` when given.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let bearer = match &self.token_file {
            Some(path) => Bearer::from_file(path)?,
            None => Bearer::default(),
        };
        Ok(
            AdminClient::with_interceptor(channel(&self.admin_socket).await?, bearer)
                .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
                .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE),
        )
    }
}

/// Connects to the admin API at `path` (no bearer token).
pub async fn connect(path: &Path) -> anyhow::Result<AdminClient<Channel>> {
    Ok(AdminClient::new(channel(path).await?)
        .max_decoding_message_size(meshid_proto::MAX_MESSAGE_SIZE)
        .max_encoding_message_size(meshid_proto::MAX_MESSAGE_SIZE))
}

async fn channel(path: &Path) -> anyhow::Result<Channel> {
    meshid_runtime::uds::channel(path).await.with_context(|| {
        format!(
            "cannot reach the CA admin socket {}; is `meshid ca serve` running? \
             Point to its socket with --admin-socket or MESHID_ADMIN_SOCKET",
            path.display()
        )
    })
}

/// Turns a gRPC status from the CA into an error that shows the CA's own
/// explanation (which says what to fix).
pub fn refused(what: &str, status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what}: {} ({:?})", status.message(), status.code())
}

/// Seconds as the `u32` the wire wants, refusing what does not fit.
pub fn seconds(d: Duration) -> anyhow::Result<u32> {
    u32::try_from(d.as_secs()).map_err(|_| anyhow::anyhow!("duration {d:?} is too long"))
}

/// Formats seconds as a short duration (`1h`, `90s`, `2h30m`).
pub fn format_secs(secs: u64) -> String {
    if secs == 0 {
        return "default".into();
    }
    let (d, h, m, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let mut out = String::new();
    for (v, u) in [(d, "d"), (h, "h"), (m, "m"), (s, "s")] {
        if v > 0 {
            out.push_str(&format!("{v}{u}"));
        }
    }
    out
}

/// Unix seconds as an RFC 3339 UTC time.
pub fn format_time(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// `rows` under `header` as an aligned text table (two spaces between
/// columns, no trailing blanks); `empty` on its own line when there are no
/// rows.
pub fn table<const N: usize>(header: [&str; N], rows: &[[String; N]], empty: &str) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = header.map(str::to_owned);
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str(empty);
        out.push('\n');
    }
    out
}

/// A list for a table cell: comma-separated, `-` when empty.
pub fn cell_list(v: &[String]) -> String {
    if v.is_empty() {
        "-".to_owned()
    } else {
        v.join(",")
    }
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seconds_format_compactly() {
        assert_eq!(format_secs(0), "default");
        assert_eq!(format_secs(90), "1m30s");
        assert_eq!(format_secs(3600), "1h");
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn tables_align_columns_and_say_when_empty() {
        let rows = [
            ["a".to_owned(), "bb".to_owned()],
            ["ccc".to_owned(), String::new()],
        ];
        assert_eq!(table(["X", "Y"], &rows, "(none)"), "X    Y\na    bb\nccc\n");
        assert_eq!(table(["X", "Y"], &[], "(none)"), "X  Y\n(none)\n");
        assert_eq!(cell_list(&[]), "-");
    }

    #[test]
    fn the_token_file_is_trimmed_bounded_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc.def\n").unwrap();
        let bearer = Bearer::from_file(&path).unwrap();
        assert_eq!(format!("{bearer:?}"), "Bearer(Some(***))");
        let mut req = tonic::Request::new(());
        req = bearer.clone().call(req).unwrap();
        assert_eq!(
            req.metadata()
                .get("authorization")
                .unwrap()
                .to_str()
                .unwrap(),
            "Bearer abc.def"
        );
        std::fs::write(&path, "\n").unwrap();
        let e = Bearer::from_file(&path).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
        std::fs::write(&path, "a b").unwrap();
        assert!(Bearer::from_file(&path).is_err());
        std::fs::write(&path, vec![b'a'; 16 * 1024 + 1]).unwrap();
        let e = format!("{:#}", Bearer::from_file(&path).unwrap_err());
        assert!(e.contains("larger than"), "{e}");
    }
}
