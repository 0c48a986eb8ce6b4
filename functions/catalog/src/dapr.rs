//! The Dapr functions (invoke, state, publish, secrets, metadata, deliver), on every host; in a
//! WebAssembly component with the components that build there (see `tempest_components`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tempest_building_blocks::Runtime;
use tempest_building_blocks::pubsub::{subscription, worker};

/// The HTTP functions that make up the Dapr API (invoke, state, publish, secrets, metadata).
pub fn dapr_http(rt: Arc<Runtime>) -> Router {
    tempest_building_blocks::router::dapr_router(rt)
}

/// The Dapr runtime a function host's Dapr functions share: components from the resources
/// folder (or the embedded defaults) and the declared apps.
pub async fn runtime(config: &tempest_core::Config) -> anyhow::Result<Arc<Runtime>> {
    Ok(Arc::new(tempest_components::build_runtime(config).await?))
}

/// The `deliver` function for hosts whose broker pushes messages (SQS on Lambda, a Storage
/// Queue trigger on Azure): the configured component's messages, delivered to the configured
/// app's subscriptions (or every declared app's).
pub fn pushed_delivery(
    rt: Arc<Runtime>,
    deliver: &tempest_core::config::DeliverConfig,
) -> anyhow::Result<tempest_building_blocks::pubsub::pushed::PushedDelivery> {
    if !rt.pubsub.contains_key(&deliver.pubsub) {
        anyhow::bail!(
            "TEMPEST_DELIVER_PUBSUB names {:?}, which is not a pub/sub component here ({})",
            deliver.pubsub,
            rt.pubsub.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(app) = &deliver.app
        && !rt.apps.contains_key(app)
    {
        anyhow::bail!(
            "TEMPEST_DELIVER_APP names {app:?}, which is not a declared app (TEMPEST_APPS)"
        );
    }
    Ok(
        tempest_building_blocks::pubsub::pushed::PushedDelivery::new(
            rt,
            &deliver.pubsub,
            deliver.app.as_deref(),
        ),
    )
}

/// The `deliver` function as background tasks: one per subscription, starting with the
/// declarative ones, then each app's programmatic ones as soon as that app answers.
pub fn start_delivery(rt: Arc<Runtime>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for sub in rt.subscriptions() {
        tasks.push(tokio::spawn(worker::run_subscription(rt.clone(), sub)));
    }
    for (app_id, url) in rt.apps.clone() {
        tasks.push(tokio::spawn(discover(rt.clone(), app_id, url)));
    }
    tasks
}

/// Polls an app's `/dapr/subscribe` until it answers once (Dapr asks only at start-up and loses
/// subscriptions of apps that start later; Tempest keeps asking), then runs its subscriptions.
async fn discover(rt: Arc<Runtime>, app_id: String, url: String) {
    let mut pause = Duration::from_millis(250);
    let subs = loop {
        match subscription::fetch_programmatic(
            rt.http.as_ref(),
            &app_id,
            &url,
            rt.app_api_token.as_deref(),
        )
        .await
        {
            Ok(Some(subs)) => break subs,
            Ok(None) => tracing::debug!(app = %app_id, "app not reachable yet; asking again"),
            Err(e) => tracing::warn!(app = %app_id, "cannot read subscriptions: {e}"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    };
    let mut valid = Vec::new();
    for sub in subs {
        match tempest_building_blocks::pubsub::routing::validate(&sub) {
            Ok(()) => valid.push(sub),
            Err(e) => tracing::warn!(app = %app_id, "ignoring subscription: {e}"),
        }
    }
    for sub in rt.add_subscriptions(valid) {
        tokio::spawn(worker::run_subscription(rt.clone(), sub));
    }
}
