//! `pubsub.redis`: Redis Streams with consumer groups, as Dapr's Redis pub/sub does. One stream
//! per topic (field `data`), one consumer group per subscribing app; messages left unacknowledged
//! longer than `redeliverInterval` are claimed again with XAUTOCLAIM.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use redis::streams::{StreamId, StreamReadOptions, StreamReadReply};
use tempest_building_blocks::pubsub::{Broker, OutgoingMessage, PubSubError, ReceivedMessage};
use tokio::sync::Mutex;

use crate::ComponentError;
use crate::metadata::Metadata;

/// A Redis Streams broker.
pub struct RedisBroker {
    client: redis::Client,
    conn: ConnectionManager,
    /// Blocking reads get their own connection per topic and group, so one waiting reader never
    /// holds up publishes or other groups.
    readers: Mutex<HashMap<String, MultiplexedConnection>>,
    consumer: String,
    redeliver_after: Duration,
    max_len_approx: Option<usize>,
}

fn redis_err(e: redis::RedisError) -> PubSubError {
    PubSubError::backend(e)
}

fn to_message(id: &StreamId, deliveries: u32) -> ReceivedMessage {
    let field = |name: &str| -> Option<Vec<u8>> {
        id.map
            .get(name)
            .and_then(|v| redis::from_redis_value::<Vec<u8>>(v.clone()).ok())
    };
    let metadata = field("metadata")
        .and_then(|m| serde_json::from_slice::<BTreeMap<String, String>>(&m).ok())
        .unwrap_or_default();
    ReceivedMessage {
        ack_id: id.id.clone(),
        data: Bytes::from(field("data").unwrap_or_default()),
        metadata,
        deliveries,
    }
}

impl RedisBroker {
    /// Connects using Dapr's Redis pub/sub metadata (`redisHost`, `redisPassword`, `consumerID`,
    /// `redeliverInterval`, `maxLenApprox`).
    pub async fn connect(md: &Metadata) -> Result<Self, ComponentError> {
        let (client, conn) = crate::state::redis::connect(md).await?;
        Ok(RedisBroker {
            client,
            conn,
            readers: Mutex::new(HashMap::new()),
            consumer: md.get("consumerID").unwrap_or("tempest").to_owned(),
            redeliver_after: md.duration("redeliverInterval", Duration::from_secs(60))?,
            max_len_approx: md.get("maxLenApprox").and_then(|v| v.parse().ok()),
        })
    }

    async fn reader(
        &self,
        topic: &str,
        group: &str,
        wait: Duration,
    ) -> Result<MultiplexedConnection, PubSubError> {
        let key = format!("{topic}\u{0}{group}");
        let mut readers = self.readers.lock().await;
        if let Some(c) = readers.get(&key) {
            return Ok(c.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(wait + Duration::from_secs(5)));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(redis_err)?;
        readers.insert(key, c.clone());
        Ok(c)
    }

    /// Claims messages idle past the redelivery interval, with their delivery counts.
    async fn claim_due(
        &self,
        topic: &str,
        group: &str,
        max: usize,
    ) -> Result<Vec<ReceivedMessage>, PubSubError> {
        let mut conn = self.conn.clone();
        let reply: redis::Value = redis::cmd("XAUTOCLAIM")
            .arg(topic)
            .arg(group)
            .arg(&self.consumer)
            .arg(self.redeliver_after.as_millis() as u64)
            .arg("0-0")
            .arg("COUNT")
            .arg(max)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        let claimed: redis::streams::StreamAutoClaimReply =
            redis::from_redis_value(reply).map_err(PubSubError::backend)?;
        let mut out = Vec::new();
        for id in claimed.claimed {
            // XAUTOCLAIM counts the claim as a delivery; read the count for the caller.
            let pending: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(topic)
                .arg(group)
                .arg(&id.id)
                .arg(&id.id)
                .arg(1)
                .query_async(&mut conn)
                .await
                .map_err(redis_err)?;
            let deliveries = pending.ids.first().map_or(2, |p| p.times_delivered as u32);
            out.push(to_message(&id, deliveries));
        }
        Ok(out)
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, topic: &str, msg: OutgoingMessage) -> Result<(), PubSubError> {
        let mut conn = self.conn.clone();
        let metadata = serde_json::to_vec(&msg.metadata).map_err(PubSubError::backend)?;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(topic);
        if let Some(n) = self.max_len_approx {
            cmd.arg("MAXLEN").arg("~").arg(n);
        }
        cmd.arg("*")
            .arg("data")
            .arg(msg.data.as_ref())
            .arg("metadata")
            .arg(metadata);
        cmd.query_async::<String>(&mut conn)
            .await
            .map_err(redis_err)?;
        Ok(())
    }

    async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), PubSubError> {
        let mut conn = self.conn.clone();
        match conn
            .xgroup_create_mkstream::<_, _, _, ()>(topic, group, "0")
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(redis_err(e)),
        }
    }

    async fn fetch(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, PubSubError> {
        let max = max.max(1);
        let mut out = self.claim_due(topic, group, max).await?;
        if out.len() >= max {
            return Ok(out);
        }
        let mut reader = self.reader(topic, group, wait).await?;
        let mut opts = StreamReadOptions::default()
            .group(group, &self.consumer)
            .count(max - out.len());
        if out.is_empty() && !wait.is_zero() {
            opts = opts.block(wait.as_millis().max(1) as usize);
        }
        let reply: Option<StreamReadReply> = reader
            .xread_options(&[topic], &[">"], &opts)
            .await
            .map_err(redis_err)?;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            out.extend(key.ids.iter().map(|id| to_message(id, 1)));
        }
        Ok(out)
    }

    async fn ack(&self, topic: &str, group: &str, ack_id: &str) -> Result<(), PubSubError> {
        let mut conn = self.conn.clone();
        conn.xack::<_, _, _, ()>(topic, group, &[ack_id])
            .await
            .map_err(redis_err)
    }
}
