//! Tempest's own spans, exported with opentelemetry-otlp into its own ingest: an app's request
//! is one trace across invoke → publish → deliver, and the span ids apps receive exist.

use serde_json::json;
use tempest_tests::{Tempest, TestApp, eventually};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn building_block_calls_are_traced_into_tempest_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = TestApp::start().await;
    app.subscriptions(json!([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}]));
    let t = Tempest::start(
        dir.path(),
        &["--app", &format!("orders={}", app.url)],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let http = reqwest::Client::new();
    let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-01");
    // Subscriptions come from the app once it answers /dapr/subscribe.
    t.wait_for_subscriptions(1).await;
    let resp = http
        .post(t.at("/v1.0/invoke/orders/method/checkout"))
        .header("traceparent", &traceparent)
        .body("{}")
        .send()
        .await
        .expect("invoke");
    assert_eq!(resp.status(), 200);
    let resp = http
        .post(t.at("/v1.0/publish/pubsub/orders"))
        .header("traceparent", &traceparent)
        .json(&json!({"id": 1}))
        .send()
        .await
        .expect("publish");
    assert_eq!(resp.status(), 204);
    assert!(
        resp.headers()["traceparent"]
            .to_str()
            .expect("tp")
            .contains(TRACE),
        "the API span's context comes back"
    );
    let delivered = eventually(15, "delivery", || async {
        app.received("/orders").into_iter().next()
    })
    .await;
    let invoked = &app.received("/checkout")[0];

    let loc = tempest_blocks::store::Location::open(&dir.path().join("traces").to_string_lossy())
        .expect("open");
    let tenant = tempest_core::TenantId::parse(None).expect("tenant");
    let id: [u8; 16] = (0..16)
        .map(|i| u8::from_str_radix(&TRACE[i * 2..i * 2 + 2], 16).expect("hex"))
        .collect::<Vec<_>>()
        .try_into()
        .expect("16");
    let spans = eventually(20, "Tempest's own spans in its blocks", || {
        let (loc, tenant) = (loc.clone(), tenant.clone());
        async move {
            let spans = tempest_blocks::reader::find_trace(&loc, &tenant, &id)
                .await
                .ok()?;
            (spans.len() >= 3).then_some(spans)
        }
    })
    .await;
    let find = |name: &str| {
        spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
            panic!(
                "span {name} in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        })
    };
    let call = find("CallLocal/orders/checkout");
    let publish = find("/v1.0/publish/pubsub/orders");
    let deliver = find("pubsub/orders");
    for s in [call, publish, deliver] {
        assert_eq!(
            s.resource.service_name(),
            Some("tempest"),
            "Tempest's spans have their own service.name"
        );
    }
    assert_eq!(
        call.parent_span_id.map(|p| hex(&p)).as_deref(),
        Some(CALLER_SPAN),
        "invoke hop is a child of the caller"
    );
    assert_eq!(
        publish.parent_span_id.map(|p| hex(&p)).as_deref(),
        Some(CALLER_SPAN)
    );
    assert_eq!(
        deliver.parent_span_id,
        Some(publish.span_id),
        "delivery is a child of the publish span"
    );
    // The traceparent the apps received names spans that exist.
    let app_tp = invoked.header("traceparent").expect("traceparent");
    assert!(
        app_tp.contains(&hex(&call.span_id)),
        "the invoked app sees the CallLocal span: {app_tp}"
    );
    let delivered_tp = delivered.header("traceparent").expect("traceparent");
    assert!(
        delivered_tp.contains(&hex(&deliver.span_id)),
        "the subscriber sees the delivery span: {delivered_tp}"
    );
}
