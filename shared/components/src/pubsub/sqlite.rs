//! `pubsub.sqlite` (the embedded durable default) and `pubsub.in-memory` (the same engine on a
//! private in-memory database). Modelled on Redis Streams: an append-only message log per topic,
//! a cursor per consumer group, and a pending list whose entries come due again for redelivery
//! when they are not acknowledged in time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{OptionalExtension, params};
use tempest_building_blocks::pubsub::{Broker, OutgoingMessage, PubSubError, ReceivedMessage};
use tokio::sync::Notify;

use crate::sqlite::{Db, now_ms};

/// Acks between sweeps of fully consumed messages.
const SWEEP_EVERY_ACKS: u64 = 256;

/// A SQLite-backed broker.
pub struct SqliteBroker {
    db: Db,
    redeliver_after: Duration,
    published: Arc<Notify>,
    acks: AtomicU64,
}

fn db_err(e: rusqlite::Error) -> PubSubError {
    PubSubError::backend(e)
}

impl SqliteBroker {
    /// Opens the broker on `db`; unacknowledged messages come due again after `redeliver_after`.
    pub fn new(db: Db, redeliver_after: Duration) -> Result<Self, PubSubError> {
        db.run_now(|c| {
            c.execute_batch(
                "CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, \
                   data BLOB NOT NULL, metadata TEXT NOT NULL, published_at INTEGER NOT NULL); \
                 CREATE INDEX IF NOT EXISTS messages_by_topic ON messages (topic, seq); \
                 CREATE TABLE IF NOT EXISTS consumer_groups (topic TEXT NOT NULL, grp TEXT NOT NULL, \
                   cursor INTEGER NOT NULL, PRIMARY KEY (topic, grp)); \
                 CREATE TABLE IF NOT EXISTS pending (topic TEXT NOT NULL, grp TEXT NOT NULL, seq INTEGER NOT NULL, \
                   deliveries INTEGER NOT NULL, due_at INTEGER NOT NULL, PRIMARY KEY (topic, grp, seq));",
            )
        })
        .map_err(db_err)?;
        Ok(SqliteBroker {
            db,
            redeliver_after,
            published: Arc::new(Notify::new()),
            acks: AtomicU64::new(0),
        })
    }

    async fn take(
        &self,
        topic: &str,
        group: &str,
        max: usize,
    ) -> Result<Vec<ReceivedMessage>, PubSubError> {
        let (topic, group) = (topic.to_owned(), group.to_owned());
        let redeliver_ms = self.redeliver_after.as_millis() as i64;
        self.db
            .run(move |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err)?;
                let now = now_ms();
                let mut out = Vec::new();
                {
                    // Redeliveries that are due come first.
                    let mut due = tx
                        .prepare_cached(
                            "SELECT p.seq, m.data, m.metadata, p.deliveries FROM pending p JOIN messages m ON m.seq = p.seq \
                             WHERE p.topic = ?1 AND p.grp = ?2 AND p.due_at <= ?3 ORDER BY p.seq LIMIT ?4",
                        )
                        .map_err(db_err)?;
                    let rows = due
                        .query_map(params![topic, group, now, max as i64], |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?, r.get::<_, i64>(3)?))
                        })
                        .map_err(db_err)?;
                    for row in rows {
                        let (seq, data, md, deliveries) = row.map_err(db_err)?;
                        out.push(received(seq, data, &md, deliveries as u32 + 1));
                    }
                }
                for m in &out {
                    tx.execute(
                        "UPDATE pending SET deliveries = deliveries + 1, due_at = ?4 WHERE topic = ?1 AND grp = ?2 AND seq = ?3",
                        params![topic, group, m.ack_id.parse::<i64>().unwrap_or_default(), now + redeliver_ms],
                    )
                    .map_err(db_err)?;
                }
                if out.len() < max {
                    let cursor: i64 = tx
                        .query_row("SELECT cursor FROM consumer_groups WHERE topic = ?1 AND grp = ?2", params![topic, group], |r| r.get(0))
                        .optional()
                        .map_err(db_err)?
                        .unwrap_or(0);
                    let mut fresh = Vec::new();
                    {
                        let mut st = tx
                            .prepare_cached("SELECT seq, data, metadata FROM messages WHERE topic = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3")
                            .map_err(db_err)?;
                        let rows = st
                            .query_map(params![topic, cursor, (max - out.len()) as i64], |r| {
                                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?))
                            })
                            .map_err(db_err)?;
                        for row in rows {
                            let (seq, data, md) = row.map_err(db_err)?;
                            fresh.push((seq, received(seq, data, &md, 1)));
                        }
                    }
                    if let Some((last, _)) = fresh.last() {
                        for (seq, _) in &fresh {
                            tx.execute(
                                "INSERT OR REPLACE INTO pending (topic, grp, seq, deliveries, due_at) VALUES (?1, ?2, ?3, 1, ?4)",
                                params![topic, group, seq, now + redeliver_ms],
                            )
                            .map_err(db_err)?;
                        }
                        tx.execute(
                            "INSERT INTO consumer_groups (topic, grp, cursor) VALUES (?1, ?2, ?3) \
                             ON CONFLICT (topic, grp) DO UPDATE SET cursor = excluded.cursor",
                            params![topic, group, last],
                        )
                        .map_err(db_err)?;
                    }
                    out.extend(fresh.into_iter().map(|(_, m)| m));
                }
                tx.commit().map_err(db_err)?;
                Ok(out)
            })
            .await
    }
}

fn received(seq: i64, data: Vec<u8>, metadata: &str, deliveries: u32) -> ReceivedMessage {
    ReceivedMessage {
        ack_id: seq.to_string(),
        data: Bytes::from(data),
        metadata: serde_json::from_str::<BTreeMap<String, String>>(metadata).unwrap_or_default(),
        deliveries,
    }
}

#[async_trait]
impl Broker for SqliteBroker {
    async fn publish(&self, topic: &str, msg: OutgoingMessage) -> Result<(), PubSubError> {
        let topic = topic.to_owned();
        let metadata = serde_json::to_string(&msg.metadata).map_err(PubSubError::backend)?;
        self.db
            .run(move |c| {
                c.prepare_cached("INSERT INTO messages (topic, data, metadata, published_at) VALUES (?1, ?2, ?3, ?4)")
                    .and_then(|mut st| st.execute(params![topic, msg.data.as_ref(), metadata, now_ms()]))
                    .map_err(db_err)
            })
            .await?;
        self.published.notify_waiters();
        Ok(())
    }

    async fn ensure_group(&self, topic: &str, group: &str) -> Result<(), PubSubError> {
        let (topic, group) = (topic.to_owned(), group.to_owned());
        self.db
            .run(move |c| {
                c.execute(
                    "INSERT OR IGNORE INTO consumer_groups (topic, grp, cursor) VALUES (?1, ?2, 0)",
                    params![topic, group],
                )
                .map_err(db_err)
            })
            .await?;
        Ok(())
    }

    async fn fetch(
        &self,
        topic: &str,
        group: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, PubSubError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Register interest before looking, so a publish in between is not missed.
            let notified = self.published.notified();
            let got = self.take(topic, group, max.max(1)).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(got);
            }
            // Wake on a publish, or at the latest when a pending message may have come due.
            let nap = (deadline - now).min(Duration::from_millis(250));
            let _ = tokio::time::timeout(nap, notified).await;
        }
    }

    async fn ack(&self, topic: &str, group: &str, ack_id: &str) -> Result<(), PubSubError> {
        let seq: i64 = ack_id
            .parse()
            .map_err(|_| PubSubError::Backend(format!("invalid ack id {ack_id:?}")))?;
        let (topic, group) = (topic.to_owned(), group.to_owned());
        let sweep =
            self.acks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY_ACKS == SWEEP_EVERY_ACKS - 1;
        self.db
            .run(move |c| {
                c.execute(
                    "DELETE FROM pending WHERE topic = ?1 AND grp = ?2 AND seq = ?3",
                    params![topic, group, seq],
                )
                .map_err(db_err)?;
                if sweep {
                    // Messages every group has moved past and none still holds are done.
                    c.execute(
                        "DELETE FROM messages WHERE topic = ?1 \
                         AND seq <= (SELECT MIN(cursor) FROM consumer_groups WHERE topic = ?1) \
                         AND seq NOT IN (SELECT seq FROM pending WHERE topic = ?1)",
                        params![topic],
                    )
                    .map_err(db_err)?;
                }
                Ok(())
            })
            .await
    }
}
