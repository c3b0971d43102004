//! What `meshid up` prints once everything runs.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use http::StatusCode;

use super::children::Children;
use super::config::{Layout, Plan};
use super::{Isolation, Up};

/// Prints the report to stdout and flushes it.
pub fn print(
    plan: &Plan,
    layout: &Layout,
    up: &Up,
    children: &Children,
    keep: bool,
    took: Duration,
) {
    use std::io::Write as _;
    let text = render(plan, layout, up, children, keep, took);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn pid_of(children: &Children, name: &str) -> String {
    children
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.pid.to_string())
        .unwrap_or_else(|| "?".into())
}

fn rfc3339(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t}"))
}

fn unix_rfc3339(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) if secs > 0 => rfc3339(t.into()),
        _ => "unknown".into(),
    }
}

fn render(
    plan: &Plan,
    layout: &Layout,
    up: &Up,
    children: &Children,
    keep: bool,
    took: Duration,
) -> String {
    let [a, b] = &plan.services;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\nmeshid up: everything runs ({:.1}s)\n",
        took.as_secs_f64()
    );
    let _ = writeln!(
        s,
        "  data dir      {} ({})",
        layout.root.display(),
        if keep {
            "kept on exit"
        } else {
            "removed on exit"
        }
    );
    let _ = writeln!(
        s,
        "  trust domain  {}   self-signed root, expires {}",
        plan.trust_domain,
        unix_rfc3339(up.ca_expires_at)
    );
    if let Some(b) = plan.tls_backend {
        let _ = writeln!(
            s,
            "  TLS backend   {} (CA, agent and both proxies)",
            b.as_str()
        );
    }
    let _ = writeln!(
        s,
        "  CA            pid {}   node API 127.0.0.1:{}   admin socket {}\n                ops http://127.0.0.1:{}/metrics",
        pid_of(children, "ca"),
        plan.ports.ca_node,
        layout.admin_socket.display(),
        plan.ports.ca_ops,
    );
    let _ = writeln!(
        s,
        "  agent         pid {}   {}\n                Workload API unix://{}   ops http://127.0.0.1:{}/metrics",
        pid_of(children, "agent"),
        up.agent_id,
        layout.workload_socket.display(),
        plan.ports.agent_ops,
    );
    for (svc, seen) in plan.services.iter().zip(&up.certs) {
        let how = match (&svc.uid, &svc.exe) {
            (Some(uid), _) => format!("runs as uid {uid}"),
            (None, Some(exe)) => format!("runs from {}", exe.display()),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "  {}     app http://{}   proxy pid {} ({how})",
            svc.name,
            svc.app,
            pid_of(children, &svc.proxy_name()),
        );
        let _ = writeln!(
            s,
            "                inbound (mTLS) 127.0.0.1:{}   ops http://127.0.0.1:{}/metrics",
            svc.inbound_port, svc.ops_port
        );
        if svc.name == a.name {
            let _ = writeln!(
                s,
                "                outbound 127.0.0.1:{} -> {} at 127.0.0.1:{}",
                plan.ports.a_outbound, b.spiffe_id, b.inbound_port
            );
        }
        let sel: Vec<String> = svc
            .selectors
            .iter()
            .map(|(t, v)| format!("{t}:{v}"))
            .collect();
        let _ = writeln!(
            s,
            "                entry {}  <=  {}",
            svc.spiffe_id,
            sel.join(" + ")
        );
        match &seen.svid {
            Ok((id, not_after)) => {
                let _ = writeln!(
                    s,
                    "                presents {id}, X.509-SVID expires {}",
                    rfc3339(*not_after)
                );
            }
            Err(e) => {
                let _ = writeln!(s, "                presented certificate: {e}");
            }
        }
    }
    let _ = writeln!(
        s,
        "  policy        {}: ALLOW {} -> GET /hello; everything else denied",
        layout.policy_yaml.display(),
        a.spiffe_id
    );
    let _ = writeln!(
        s,
        "\ncalls from service-a to service-b (plaintext to A's outbound port, mTLS between the proxies):"
    );
    for (label, o, want) in [
        ("allowed", &up.allowed, StatusCode::OK),
        ("denied ", &up.denied, StatusCode::FORBIDDEN),
    ] {
        let mark = if o.status == want {
            ""
        } else {
            "   <-- UNEXPECTED"
        };
        let _ = writeln!(
            s,
            "  {label}  {:<12} -> {} {:?}{mark}",
            o.what, o.status, o.body
        );
    }
    let _ = writeln!(s, "\ntry it by hand:");
    let _ = writeln!(
        s,
        "  curl -i http://127.0.0.1:{}/hello",
        plan.ports.a_outbound
    );
    let _ = writeln!(
        s,
        "  curl -i -X POST http://127.0.0.1:{}/admin",
        plan.ports.a_outbound
    );
    let me = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "meshid".into());
    let fetch_as = match plan.isolation {
        Isolation::Uid => format!(
            "setpriv --reuid={0} --regid={0} --clear-groups {me}",
            a.uid.unwrap_or(0)
        ),
        _ => a
            .exe
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or(me),
    };
    let _ = writeln!(
        s,
        "  SPIFFE_ENDPOINT_SOCKET=unix://{} {fetch_as} agent api fetch   # as service-a",
        layout.workload_socket.display()
    );
    let _ = writeln!(s, "  logs: {}/*.log", layout.logs.display());
    let pids: Vec<String> = children
        .iter()
        .map(|c| format!("{}={}", c.name, c.pid))
        .collect();
    let _ = writeln!(s, "  children: {}", pids.join(" "));
    let _ = writeln!(s, "\nmeshid up: ready; press Ctrl-C to stop");
    s
}
