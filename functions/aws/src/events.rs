//! The functions Lambda triggers with events rather than HTTP requests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use tempest_core::Config;

/// Time kept back from the invocation's deadline for committing, reporting and the response.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// `compact` on an EventBridge schedule: one run per event, its budget cut to what is left
/// before the invocation's deadline. Answers one report per tenant.
pub async fn compact(config: Config) -> Result<(), Error> {
    let storage = config.traces_storage();
    let settings = config.traces.compaction.clone();
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| {
            let (storage, settings) = (storage.clone(), settings.clone());
            async move {
                let left = time_left(event.context.deadline).saturating_sub(DEADLINE_MARGIN);
                tracing::info!(
                    source = %event.payload.source,
                    detail_type = %event.payload.detail_type,
                    budget = ?left,
                    "compaction run"
                );
                let compactor = tempest_catalog::compactor(&storage, &settings)
                    .map_err(|e| diagnostic("Config", e))?
                    .with_budget_at_most(left);
                compactor
                    .run(None, &|_| {})
                    .await
                    .map_err(|e| diagnostic("Storage", e))
            }
        },
    ))
    .await
}

/// `search-worker`, invoked directly with a search job: answers the job's result.
pub async fn search_worker(config: Config) -> Result<(), Error> {
    let loc = tempest_blocks::store::Location::open(&config.traces_storage())?;
    // The index is a cache kept across invocations of this instance.
    let index = std::sync::Arc::new(tempest_blocks::index::BlockIndex::new(loc));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let index = index.clone();
        async move {
            tempest_query::worker::handle(&index, event.payload.get().as_bytes())
                .await
                .map_err(|e| match e {
                    tempest_query::QueryError::BadRequest(_) => diagnostic("BadRequest", e),
                    _ => diagnostic("Storage", e),
                })
        }
    }))
    .await
}

/// How long until `deadline_ms` (Unix milliseconds, as the Runtime API gives it).
fn time_left(deadline_ms: u64) -> Duration {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// A Lambda error with our own type name (the `errorType` the caller sees).
fn diagnostic(kind: &str, e: impl std::fmt::Display) -> Diagnostic {
    Diagnostic {
        error_type: kind.to_owned(),
        error_message: e.to_string(),
    }
}
