//! `/v1.0/metadata`, `/v1.0/healthz`, `/v1.0/healthz/outbound` and `/v1.0/shutdown`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::read_body;
use crate::{ApiError, Runtime};

/// `GET /v1.0/metadata`: the SDKs poll this before their first call and need a non-empty body.
pub(super) async fn get(State(rt): State<Arc<Runtime>>) -> Json<Value> {
    let mut components = Vec::new();
    for (name, c) in &rt.state {
        let caps: Vec<&str> = c.store.features().iter().map(|f| f.as_str()).collect();
        components.push(
            json!({"name": name, "type": c.type_name, "version": c.version, "capabilities": caps}),
        );
    }
    for (name, c) in &rt.pubsub {
        components.push(
            json!({"name": name, "type": c.type_name, "version": c.version, "capabilities": []}),
        );
    }
    for (name, c) in &rt.secrets {
        components.push(
            json!({"name": name, "type": c.type_name, "version": c.version, "capabilities": []}),
        );
    }
    let subscriptions: Vec<Value> = rt
        .subscriptions()
        .into_iter()
        .map(|s| {
            let mut rules: Vec<Value> = s
                .rules
                .iter()
                .map(|r| json!({"match": r.match_expr, "path": r.path}))
                .collect();
            if let Some(default) = &s.default_route {
                rules.push(json!({"match": "", "path": default}));
            }
            json!({
                "pubsubname": s.pubsub_name,
                "topic": s.topic,
                "metadata": s.metadata,
                "rules": rules,
                "deadLetterTopic": s.dead_letter_topic.unwrap_or_default(),
                "type": s.kind,
                "appId": s.app_id,
            })
        })
        .collect();
    let extended = rt
        .extended_metadata
        .read()
        .map(|m| m.clone())
        .unwrap_or_default();
    let apps: Vec<Value> = rt
        .apps
        .iter()
        .map(|(id, url)| json!({"appId": id, "url": url}))
        .collect();
    Json(json!({
        "id": rt.app_id,
        "runtimeVersion": concat!("tempest-", env!("CARGO_PKG_VERSION")),
        "enabledFeatures": [],
        "actors": [],
        "components": components,
        "httpEndpoints": apps,
        "subscriptions": subscriptions,
        "extended": extended,
        "appConnectionProperties": {"protocol": "http"},
    }))
}

/// `PUT /v1.0/metadata/{key}`: sets an `extended` attribute from a text body.
pub(super) async fn put(
    State(rt): State<Arc<Runtime>>,
    Path(key): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let body = read_body(&rt, body).await?;
    let value = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "ERR_BAD_REQUEST",
            "metadata value must be UTF-8 text",
        )
    })?;
    if let Ok(mut m) = rt.extended_metadata.write() {
        m.insert(key, value);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1.0/healthz` and `/v1.0/healthz/outbound`: components are loaded before the listener
/// opens, and apps are reached by URL rather than through a channel, so both are ready at once.
pub(super) async fn healthz() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// `POST /v1.0/shutdown`: in Dapr an app stops its own sidecar. Tempest is shared by every
/// app, so one app's request does not stop it; it is acknowledged as Dapr does.
pub(super) async fn shutdown() -> StatusCode {
    tracing::info!("shutdown requested by an app; Tempest keeps serving the other apps");
    StatusCode::NO_CONTENT
}
