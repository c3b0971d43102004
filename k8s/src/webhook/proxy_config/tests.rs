use super::*;
use meshid_proxy::config::Protocol;
use serde_json::json;

fn spec(ports: serde_json::Value) -> PodSpec {
    serde_json::from_value(json!({
        "containers": [{ "name": "app", "image": "app", "ports": ports }]
    }))
    .unwrap()
}

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parsed(g: &Generated) -> ProxyConfig {
    ProxyConfig::from_yaml(&g.yaml).unwrap()
}

#[test]
fn one_inbound_per_tcp_port_sorted_with_the_protocol_from_the_name() {
    let spec = spec(json!([
        { "containerPort": 9090, "name": "grpc-api" },
        { "containerPort": 8080, "name": "http" },
        { "containerPort": 5432 },
        { "containerPort": 53, "protocol": "UDP" },
        { "containerPort": 7070, "name": "h2c" },
    ]));
    let g = generate(&spec, &BTreeMap::new(), &InjectConfig::default())
        .unwrap()
        .unwrap();
    let cfg = parsed(&g);
    let got: Vec<_> = cfg
        .inbound
        .iter()
        .map(|l| (l.listen.port(), l.forward_to.to_string(), l.protocol))
        .collect();
    assert_eq!(
        got,
        [
            (15006, "127.0.0.1:5432".to_owned(), Protocol::Tcp),
            (15007, "127.0.0.1:7070".to_owned(), Protocol::Http2),
            (15008, "127.0.0.1:8080".to_owned(), Protocol::Http),
            (15009, "127.0.0.1:9090".to_owned(), Protocol::Http2),
        ]
    );
    assert_eq!(cfg.ops_listen.unwrap().to_string(), OPS_LISTEN);
    assert_eq!(cfg.policy.unwrap().to_str(), Some(POLICY_FILE));
    assert!(cfg.outbound.is_empty());
}

#[test]
fn the_inbound_ports_annotation_chooses_the_ports() {
    let spec = spec(json!([{ "containerPort": 8080, "name": "http" }, { "containerPort": 9090 }]));
    let a = annotations(&[(INBOUND_PORTS, "9090, 8080,9090")]);
    let g = generate(&spec, &a, &InjectConfig::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        g.inbound,
        [
            Inbound {
                listen: 15006,
                app: 8080
            },
            Inbound {
                listen: 15007,
                app: 9090
            }
        ]
    );
    let a = annotations(&[(INBOUND_PORTS, "")]);
    assert!(
        generate(&spec, &a, &InjectConfig::default())
            .unwrap()
            .is_none()
    );
    for bad in ["80,http", "0", "70000"] {
        let a = annotations(&[(INBOUND_PORTS, bad)]);
        let err = generate(&spec, &a, &InjectConfig::default()).unwrap_err();
        assert!(matches!(err, InjectError::Annotation(_)), "{bad}: {err}");
    }
}

#[test]
fn outbound_listeners_come_from_the_annotation() {
    let spec = spec(json!([]));
    let a = annotations(&[(
        OUTBOUND,
        r#"[{"port":15001,"upstream":"10.96.0.10:15006","serverId":"spiffe://example.org/ns/shop/sa/httpbin","protocol":"http"},
            {"port":15002,"upstream":"10.96.0.11:15006","trustDomain":"example.org","protocol":"tcp"}]"#,
    )]);
    let g = generate(&spec, &a, &InjectConfig::default())
        .unwrap()
        .unwrap();
    let cfg = parsed(&g);
    assert_eq!(cfg.outbound.len(), 2);
    assert_eq!(cfg.outbound[0].listen.to_string(), "127.0.0.1:15001");
    assert_eq!(
        cfg.outbound[0].server_id.as_ref().unwrap().as_str(),
        "spiffe://example.org/ns/shop/sa/httpbin"
    );
    assert_eq!(cfg.outbound[1].protocol, Protocol::Tcp);
    assert!(g.inbound.is_empty());
}

#[test]
fn what_the_proxy_would_refuse_is_refused_here() {
    let spec = spec(json!([]));
    for (bad, want) in [
        (r#"[{"port":15001}]"#, "annotation"),
        (r#"{"port":15001}"#, "annotation"),
        (
            r#"[{"port":15001,"upstream":"10.0.0.1:1","serverID":"x"}]"#,
            "annotation",
        ),
        (
            r#"[{"port":0,"upstream":"10.0.0.1:1","trustDomain":"td"}]"#,
            "annotation",
        ),
        // The proxy dials addresses, not names (yet).
        (
            r#"[{"port":15001,"upstream":"httpbin.shop.svc:15006","trustDomain":"td"}]"#,
            "proxy",
        ),
        (r#"[{"port":15001,"upstream":"10.0.0.1:1"}]"#, "proxy"),
        (
            r#"[{"port":15001,"upstream":"10.0.0.1:1","trustDomain":"td","protocol":"udp"}]"#,
            "proxy",
        ),
    ] {
        let err = generate(
            &spec,
            &annotations(&[(OUTBOUND, bad)]),
            &InjectConfig::default(),
        )
        .unwrap_err();
        let kind = match err {
            InjectError::Annotation(_) => "annotation",
            InjectError::ProxyConfig(_) => "proxy",
            _ => "other",
        };
        assert_eq!(kind, want, "{bad}: {err}");
    }
}

#[test]
fn colliding_ports_are_refused() {
    let cfg = InjectConfig::default();
    // The app itself listens where the first inbound listener would.
    let spec1 = spec(json!([{ "containerPort": 15006 }]));
    assert!(matches!(
        generate(&spec1, &BTreeMap::new(), &cfg),
        Err(InjectError::Ports(_))
    ));
    let spec2 = spec(json!([{ "containerPort": 8080 }]));
    for port in [15006, 15020, 8080] {
        let a = annotations(&[(
            OUTBOUND,
            &format!(r#"[{{"port":{port},"upstream":"10.0.0.1:1","trustDomain":"td"}}]"#),
        )]);
        assert!(
            matches!(generate(&spec2, &a, &cfg), Err(InjectError::Ports(_))),
            "{port}"
        );
    }
    let high = InjectConfig {
        inbound_port_base: 65535,
        ..InjectConfig::default()
    };
    let spec3 = spec(json!([{ "containerPort": 80 }, { "containerPort": 81 }]));
    assert!(matches!(
        generate(&spec3, &BTreeMap::new(), &high),
        Err(InjectError::Ports(_))
    ));
}

#[test]
fn a_pod_with_nothing_to_proxy_gets_no_config() {
    let spec = spec(json!([{ "containerPort": 53, "protocol": "UDP" }]));
    assert!(
        generate(&spec, &BTreeMap::new(), &InjectConfig::default())
            .unwrap()
            .is_none()
    );
}
