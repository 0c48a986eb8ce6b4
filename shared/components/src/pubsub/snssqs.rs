//! `pubsub.aws.snssqs`: an SNS topic per topic, an SQS queue per subscribing app and topic,
//! subscribed to the topic, as Dapr's SNS/SQS component lays them out (Dapr shares one queue
//! among an app's topics; a queue per subscription keeps one slow topic from holding up the
//! app's others, and gives each its own dead-letter queue). Messages are SNS notifications in
//! the queue; a message not deleted within the visibility timeout (`messageVisibilityTimeout`)
//! is handed out again, and past `messageReceiveLimit` receives SQS moves it to the
//! dead-letter queue `sqsDeadLettersQueueName` when one is named.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use base64::Engine as _;
use bytes::Bytes;
use tempest_building_blocks::pubsub::{Broker, OutgoingMessage, PubSubError, ReceivedMessage};
use tokio::sync::Mutex;

use crate::ComponentError;
use crate::aws::{describe, sdk_config};
use crate::metadata::Metadata;

/// The message attribute that marks a payload carried as base64 (SNS messages are text).
const BASE64_ATTRIBUTE: &str = "tempest.encoding";
/// SNS carries at most ten message attributes.
const MAX_ATTRIBUTES: usize = 10;

/// SNS topics and SQS queues as a broker.
pub struct SnsSqsBroker {
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    visibility: Duration,
    dead_letters: Option<(String, u32)>,
    /// `entityPrefix`: put before every topic and queue name, so environments that share an
    /// account keep apart.
    prefix: String,
    topics: Mutex<HashMap<String, String>>,
    queues: Mutex<HashMap<(String, String), String>>,
}

/// The JSON an SNS topic puts in an SQS queue subscribed to it (raw delivery off).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsNotification {
    /// `Notification` for a published message.
    #[serde(rename = "Type")]
    pub kind: String,
    /// The topic's ARN; its last part is the topic's name.
    pub topic_arn: String,
    /// The published message.
    pub message: String,
    /// The published message attributes.
    #[serde(default)]
    pub message_attributes: HashMap<String, SnsAttribute>,
}

/// One message attribute of an [`SnsNotification`].
#[derive(Debug, serde::Deserialize)]
pub struct SnsAttribute {
    /// `String`, `Number`, `Binary`, …
    #[serde(rename = "Type")]
    pub kind: String,
    /// The value as text.
    #[serde(rename = "Value")]
    pub value: String,
}

impl SnsNotification {
    /// Reads an SQS message body as the notification it carries, if it is one.
    pub fn parse(body: &str) -> Option<Self> {
        serde_json::from_str::<SnsNotification>(body)
            .ok()
            .filter(|n| n.kind == "Notification")
    }

    /// The topic's name, from its ARN.
    pub fn topic(&self) -> Option<&str> {
        self.topic_arn.rsplit(':').next().filter(|t| !t.is_empty())
    }

    /// The published payload and its string attributes (request headers on delivery).
    pub fn payload(self) -> (Bytes, BTreeMap<String, String>) {
        let mut metadata: BTreeMap<String, String> = self
            .message_attributes
            .into_iter()
            .filter(|(_, a)| a.kind == "String")
            .map(|(k, a)| (k, a.value))
            .collect();
        let data = match metadata.remove(BASE64_ATTRIBUTE).as_deref() {
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(&self.message)
                .map(Bytes::from)
                .unwrap_or_else(|_| Bytes::from(self.message)),
            _ => Bytes::from(self.message),
        };
        (data, metadata)
    }
}

/// A name SNS and SQS accept: letters, digits, `-` and `_` (others dropped, as Dapr does),
/// at most `max` characters; a name that had to change gets a hash of the original so two
/// names never meet.
pub fn aws_name(name: &str, max: usize) -> String {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if clean == name && clean.len() <= max && !clean.is_empty() {
        return clean;
    }
    let hash = format!("{:016x}", fnv1a(name.as_bytes()));
    let keep = max.saturating_sub(hash.len() + 1);
    format!("{}-{hash}", &clean[..clean.len().min(keep)])
}

/// A stable 64-bit hash (FNV-1a): names must map the same way in every process.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn err<E, R>(e: aws_smithy_runtime_api::client::result::SdkError<E, R>) -> PubSubError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    PubSubError::Backend(describe(&e))
}

impl SnsSqsBroker {
    /// Connects from Dapr's metadata: the AWS fields, `messageVisibilityTimeout` (seconds,
    /// default 10, Dapr's), `sqsDeadLettersQueueName`, `messageReceiveLimit` (default 10) and
    /// Tempest's `entityPrefix`.
    pub async fn connect(md: &Metadata) -> Result<Self, ComponentError> {
        let config = sdk_config(md).await?;
        let visibility = Duration::from_secs(md.number("messageVisibilityTimeout", 10u64)?);
        let dead_letters = md
            .get("sqsDeadLettersQueueName")
            .map(|q| {
                Ok::<_, ComponentError>((q.to_owned(), md.number("messageReceiveLimit", 10u32)?))
            })
            .transpose()?;
        Ok(SnsSqsBroker {
            sns: aws_sdk_sns::Client::new(&config),
            sqs: aws_sdk_sqs::Client::new(&config),
            visibility,
            dead_letters,
            prefix: md.get("entityPrefix").unwrap_or_default().to_owned(),
            topics: Mutex::new(HashMap::new()),
            queues: Mutex::new(HashMap::new()),
        })
    }

    /// The topic's ARN, creating the topic if needed (creation is idempotent in SNS).
    async fn topic_arn(&self, topic: &str) -> Result<String, PubSubError> {
        if let Some(arn) = self.topics.lock().await.get(topic) {
            return Ok(arn.clone());
        }
        let out = self
            .sns
            .create_topic()
            .name(aws_name(&format!("{}{topic}", self.prefix), 256))
            .send()
            .await
            .map_err(err)?;
        let arn = out
            .topic_arn
            .ok_or_else(|| PubSubError::Backend("CreateTopic answered no ARN".into()))?;
        self.topics
            .lock()
            .await
            .insert(topic.to_owned(), arn.clone());
        Ok(arn)
    }

    async fn queue_arn(&self, url: &str) -> Result<String, PubSubError> {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(err)?;
        out.attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| PubSubError::Backend(format!("no ARN for queue {url}")))
    }

    /// The URL of the queue `name` (made acceptable to SQS), created with `attributes` if it
    /// does not exist (creation is idempotent in SQS for the same attributes).
    async fn create_queue(
        &self,
        name: &str,
        attributes: HashMap<QueueAttributeName, String>,
    ) -> Result<String, PubSubError> {
        self.sqs
            .create_queue()
            .queue_name(aws_name(name, 80))
            .set_attributes((!attributes.is_empty()).then_some(attributes))
            .send()
            .await
            .map_err(err)?
            .queue_url
            .ok_or_else(|| PubSubError::Backend(format!("CreateQueue {name} answered no URL")))
    }

    /// The group's queue for `topic`, created and subscribed to the topic if needed.
    async fn queue(&self, topic: &str, group: &str) -> Result<String, PubSubError> {
        let key = (topic.to_owned(), group.to_owned());
        if let Some(url) = self.queues.lock().await.get(&key) {
            return Ok(url.clone());
        }
        let topic_arn = self.topic_arn(topic).await?;
        let mut attributes = HashMap::from([(
            QueueAttributeName::VisibilityTimeout,
            self.visibility.as_secs().to_string(),
        )]);
        if let Some((dlq, limit)) = &self.dead_letters {
            let dlq_url = self.create_queue(dlq, HashMap::new()).await?;
            let dlq_arn = self.queue_arn(&dlq_url).await?;
            attributes.insert(
                QueueAttributeName::RedrivePolicy,
                serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": limit.to_string()})
                    .to_string(),
            );
        }
        let url = self
            .create_queue(&format!("{}{group}-{topic}", self.prefix), attributes)
            .await?;
        let queue_arn = self.queue_arn(&url).await?;
        // SNS may send to the queue: the policy a real account needs (moto does not check it).
        let policy = serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage", "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": topic_arn}}}]
        });
        self.sqs
            .set_queue_attributes()
            .queue_url(&url)
            .attributes(QueueAttributeName::Policy, policy.to_string())
            .send()
            .await
            .map_err(err)?;
        self.sns
            .subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(&queue_arn)
            .send()
            .await
            .map_err(err)?;
        self.queues.lock().await.insert(key, url.clone());
        Ok(url)
    }
}

#[async_trait]
impl Broker for SnsSqsBroker {
    fn topic_of_entity(&self, entity: &str) -> String {
        entity
            .strip_prefix(self.prefix.as_str())
            .unwrap_or(entity)
            .to_owned()
    }

    async fn publish(&self, topic: &str, msg: OutgoingMessage) -> Result<(), PubSubError> {
        let arn = self.topic_arn(topic).await?;
        let mut attributes: HashMap<String, MessageAttributeValue> = HashMap::new();
        let text = match std::str::from_utf8(&msg.data) {
            Ok(text) => text.to_owned(),
            Err(_) => {
                attributes.insert(BASE64_ATTRIBUTE.into(), string_attribute("base64")?);
                base64::engine::general_purpose::STANDARD.encode(&msg.data)
            }
        };
        for (name, value) in &msg.metadata {
            let valid = !name.is_empty()
                && name.len() <= 256
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if valid && !value.is_empty() && attributes.len() < MAX_ATTRIBUTES {
                attributes.insert(name.clone(), string_attribute(value)?);
            } else {
                tracing::debug!(%name, "metadata not carried as an SNS message attribute");
            }
        }
        self.sns
            .publish()
            .topic_arn(arn)
            .message(text)
            .set_message_attributes((!attributes.is_empty()).then_some(attributes))
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), PubSubError> {
        self.queue(topic, group).await.map(|_| ())
    }

    async fn fetch(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, PubSubError> {
        let url = self.queue(topic, group).await?;
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .wait_time_seconds(wait.as_secs().min(20) as i32)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(err)?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let deliveries = m
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
                let body = m.body.unwrap_or_default();
                let (data, metadata) = match SnsNotification::parse(&body) {
                    Some(n) => n.payload(),
                    None => (Bytes::from(body), BTreeMap::new()),
                };
                Some(ReceivedMessage {
                    ack_id: m.receipt_handle?,
                    data,
                    metadata,
                    deliveries,
                })
            })
            .collect())
    }

    async fn ack(&self, topic: &str, group: &str, ack_id: &str) -> Result<(), PubSubError> {
        let url = self.queue(topic, group).await?;
        self.sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(ack_id)
            .send()
            .await
            .map_err(err)?;
        Ok(())
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, PubSubError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(PubSubError::backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_what_aws_accepts_and_never_collide() {
        assert_eq!(aws_name("orders", 80), "orders");
        assert_eq!(aws_name("shop-orders_v2", 80), "shop-orders_v2");
        let dotted = aws_name("orders.eu", 80);
        let plain = aws_name("orderseu", 80);
        assert_ne!(dotted, plain, "a changed name carries a hash");
        assert!(dotted.starts_with("orderseu-"));
        let long = aws_name(&"x".repeat(200), 80);
        assert_eq!(long.len(), 80);
        assert!(
            aws_name("ü", 80)
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        );
        assert_eq!(aws_name("a.b", 80), aws_name("a.b", 80), "stable");
    }

    #[test]
    fn notifications_carry_topic_payload_and_attributes() {
        let body = serde_json::json!({"Type": "Notification", "MessageId": "1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:orders", "Message": "aGk=",
            "MessageAttributes": {"tempest.encoding": {"Type": "String", "Value": "base64"},
                "origin": {"Type": "String", "Value": "shop"},
                "n": {"Type": "Number", "Value": "1"}}})
        .to_string();
        let n = SnsNotification::parse(&body).expect("a notification");
        assert_eq!(n.topic(), Some("orders"));
        let (data, metadata) = n.payload();
        assert_eq!(&data[..], b"hi");
        assert_eq!(
            metadata,
            BTreeMap::from([("origin".to_owned(), "shop".to_owned())])
        );
        assert!(SnsNotification::parse("{\"Type\":\"SubscriptionConfirmation\"}").is_none());
        assert!(SnsNotification::parse("plain").is_none());
    }
}
