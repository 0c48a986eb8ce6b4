//! The pub/sub building block: the `Broker` trait every backend implements, subscriptions,
//! and delivery to apps under Dapr's subscription contract.

pub mod delivery;
pub mod pushed;
pub mod routing;
pub mod subscription;
pub mod worker;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use subscription::{Subscription, SubscriptionKind};

/// A message handed to the broker: the CloudEvent JSON, or raw bytes for `rawPayload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Payload bytes.
    pub data: Bytes,
    /// Broker metadata travelling with the message (becomes request headers on delivery).
    pub metadata: BTreeMap<String, String>,
}

/// A message read from the broker for one consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Identifies the message for `ack`.
    pub ack_id: String,
    /// Payload bytes as published.
    pub data: Bytes,
    /// Broker metadata.
    pub metadata: BTreeMap<String, String>,
    /// How many times this message has been handed out, this time included.
    pub deliveries: u32,
}

/// Why a broker operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PubSubError {
    /// The broker failed.
    #[error("{0}")]
    Backend(String),
}

impl PubSubError {
    /// A backend failure from any displayable error.
    pub fn backend(e: impl std::fmt::Display) -> Self {
        PubSubError::Backend(e.to_string())
    }
}

impl From<String> for PubSubError {
    fn from(message: String) -> Self {
        PubSubError::Backend(message)
    }
}

/// A pub/sub backend with consumer groups and at-least-once delivery: every group sees every
/// message published to a topic; a message handed out and not acknowledged within the broker's
/// redelivery interval is handed out again.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Durably appends a message to a topic; returns once it is accepted.
    async fn publish(&self, topic: &str, msg: OutgoingMessage) -> Result<(), PubSubError>;

    /// Makes sure `group` exists on `topic` (a new group starts at the topic's beginning, as
    /// Dapr's Redis Streams component creates groups from ID 0).
    async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), PubSubError>;

    /// Up to `max` messages for `group`: redeliveries that are due first, then new ones in
    /// publish order. Waits up to `wait` when there is nothing yet.
    async fn fetch(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, PubSubError>;

    /// Marks a message done for `group`; it is never handed to that group again.
    async fn ack(&self, topic: &str, group: &str, ack_id: &str) -> Result<(), PubSubError>;

    /// The topic a broker-side entity name (an SNS topic's, say) stands for: brokers that
    /// decorate names (a prefix) undo it here, so a pushed message finds its subscriptions.
    fn topic_of_entity(&self, entity: &str) -> String {
        entity.to_owned()
    }
}
