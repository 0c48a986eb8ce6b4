//! Service invocation through the real binary: verbs, paths, query, headers, bodies, statuses,
//! the `dapr-app-id` header form, trace context, retries and errors.

use tempest_tests::app::Reply;
use tempest_tests::{Tempest, TestApp, free_port};

async fn setup() -> (tempfile::TempDir, TestApp, Tempest) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = TestApp::start().await;
    let spec = format!("orders={}", app.url);
    let t = Tempest::start(dir.path(), &["--app", &spec], &[]).await;
    (dir, app, t)
}

#[tokio::test]
async fn forwards_every_verb_path_query_header_and_body() {
    let (_dir, app, t) = setup().await;
    let http = reqwest::Client::new();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let resp = http
            .request(m, t.at("/v1.0/invoke/orders/method/api/v1/items?x=1&y=two"))
            .header("x-custom", "abc")
            .header("content-type", "application/json")
            .body(format!("{{\"verb\":\"{method}\"}}"))
            .send()
            .await
            .expect("invoke");
        assert_eq!(resp.status(), 200, "{method}");
    }
    let got = app.received("/api/v1/items");
    assert_eq!(got.len(), 5);
    for (r, method) in got.iter().zip(["GET", "POST", "PUT", "PATCH", "DELETE"]) {
        assert_eq!(r.method.as_str(), method);
        assert_eq!(r.query.as_deref(), Some("x=1&y=two"));
        assert_eq!(r.header("x-custom"), Some("abc"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("dapr-callee-app-id"), Some("orders"));
        assert!(
            r.header("dapr-app-id").is_none(),
            "dapr-app-id is not forwarded"
        );
        assert_eq!(r.header("x-forwarded-for"), Some("127.0.0.1"));
        let forwarded = r.header("forwarded").unwrap_or_default();
        assert!(
            forwarded.starts_with("for=127.0.0.1;host=127.0.0.1:"),
            "{forwarded}"
        );
        assert!(
            r.header("x-forwarded-host")
                .is_some_and(|h| h.starts_with("127.0.0.1:"))
        );
        assert_eq!(r.json()["verb"], method);
    }
}

#[tokio::test]
async fn returns_the_callee_answer_unchanged() {
    let (_dir, app, t) = setup().await;
    let mut teapot = Reply::new(418, "{\"error\":\"short and stout\"}");
    teapot.headers.push(("x-from-app".into(), "yes".into()));
    teapot
        .headers
        .push(("content-type".into(), "application/problem+json".into()));
    app.reply("/brew", vec![teapot]);
    let resp = reqwest::Client::new()
        .post(t.at("/v1.0/invoke/orders/method/brew"))
        .send()
        .await
        .expect("invoke");
    assert_eq!(resp.status(), 418);
    assert_eq!(resp.headers()["x-from-app"], "yes");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(
        resp.text().await.expect("body"),
        "{\"error\":\"short and stout\"}"
    );
}

#[tokio::test]
async fn header_form_and_namespace_form() {
    let (_dir, app, t) = setup().await;
    let http = reqwest::Client::new();
    let resp = http
        .get(t.at("/checkout/100?q=1"))
        .header("dapr-app-id", "orders")
        .send()
        .await
        .expect("invoke");
    assert_eq!(resp.status(), 200);
    let got = app.received("/checkout/100");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].query.as_deref(), Some("q=1"));
    let resp = http
        .get(t.at("/v1.0/invoke/orders.default/method/ns"))
        .send()
        .await
        .expect("invoke");
    assert_eq!(resp.status(), 200);
    assert_eq!(app.received("/ns").len(), 1);
}

#[tokio::test]
async fn propagates_trace_context_with_a_new_span() {
    let (_dir, app, t) = setup().await;
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let resp = reqwest::Client::new()
        .get(t.at("/v1.0/invoke/orders/method/traced"))
        .header("traceparent", parent)
        .header("tracestate", "congo=t61rcWkgMzE")
        .send()
        .await
        .expect("invoke");
    assert_eq!(resp.status(), 200);
    let got = &app.received("/traced")[0];
    let tp = got.header("traceparent").expect("traceparent forwarded");
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "same trace: {tp}"
    );
    assert!(
        !tp.contains("00f067aa0ba902b7"),
        "new span id for the hop: {tp}"
    );
    assert_eq!(got.header("tracestate"), Some("congo=t61rcWkgMzE"));
    // Without a parent a new trace starts.
    reqwest::Client::new()
        .get(t.at("/v1.0/invoke/orders/method/untraced"))
        .send()
        .await
        .expect("invoke");
    let tp = app.received("/untraced")[0]
        .header("traceparent")
        .expect("traceparent")
        .to_owned();
    assert_eq!(tp.len(), 55);
}

#[tokio::test]
async fn retries_while_the_app_is_starting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let spec = format!("late=http://127.0.0.1:{port}");
    let t = Tempest::start(dir.path(), &["--app", &spec], &[]).await;
    let call = tokio::spawn({
        let url = t.at("/v1.0/invoke/late/method/hello");
        async move {
            reqwest::Client::new()
                .post(url)
                .body("hi")
                .send()
                .await
                .expect("invoke")
                .status()
        }
    });
    // The app comes up while Tempest is retrying the connection.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let app = TestApp::start_on(port).await;
    assert_eq!(call.await.expect("join"), 200);
    assert_eq!(app.received("/hello")[0].body.as_ref(), b"hi");
}

#[tokio::test]
async fn errors_in_dapr_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dead = format!("dead=http://127.0.0.1:{}", free_port());
    let t = Tempest::start(dir.path(), &["--app", &dead], &[]).await;
    let http = reqwest::Client::new();
    let resp = http
        .get(t.at("/v1.0/invoke/nobody/method/x"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("nobody")
    );
    let resp = http
        .get(t.at("/v1.0/invoke/dead/method/x"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 500);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["errorCode"], "ERR_DIRECT_INVOKE");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .starts_with("failed to invoke, id: dead")
    );
    let resp = http.get(t.at("/not/a/route")).send().await.expect("send");
    assert_eq!(resp.status(), 404);
}
