use super::*;

fn encode(reg: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, reg).unwrap();
    out
}

fn recorded(mode: Mode, verdicts: &[&'static str]) -> String {
    let mut reg = Registry::default();
    let m = Metrics::register(&mut reg, mode);
    let r = m.recorder(INBOUND, "spiffe://example.org/a".into(), "b".into());
    for v in verdicts {
        r.record(v, 200, Duration::from_millis(1));
        m.connection(&ConnLabels {
            direction: INBOUND,
            source: "spiffe://example.org/a".into(),
            destination: "b".into(),
            decision: v,
        });
    }
    encode(&reg)
}

#[test]
fn an_audited_denial_is_decision_deny_in_mode_audit() {
    let text = recorded(Mode::Audit, &["allow", "deny(audit)", "deny(audit)"]);
    assert!(!text.contains("deny(audit)"), "{text}");
    assert!(
        text.contains(r#"meshid_proxy_requests_total{direction="inbound",source="spiffe://example.org/a",destination="b",decision="deny",mode="audit",status_class="2xx"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"decision="allow",mode="audit",status_class="2xx"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"meshid_proxy_connections_total{direction="inbound",source="spiffe://example.org/a",destination="b",decision="deny",mode="audit"} 2"#),
        "{text}"
    );
}

#[test]
fn an_enforced_denial_is_decision_deny_in_mode_enforce() {
    let text = recorded(Mode::Enforce, &["deny", ERROR_DECISION]);
    assert!(
        text.contains(r#"decision="deny",mode="enforce",status_class="2xx"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"decision="error",mode="enforce",status_class="2xx"} 1"#),
        "{text}"
    );
    assert!(!text.contains(r#"mode="audit""#), "{text}");
}

#[test]
fn handshakes_are_counted_by_direction_only() {
    let mut reg = Registry::default();
    let m = Metrics::register(&mut reg, Mode::Enforce);
    m.handshake(INBOUND);
    m.handshake(INBOUND);
    let text = encode(&reg);
    assert!(
        text.contains("\nmeshid_proxy_tls_handshakes_total{direction=\"inbound\"} 2\n"),
        "{text}"
    );
}
