//! `meshid policy`: check and explain authorization policy files offline.

use anyhow::Context;
use meshid_identity::SpiffeId;
use meshid_proxy::policy::{Action, HeaderSource, Labels, PolicyDocument, Request, explain};
use std::path::PathBuf;

/// Arguments of `meshid policy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Validates a policy file; prints errors and warnings.
    Check(CheckArgs),
    /// Shows how a policy file decides one request or connection.
    Explain(ExplainArgs),
}

/// Arguments of `meshid policy check`.
#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The policy file (YAML).
    file: PathBuf,
    /// Ports served as opaque TCP: warns about HTTP-only rules on them.
    #[arg(long = "tcp-port")]
    tcp_ports: Vec<u16>,
}

/// Arguments of `meshid policy explain`.
#[derive(Debug, clap::Args)]
struct ExplainArgs {
    /// The policy file (YAML).
    #[arg(long)]
    policy: PathBuf,
    /// The caller's SPIFFE ID; omit for an unauthenticated peer.
    #[arg(long)]
    from: Option<String>,
    /// The destination port.
    #[arg(long)]
    port: u16,
    /// HTTP method; without it the question is about a TCP connection.
    #[arg(long)]
    method: Option<String>,
    /// HTTP path (default `/` when --method is given).
    #[arg(long)]
    path: Option<String>,
    /// HTTP host.
    #[arg(long)]
    host: Option<String>,
    /// HTTP header as `name=value`; repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// The workload's labels as `k=v,k2=v2` (`""` for none): decides which
    /// policies with a `selector` apply. Needed when one has a selector.
    #[arg(long, value_parser = parse_labels)]
    labels: Option<Labels>,
}

/// Runs `meshid policy …`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Check(a) => check(a),
        Command::Explain(a) => explain_cmd(a),
    }
}

fn check(a: CheckArgs) -> anyhow::Result<()> {
    let (doc, warnings) = PolicyDocument::from_file(&a.file)
        .with_context(|| format!("{} is not a valid policy file", a.file.display()))?;
    let mut warnings: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    warnings.extend(
        doc.tcp_port_warnings(&a.tcp_ports)
            .iter()
            .map(ToString::to_string),
    );
    for w in &warnings {
        println!("warning: {w}");
    }
    let selected = doc.policies().iter().filter(|p| p.has_selector()).count();
    let has_allow = doc.policies().iter().any(|p| p.action() == Action::Allow);
    let peer_auth = match doc.peer_authentication_count() {
        0 => String::new(),
        n => format!(", {n} peer authentication(s)"),
    };
    println!(
        "{}: OK, {} policies{}{}{peer_auth}, {} warning(s)",
        a.file.display(),
        doc.policies().len(),
        if selected > 0 {
            format!(" ({selected} with a selector: they apply to matching workloads only)")
        } else {
            String::new()
        },
        if has_allow {
            " (ALLOW present: unmatched traffic is denied)"
        } else {
            ""
        },
        warnings.len()
    );
    Ok(())
}

fn explain_cmd(a: ExplainArgs) -> anyhow::Result<()> {
    let (doc, _) = PolicyDocument::from_file(&a.policy)
        .with_context(|| format!("{} is not a valid policy file", a.policy.display()))?;
    let set = doc.for_workload(a.labels.as_ref())?;
    let peer = a
        .from
        .as_deref()
        .map(SpiffeId::parse)
        .transpose()
        .context("--from must be a SPIFFE ID such as spiffe://example.org/ns/default/sa/web")?;
    let pairs: Vec<(&str, &str)> = a
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let headers: &[(&str, &str)] = &pairs;
    let hs: &dyn HeaderSource = &headers;
    let req = match &a.method {
        Some(m) => {
            let mut r = Request::http(peer.as_ref(), a.port, m, a.path.as_deref().unwrap_or("/"))
                .with_headers(hs);
            if let Some(h) = &a.host {
                r = r.with_host(h);
            }
            r
        }
        None => Request::tcp(peer.as_ref(), a.port),
    };
    print!("{}", explain(&set, &req));
    Ok(())
}

fn parse_labels(s: &str) -> Result<Labels, String> {
    let pairs = s
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| format!("label {p:?} must be key=value"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Labels::from_pairs(pairs)
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("header {s:?} must be name=value"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn check_text(name: &str, text: &str) -> anyhow::Result<()> {
        let file = std::env::temp_dir().join(format!(
            "meshid-policy-check-{}-{name}.yaml",
            std::process::id()
        ));
        std::fs::write(&file, text).unwrap();
        let r = check(CheckArgs {
            file: file.clone(),
            tcp_ports: vec![],
        });
        let _ = std::fs::remove_file(&file);
        r
    }

    #[test]
    fn check_fails_on_files_without_policies() {
        for (name, text) in [
            ("empty", ""),
            ("comments", "# cut here\n"),
            ("list", "policies: []\n"),
        ] {
            let e = format!("{:#}", check_text(name, text).unwrap_err());
            assert!(e.contains("is not a valid policy file"), "{name}: {e}");
            assert!(e.contains("would allow all traffic"), "{name}: {e}");
        }
        check_text(
            "allow-all",
            "policies: [{ name: allow-all, action: ALLOW, rules: [{}] }]\n",
        )
        .unwrap();
    }

    const K8S: &str = r#"
policies:
  - name: shop/web
    selector: { matchLabels: { app: web } }
    action: ALLOW
    rules: [{ from: [{ source: { namespaces: ["shop"] } }] }]
peerAuthentication:
  - { name: meshid-system/default, scope: mesh, mode: STRICT }
  - { name: shop/default, scope: namespace, mode: PERMISSIVE }
  - { name: shop/legacy, scope: workload, selector: { matchLabels: { app: legacy } },
      mode: STRICT, portLevelMtls: { "8080": { mode: DISABLE } } }
"#;

    #[test]
    fn check_accepts_selectors_and_peer_authentication() {
        check_text("k8s", K8S).unwrap();
        let e = format!(
            "{:#}",
            check_text("bad-mode", &K8S.replace("mode: PERMISSIVE", "mode: LAX")).unwrap_err()
        );
        assert!(e.contains("unknown mode \"LAX\""), "{e}");
    }

    #[test]
    fn explain_needs_labels_when_a_selector_decides() {
        let file =
            std::env::temp_dir().join(format!("meshid-policy-explain-{}.yaml", std::process::id()));
        std::fs::write(&file, K8S).unwrap();
        let args = |labels: Option<&str>| ExplainArgs {
            policy: file.clone(),
            from: None,
            port: 8080,
            method: None,
            path: None,
            host: None,
            headers: vec![],
            labels: labels.map(|l| parse_labels(l).unwrap()),
        };
        let e = explain_cmd(args(None)).unwrap_err().to_string();
        assert!(e.contains("--labels"), "{e}");
        explain_cmd(args(Some("app=legacy,version=v1"))).unwrap();
        explain_cmd(args(Some(""))).unwrap();
        assert!(parse_labels("app").is_err());
        let _ = std::fs::remove_file(&file);
    }
}
