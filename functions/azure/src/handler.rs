//! The custom handler's HTTP server: forwarded HTTP requests go to the router of the catalog
//! function whose Azure route matches, as the Functions host would have chosen it; timer
//! invocations arrive as custom-handler JSON at `/<function name>`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tempest_core::Config;
use tower::ServiceExt;

use crate::app;
use crate::invocation::{InvocationRequest, InvocationResponse, QueueMessage, TimerInfo};
use tempest_building_blocks::pubsub::pushed::PushedDelivery;
use tempest_building_blocks::pubsub::worker::Disposition;

struct Handler {
    /// Routers by catalog function; the Dapr functions share one.
    routers: HashMap<&'static str, Router>,
    /// `deliver`, or why it cannot run with this configuration.
    deliver: Result<PushedDelivery, String>,
    config: Config,
}

/// The handler for every function of [`app::FUNCTIONS`], built once per process.
pub async fn router(config: Config) -> anyhow::Result<Router> {
    let mut routers = HashMap::new();
    // The Dapr functions and `deliver` share one runtime (one set of components).
    let rt = tempest_catalog::runtime(&config).await?;
    let dapr = tempest_catalog::dapr_http(rt.clone());
    for f in app::FUNCTIONS {
        if !matches!(f.trigger, app::Trigger::Http { .. }) || routers.contains_key(f.function) {
            continue;
        }
        let router = if tempest_catalog::DAPR_FUNCTIONS.contains(&f.function) {
            dapr.clone()
        } else {
            tempest_catalog::http_function(f.function, &config).await?
        };
        routers.insert(f.function, router);
    }
    let delivery = tempest_catalog::pushed_delivery(rt, &config.deliver).map_err(|e| {
        tracing::warn!("deliver cannot run: {e}");
        e.to_string()
    });
    let handler = Arc::new(Handler {
        routers,
        deliver: delivery,
        config,
    });
    Ok(Router::new()
        .route("/compact", post(compact))
        .route("/deliver", post(deliver))
        .fallback(forwarded)
        .with_state(handler))
}

/// An HTTP request the host forwarded as it came.
async fn forwarded(State(h): State<Arc<Handler>>, req: Request) -> Response {
    let Some(f) = app::route(req.method().as_str(), req.uri().path()) else {
        // The host forwards only paths that match a function's route.
        return (StatusCode::NOT_FOUND, "no function serves this path\n").into_response();
    };
    match h.routers.get(f.function) {
        Some(router) => match router.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        },
        None => (StatusCode::INTERNAL_SERVER_ERROR, "function not built\n").into_response(),
    }
}

/// `deliver` on its queue trigger: one message per invocation. A message that is not done
/// (an app answered RETRY or was unreachable) fails the invocation, so the host makes it
/// visible again and, after `maxDequeueCount` tries, moves it to the poison queue.
async fn deliver(State(h): State<Arc<Handler>>, body: axum::body::Bytes) -> Response {
    let answer = |status: StatusCode, log: String| {
        (
            status,
            axum::Json(InvocationResponse {
                logs: vec![log],
                ..InvocationResponse::default()
            }),
        )
            .into_response()
    };
    let delivery = match &h.deliver {
        Ok(d) => d,
        Err(e) => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("deliver cannot run: {e}"),
            );
        }
    };
    let msg = match QueueMessage::from_invocation(&body) {
        Ok(m) => m,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                format!("not a queue invocation: {e}"),
            );
        }
    };
    let id = msg.id.clone();
    let pushed = match tempest_building_blocks::pubsub::pushed::PushedMessage::from_queue(
        msg.id,
        msg.data,
        None,
        h.config.deliver.topic.as_deref(),
        Default::default(),
        msg.dequeue_count,
    ) {
        Ok(m) => m,
        Err(e) => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("message {id}: {e}"),
            );
        }
    };
    let topic = pushed.topic.clone();
    match delivery
        .process(std::slice::from_ref(&pushed))
        .await
        .first()
    {
        Some(Disposition::Done) => answer(StatusCode::OK, format!("message {id} on {topic}: done")),
        _ => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("message {id} on {topic}: not delivered, to be tried again"),
        ),
    }
}

/// `compact` on its timer: one run within the configured time budget (the Functions host's
/// `functionTimeout` must exceed it); the reports are the return value.
async fn compact(State(h): State<Arc<Handler>>, body: axum::body::Bytes) -> Response {
    let timer = serde_json::from_slice::<InvocationRequest>(&body)
        .map_err(|e| e.to_string())
        .and_then(|inv| {
            if let Some(sys) = inv.metadata.get("sys") {
                tracing::info!(method = %sys["MethodName"], at = %sys["UtcNow"], "timer invocation");
            }
            let timer = inv
                .data
                .get("timer")
                .ok_or("the invocation has no Data.timer")?;
            // Some host versions send binding data as JSON text.
            match timer {
                serde_json::Value::String(text) => serde_json::from_str::<TimerInfo>(text),
                other => serde_json::from_value::<TimerInfo>(other.clone()),
            }
            .map_err(|e| e.to_string())
        });
    let timer = match timer {
        Ok(t) => t,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(InvocationResponse {
                    logs: vec![format!("not a timer invocation: {e}")],
                    ..InvocationResponse::default()
                }),
            )
                .into_response();
        }
    };
    let storage = h.config.traces_storage();
    let run = async {
        let compactor = tempest_catalog::compactor(&storage, &h.config.traces.compaction)?;
        Ok::<_, anyhow::Error>(compactor.run(None, &|_| {}).await?)
    };
    match run.await {
        Ok(reports) => {
            let logs = reports
                .iter()
                .map(|r| {
                    format!(
                        "tenant {}: {} merges, {} blocks marked by retention, {} deleted, {} left",
                        r.tenant, r.merged_jobs, r.marked_retention, r.deleted_blocks, r.jobs_left
                    )
                })
                .chain(timer.is_past_due.then(|| "the run was past due".to_owned()))
                .collect();
            axum::Json(InvocationResponse {
                logs,
                return_value: serde_json::to_value(reports).unwrap_or_default(),
                ..InvocationResponse::default()
            })
            .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "compaction run failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(InvocationResponse {
                    logs: vec![format!("compaction failed: {e}")],
                    ..InvocationResponse::default()
                }),
            )
                .into_response()
        }
    }
}
