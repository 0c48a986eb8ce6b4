//! The functions Lambda triggers with events rather than HTTP requests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;
use tempest_components::pubsub::snssqs::SnsNotification;
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

/// `deliver` from an SQS event source mapping (with `ReportBatchItemFailures`): each record is
/// delivered to its topic's subscriptions, and the records to try again (an app answered
/// RETRY, or could not be reached) come back as batch item failures, so SQS hands out only
/// those again and, past the queue's `maxReceiveCount`, moves them to its dead-letter queue.
pub async fn deliver(config: Config) -> Result<(), Error> {
    let rt = tempest_catalog::runtime(&config).await?;
    let delivery = std::sync::Arc::new(tempest_catalog::pushed_delivery(rt, &config.deliver)?);
    let default_topic = config.deliver.topic.clone();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let (delivery, default_topic) = (delivery.clone(), default_topic.clone());
        async move {
            let mut response = SqsBatchResponse::default();
            let (mut ids, mut msgs) = (Vec::new(), Vec::new());
            for record in &event.payload.records {
                let id = record.message_id.clone().unwrap_or_default();
                match pushed_message(record, &delivery, default_topic.as_deref()) {
                    Ok(m) => {
                        ids.push(id);
                        msgs.push(m);
                    }
                    Err(e) => {
                        // Kept for the queue's redrive policy rather than lost.
                        tracing::warn!(message_id = %id, "undeliverable record: {e}");
                        response.add_failure(id);
                    }
                }
            }
            let dispositions = delivery.process(&msgs).await;
            for (id, d) in ids.into_iter().zip(dispositions) {
                if d == tempest_building_blocks::pubsub::worker::Disposition::Redeliver {
                    response.add_failure(id);
                }
            }
            Ok::<_, Error>(response)
        }
    }))
    .await
}

/// An SQS record as the message it carries: the body, or the payload of the SNS notification
/// that a topic subscription wraps it in (as `pubsub.aws.snssqs` publishes it). Its topic is
/// the one the CloudEvent names, else the SNS topic's name, else the configured one.
fn pushed_message(
    record: &SqsMessage,
    delivery: &tempest_building_blocks::pubsub::pushed::PushedDelivery,
    default_topic: Option<&str>,
) -> Result<tempest_building_blocks::pubsub::pushed::PushedMessage, String> {
    use tempest_building_blocks::pubsub::pushed;
    let body = record.body.as_deref().ok_or("the record has no body")?;
    let mut metadata = std::collections::BTreeMap::new();
    for (name, attr) in &record.message_attributes {
        if let Some(v) = &attr.string_value {
            metadata.insert(name.clone(), v.clone());
        }
    }
    let (data, sns_topic) = match SnsNotification::parse(body) {
        Some(n) => {
            let topic = n.topic().map(|t| delivery.topic_of_entity(t));
            let (data, attributes) = n.payload();
            metadata.extend(attributes);
            (data, topic)
        }
        None => (bytes::Bytes::from(body.to_owned()), None),
    };
    let deliveries = record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    pushed::PushedMessage::from_queue(
        record.message_id.clone().unwrap_or_default(),
        data,
        sns_topic,
        default_topic,
        metadata,
        deliveries,
    )
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
