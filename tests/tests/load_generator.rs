//! `tempest-load` drives every receiver: all spans are accepted and land in committed blocks.

use std::process::Command;

use tempest_tests::Tempest;

#[tokio::test]
async fn tempest_load_over_every_protocol() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = Tempest::start(dir.path(), &[], &[]).await;
    let load = tempest_tests::tempest::sibling_binary("tempest-load");
    assert!(
        load.exists(),
        "tempest-load not built at {}",
        load.display()
    );
    let mut sent_by_protocol = Vec::new();
    for (protocol, endpoint, tenant) in [
        (
            "otlp-http",
            format!("http://127.0.0.1:{}/v1/traces", t.otlp_port),
            "a",
        ),
        (
            "otlp-grpc",
            format!("http://127.0.0.1:{}", t.grpc_port),
            "b",
        ),
        (
            "zipkin",
            format!("http://127.0.0.1:{}/api/v2/spans", t.zipkin_port),
            "c",
        ),
        (
            "jaeger",
            format!("http://127.0.0.1:{}/api/traces", t.jaeger_port),
            "d",
        ),
    ] {
        let out = Command::new(&load)
            .args([
                "--protocol",
                protocol,
                "--endpoint",
                &endpoint,
                "--tenant",
                tenant,
                "--traces",
                "300",
                "--batch",
                "7",
                "--seed",
                "7",
            ])
            .output()
            .expect("run tempest-load");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{protocol}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let field = |name: &str| -> u64 {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} in summary:\n{stdout}"))
        };
        let (sent, accepted) = (field("spans sent"), field("spans accepted"));
        assert!(sent > 300, "traces have several spans");
        assert_eq!(accepted, sent, "{protocol}: every span accepted");
        // Every accepted span is in the tenant's committed blocks.
        let loc =
            tempest_blocks::store::Location::open(&dir.path().join("traces").to_string_lossy())
                .expect("open");
        let metas = tempest_blocks::reader::list_blocks(
            &loc,
            &tempest_core::TenantId::parse(Some(tenant)).expect("tenant"),
        )
        .await
        .expect("list");
        assert_eq!(
            metas.iter().map(|m| m.span_count).sum::<u64>(),
            sent,
            "{protocol}"
        );
        sent_by_protocol.push((protocol, sent));
    }
    // The same seed gives the same traces whatever the protocol.
    assert!(
        sent_by_protocol
            .iter()
            .all(|(_, n)| *n == sent_by_protocol[0].1),
        "{sent_by_protocol:?}"
    );
}
