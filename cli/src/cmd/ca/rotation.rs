//! `meshid ca rotation`: the CA's key slots (X.509 CAs and JWT keys,
//! prepared → active → old) and the manual rotation steps, on the admin
//! API. The CA takes every step under its rotation lease, so it does not
//! matter which replica's admin socket is used.

use meshid_proto::ca as pb;
use serde_json::json;

use crate::admin_client::{self, Conn, Output, format_time};

/// Arguments of `meshid ca rotation`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Lists every key slot of every replica: state, key ID, expiry, how
    /// many unexpired SVIDs it signed, and whether it is tainted.
    Show(ShowArgs),
    /// Makes the next key now (a new self-signed root or JWT key) and
    /// publishes it in the trust bundle without signing with it yet.
    /// Refused if a key of that kind is prepared already, and for X.509
    /// under an enterprise root (replace the files, or let it renew from
    /// the upstream meshid CA).
    ///
    /// Example: meshid ca rotation prepare --kind x509
    Prepare(KindArgs),
    /// Starts signing with the prepared key; the active one becomes old and
    /// stays in the bundle until what it signed has expired. Refused if
    /// nothing is prepared, or if the prepared key was published less than
    /// the propagation delay ago (agents, proxies and Envoy may not trust
    /// it yet) unless --force.
    ///
    /// Example: meshid ca rotation activate --kind x509
    Activate(ActivateArgs),
    /// Marks a key as suspected compromised: every agent re-issues every
    /// SVID it signed at once, and an active tainted key is replaced as
    /// soon as its successor has propagated.
    ///
    /// Example: meshid ca rotation taint <KEY_ID from `show`>
    Taint(KeyIdArgs),
    /// Removes an old key from the trust bundle. Refused for a prepared or
    /// active key (activate another key first) and, unless --force, while
    /// unexpired SVIDs it signed exist (their workloads would be refused).
    Revoke(RevokeArgs),
}

/// Which kind of key a step is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Kind {
    /// The X.509 CA that signs X.509-SVIDs.
    X509,
    /// The key that signs JWT-SVIDs.
    Jwt,
}

/// `meshid ca rotation show`.
#[derive(Debug, clap::Args)]
struct ShowArgs {
    #[command(flatten)]
    conn: Conn,
}

/// `meshid ca rotation prepare`.
#[derive(Debug, clap::Args)]
struct KindArgs {
    /// The kind of key.
    #[arg(long, value_enum)]
    kind: Kind,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid ca rotation activate`.
#[derive(Debug, clap::Args)]
struct ActivateArgs {
    /// The kind of key.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Activate even if the prepared key was published less than the
    /// propagation delay ago; peers that have not yet fetched the new
    /// bundle will refuse SVIDs it signs.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid ca rotation taint`.
#[derive(Debug, clap::Args)]
struct KeyIdArgs {
    /// The key ID, as `meshid ca rotation show` prints it.
    key_id: String,
    #[command(flatten)]
    conn: Conn,
}

/// `meshid ca rotation revoke`.
#[derive(Debug, clap::Args)]
struct RevokeArgs {
    /// The key ID, as `meshid ca rotation show` prints it.
    key_id: String,
    /// Remove it even though unexpired SVIDs it signed exist; those
    /// workloads are refused by their peers until they are re-issued.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    conn: Conn,
}

/// Runs `meshid ca rotation`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Show(a) => show(a).await,
        Command::Prepare(a) => {
            let mut client = a.conn.connect().await?;
            let slot = client
                .prepare_key(pb::PrepareKeyRequest {
                    kind: wire_kind(a.kind).into(),
                })
                .await
                .map_err(|s| admin_client::refused("preparing the key failed", s))?
                .into_inner();
            print_step("Prepared", &slot, a.conn.output)
        }
        Command::Activate(a) => {
            let mut client = a.conn.connect().await?;
            let slot = client
                .activate_key(pb::ActivateKeyRequest {
                    kind: wire_kind(a.kind).into(),
                    force: a.force,
                })
                .await
                .map_err(|s| admin_client::refused("activating the key failed", s))?
                .into_inner();
            print_step("Activated", &slot, a.conn.output)
        }
        Command::Taint(a) => {
            let key_id = checked_key_id(&a.key_id)?;
            let mut client = a.conn.connect().await?;
            let slot = client
                .taint_key(pb::TaintKeyRequest { key_id })
                .await
                .map_err(|s| admin_client::refused("tainting the key failed", s))?
                .into_inner();
            print_step("Tainted", &slot, a.conn.output)
        }
        Command::Revoke(a) => {
            let key_id = checked_key_id(&a.key_id)?;
            let mut client = a.conn.connect().await?;
            let slot = client
                .revoke_key(pb::RevokeKeyRequest {
                    key_id,
                    force: a.force,
                })
                .await
                .map_err(|s| admin_client::refused("revoking the key failed", s))?
                .into_inner();
            print_step("Revoked", &slot, a.conn.output)
        }
    }
}

fn wire_kind(kind: Kind) -> pb::KeyKind {
    match kind {
        Kind::X509 => pb::KeyKind::X509,
        Kind::Jwt => pb::KeyKind::Jwt,
    }
}

/// The longest key ID accepted from the command line (X.509 key
/// identifiers are at most a few dozen hex digits, JWT `kid`s are short).
const MAX_KEY_ID: usize = 256;

/// A key ID as given, refused early if it cannot be one.
fn checked_key_id(key_id: &str) -> anyhow::Result<String> {
    let key_id = key_id.trim();
    if key_id.is_empty() || key_id.len() > MAX_KEY_ID || key_id.chars().any(char::is_whitespace) {
        anyhow::bail!(
            "{key_id:?} is not a key ID; copy one from `meshid ca rotation show` (1 to {MAX_KEY_ID} characters, no spaces)"
        );
    }
    Ok(key_id.to_owned())
}

async fn show(a: ShowArgs) -> anyhow::Result<()> {
    let mut client = a.conn.connect().await?;
    let slots = client
        .list_key_slots(pb::ListKeySlotsRequest {})
        .await
        .map_err(|s| admin_client::refused("listing the key slots failed", s))?
        .into_inner()
        .slots;
    match a.conn.output {
        Output::Json => admin_client::print_json(&json!({
            "slots": slots.iter().map(slot_json).collect::<Vec<_>>(),
        })),
        Output::Text => {
            print!("{}", table(&slots));
            Ok(())
        }
    }
}

fn print_step(done: &str, slot: &pb::KeySlot, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => admin_client::print_json(&slot_json(slot)),
        Output::Text => {
            println!(
                "{done} {} key {} (slot {}, now {}{})",
                kind_name(slot.kind()),
                slot.key_id,
                slot.id,
                state_name(slot.state()),
                if slot.tainted { ", tainted" } else { "" },
            );
            Ok(())
        }
    }
}

fn kind_name(kind: pb::KeyKind) -> &'static str {
    match kind {
        pb::KeyKind::X509 => "x509",
        pb::KeyKind::Jwt => "jwt",
        pb::KeyKind::Unspecified => "unknown",
    }
}

fn state_name(state: pb::KeySlotState) -> &'static str {
    match state {
        pb::KeySlotState::Prepared => "prepared",
        pb::KeySlotState::Active => "active",
        pb::KeySlotState::Old => "old",
        pb::KeySlotState::Unspecified => "unknown",
    }
}

/// A wire time (unix seconds, 0 = not set) for JSON: RFC 3339 or null.
fn time_json(unix: i64) -> serde_json::Value {
    if unix == 0 {
        serde_json::Value::Null
    } else {
        json!(format_time(unix))
    }
}

fn slot_json(s: &pb::KeySlot) -> serde_json::Value {
    json!({
        "id": s.id,
        "replica": s.replica,
        "kind": kind_name(s.kind()),
        "state": state_name(s.state()),
        "key_id": s.key_id,
        "not_before": time_json(s.not_before),
        "not_after": time_json(s.not_after),
        "prepared_at": time_json(s.prepared_at),
        "activated_at": time_json(s.activated_at),
        "retired_at": time_json(s.retired_at),
        "published_until": time_json(s.published_until),
        "tainted": s.tainted,
        "live_svids": s.live_svids,
        "subject": s.subject,
        "key_ref": s.key_ref,
    })
}

const HEADER: [&str; 8] = [
    "SLOT",
    "REPLICA",
    "KIND",
    "STATE",
    "KEY ID",
    "NOT AFTER",
    "LIVE SVIDS",
    "TAINTED",
];

/// The slots as an aligned text table with a header row.
fn table(slots: &[pb::KeySlot]) -> String {
    let rows: Vec<[String; 8]> = slots
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.replica.clone(),
                kind_name(s.kind()).to_owned(),
                state_name(s.state()).to_owned(),
                s.key_id.clone(),
                if s.not_after == 0 {
                    "-".to_owned()
                } else {
                    format_time(s.not_after)
                },
                if s.kind() == pb::KeyKind::X509 {
                    s.live_svids.to_string()
                } else {
                    "-".to_owned()
                },
                if s.tainted { "yes" } else { "no" }.to_owned(),
            ]
        })
        .collect();
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header = HEADER.map(str::to_owned);
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no key slots: is this CA older than key rotation?)\n");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn slot(id: &str, kind: pb::KeyKind, state: pb::KeySlotState) -> pb::KeySlot {
        pb::KeySlot {
            id: id.into(),
            replica: "ca-0".into(),
            kind: kind.into(),
            state: state.into(),
            key_id: "ab12".into(),
            not_after: 86_400,
            live_svids: 7,
            ..Default::default()
        }
    }

    #[test]
    fn the_table_aligns_columns_and_leaves_live_svids_blank_for_jwt_keys() {
        let text = table(&[
            slot("ca-0/x509/1", pb::KeyKind::X509, pb::KeySlotState::Active),
            slot("ca-0/jwt/12", pb::KeyKind::Jwt, pb::KeySlotState::Prepared),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("SLOT         REPLICA  KIND"), "{text}");
        assert!(
            lines[1].contains("x509  active    ab12    1970-01-02T00:00:00Z  7"),
            "{text}"
        );
        assert!(lines[2].contains("jwt   prepared"), "{text}");
        assert!(lines[2].contains("  -           no"), "{text}");
    }

    #[test]
    fn an_empty_journal_says_so() {
        assert!(table(&[]).contains("no key slots"));
    }

    #[test]
    fn key_ids_with_spaces_or_empty_are_refused_before_calling_the_ca() {
        assert!(checked_key_id("").is_err());
        assert!(checked_key_id("ab cd").is_err());
        assert!(checked_key_id(&"a".repeat(MAX_KEY_ID + 1)).is_err());
        assert_eq!(checked_key_id(" ab12 ").unwrap(), "ab12");
    }

    #[test]
    fn json_times_are_rfc3339_or_null() {
        let v = slot_json(&slot(
            "ca-0/x509/1",
            pb::KeyKind::X509,
            pb::KeySlotState::Old,
        ));
        assert_eq!(v["state"], "old");
        assert_eq!(v["not_after"], "1970-01-02T00:00:00Z");
        assert!(v["retired_at"].is_null());
    }
}
