//! `state.aws.dynamodb`: Dapr's layout, so tables are shared with daprd. One item per key: the
//! partition key attribute (`partitionKey`, default `key`), `value` (the value as a string,
//! or binary when it is not UTF-8), `etag`, and, with `ttlAttributeName`, the expiry in Unix
//! seconds (DynamoDB removes expired items only eventually, so reads skip them). ETags and
//! first-write are condition expressions; transactions are one `TransactWriteItems`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tempest_building_blocks::state::{
    Concurrency, DeleteRequest, Feature, SetRequest, StateEntry, StateError, StateStore,
    TransactionOp,
};

use crate::ComponentError;
use crate::aws::{describe, sdk_config};
use crate::metadata::Metadata;

/// DynamoDB's limit on the items of one transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// A DynamoDB table as a state store.
pub struct DynamoStateStore {
    client: Client,
    table: String,
    partition_key: String,
    ttl_attribute: Option<String>,
}

/// A write's condition, in the shape every request builder takes: an expression with its
/// attribute names and values (all `None` for an unconditional write).
#[derive(Default)]
struct Condition {
    expression: Option<String>,
    names: Option<HashMap<String, String>>,
    values: Option<HashMap<String, AttributeValue>>,
}

/// Sets a [`Condition`] on any DynamoDB request builder (put, delete, and their transaction
/// forms share the setters but no trait).
macro_rules! conditioned {
    ($builder:expr, $condition:expr) => {{
        let Condition {
            expression,
            names,
            values,
        } = $condition;
        $builder
            .set_condition_expression(expression)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
    }};
}

impl DynamoStateStore {
    /// Connects from Dapr's metadata: `table` (required), `partitionKey`, `ttlAttributeName`,
    /// and the AWS fields (`region`, `endpoint`, `accessKey`, `secretKey`, `sessionToken`).
    pub async fn connect(md: &Metadata) -> Result<Self, ComponentError> {
        let config = sdk_config(md).await?;
        Ok(DynamoStateStore {
            client: Client::new(&config),
            table: md.required("table")?.to_owned(),
            partition_key: md.get("partitionKey").unwrap_or("key").to_owned(),
            ttl_attribute: md.get("ttlAttributeName").map(str::to_owned),
        })
    }

    fn key(&self, key: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([(
            self.partition_key.clone(),
            AttributeValue::S(key.to_owned()),
        )])
    }

    /// An item that is present and not past its TTL.
    fn live(
        &self,
    ) -> (
        String,
        HashMap<String, String>,
        HashMap<String, AttributeValue>,
    ) {
        let mut names = HashMap::from([("#pk".to_owned(), self.partition_key.clone())]);
        let Some(ttl) = &self.ttl_attribute else {
            return ("attribute_exists(#pk)".into(), names, HashMap::new());
        };
        names.insert("#ttl".into(), ttl.clone());
        (
            "attribute_exists(#pk) AND (attribute_not_exists(#ttl) OR #ttl > :now)".into(),
            names,
            HashMap::from([(":now".into(), AttributeValue::N(now().to_string()))]),
        )
    }

    /// The condition a write with `etag` and `concurrency` needs: the item's current ETag, or
    /// for first-write without one, that no live item exists.
    fn condition(&self, etag: Option<&str>, first_write: bool) -> Condition {
        let (live, mut names, mut values) = self.live();
        let expression = match etag {
            Some(etag) => {
                names.insert("#etag".into(), "etag".into());
                values.insert(":etag".into(), AttributeValue::S(etag.to_owned()));
                format!("{live} AND #etag = :etag")
            }
            None if first_write => format!("NOT ({live})"),
            None => return Condition::default(),
        };
        Condition {
            expression: Some(expression),
            names: Some(names),
            values: (!values.is_empty()).then_some(values),
        }
    }

    fn item(
        &self,
        req: &SetRequest,
        etag: &str,
    ) -> Result<HashMap<String, AttributeValue>, StateError> {
        let mut item = self.key(&req.key);
        let value = match std::str::from_utf8(&req.value) {
            Ok(text) => AttributeValue::S(text.to_owned()),
            Err(_) => AttributeValue::B(req.value.to_vec().into()),
        };
        item.insert("value".into(), value);
        item.insert("etag".into(), AttributeValue::S(etag.to_owned()));
        if let Some(seconds) = req.ttl_seconds {
            let Some(ttl) = &self.ttl_attribute else {
                return Err(StateError::InvalidRequest(
                    "ttlInSeconds needs the component's ttlAttributeName metadata".into(),
                ));
            };
            let at = now().saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX));
            item.insert(ttl.clone(), AttributeValue::N(at.to_string()));
        }
        Ok(item)
    }
}

fn now() -> i64 {
    Utc::now().timestamp()
}

fn new_etag() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// One key's operations in a transaction, folded into one.
#[derive(Debug)]
struct Folded {
    /// The first operation's ETag: the only state a caller's ETag can refer to.
    etag: Option<String>,
    /// The first operation's first-write.
    first_write: bool,
    /// The last operation, whose effect stands.
    op: TransactionOp,
}

/// DynamoDB takes one operation per item: operations on a key already written earlier in the
/// transaction fold into that key's last one, checked with the first one's condition. A later
/// operation with its own ETag cannot be honoured (the ETag it names was never stored).
fn fold(ops: Vec<TransactionOp>) -> Result<Vec<Folded>, StateError> {
    let mut out: Vec<Folded> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for op in ops {
        let (key, etag, first_write) = match &op {
            TransactionOp::Upsert(r) => (
                r.key.clone(),
                r.etag.clone(),
                r.concurrency == Concurrency::FirstWrite,
            ),
            TransactionOp::Delete(r) => (r.key.clone(), r.etag.clone(), false),
        };
        match index.get(&key) {
            None => {
                index.insert(key, out.len());
                out.push(Folded {
                    etag,
                    first_write,
                    op,
                });
            }
            Some(_) if etag.is_some() => {
                return Err(StateError::InvalidRequest(format!(
                    "key {key}: an ETag on a key already written in the same transaction"
                )));
            }
            Some(&i) => out[i].op = op,
        }
    }
    Ok(out)
}

/// A single write's outcome: a failed condition is an ETag mismatch on `key`.
fn written<T, E, R>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
    key: String,
) -> Result<(), StateError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.code() == Some("ConditionalCheckFailedException")) =>
        {
            Err(StateError::EtagMismatch(key))
        }
        Err(e) => Err(StateError::Backend(describe(&e))),
    }
}

#[async_trait]
impl StateStore for DynamoStateStore {
    fn features(&self) -> &'static [Feature] {
        if self.ttl_attribute.is_some() {
            &[Feature::Etag, Feature::Transactional, Feature::Ttl]
        } else {
            &[Feature::Etag, Feature::Transactional]
        }
    }

    async fn get(&self, key: &str) -> Result<Option<StateEntry>, StateError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(self.key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StateError::Backend(describe(&e)))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let expires = self
            .ttl_attribute
            .as_ref()
            .and_then(|a| item.get(a))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok());
        if expires.is_some_and(|at| at <= now()) {
            return Ok(None);
        }
        let value = match item.get("value") {
            Some(AttributeValue::S(s)) => Bytes::from(s.clone()),
            Some(AttributeValue::B(b)) => Bytes::from(b.clone().into_inner()),
            _ => Bytes::new(),
        };
        let etag = item
            .get("etag")
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default();
        Ok(Some(StateEntry {
            value,
            etag,
            expires_at: expires.and_then(|at| DateTime::from_timestamp(at, 0)),
        }))
    }

    async fn set(&self, req: SetRequest) -> Result<(), StateError> {
        let condition = self.condition(
            req.etag.as_deref(),
            req.concurrency == Concurrency::FirstWrite,
        );
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.item(&req, &new_etag())?));
        let result = conditioned!(put, condition).send().await;
        written(result, req.key)
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), StateError> {
        let condition = self.condition(req.etag.as_deref(), false);
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.key(&req.key)));
        let result = conditioned!(delete, condition).send().await;
        written(result, req.key)
    }

    async fn transact(&self, ops: Vec<TransactionOp>) -> Result<(), StateError> {
        let folded = fold(ops)?;
        if folded.is_empty() {
            return Ok(());
        }
        if folded.len() > MAX_TRANSACTION_ITEMS {
            return Err(StateError::InvalidRequest(format!(
                "a transaction on DynamoDB writes at most {MAX_TRANSACTION_ITEMS} keys, not {}",
                folded.len()
            )));
        }
        let mut items = Vec::with_capacity(folded.len());
        for Folded {
            etag,
            first_write,
            op,
        } in folded
        {
            let condition = self.condition(etag.as_deref(), first_write);
            let item = match op {
                TransactionOp::Upsert(req) => {
                    let put = Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(self.item(&req, &new_etag())?));
                    let put = conditioned!(put, condition)
                        .build()
                        .map_err(StateError::backend)?;
                    TransactWriteItem::builder().put(put).build()
                }
                TransactionOp::Delete(req) => {
                    let delete = Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(self.key(&req.key)));
                    let delete = conditioned!(delete, condition)
                        .build()
                        .map_err(StateError::backend)?;
                    TransactWriteItem::builder().delete(delete).build()
                }
            };
            items.push(item);
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                let failed_condition = matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(ex))
                        if ex.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
                );
                if failed_condition {
                    Err(StateError::EtagMismatch(describe(&e)))
                } else {
                    Err(StateError::Backend(describe(&e)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempest_building_blocks::state::DeleteRequest;

    fn upsert(key: &str, value: &'static str, etag: Option<&str>) -> TransactionOp {
        TransactionOp::Upsert(SetRequest {
            key: key.into(),
            value: value.into(),
            etag: etag.map(str::to_owned),
            concurrency: Concurrency::LastWrite,
            ttl_seconds: None,
        })
    }

    fn delete(key: &str, etag: Option<&str>) -> TransactionOp {
        TransactionOp::Delete(DeleteRequest {
            key: key.into(),
            etag: etag.map(str::to_owned),
            concurrency: Concurrency::LastWrite,
        })
    }

    #[test]
    fn a_transaction_folds_to_one_operation_per_key() {
        let folded = fold(vec![
            delete("a", Some("e1")),
            upsert("b", "1", None),
            upsert("a", "2", None),
            delete("b", None),
            upsert("a", "3", None),
        ])
        .expect("fold");
        assert_eq!(folded.len(), 2, "{folded:?}");
        // Key order is the order of first appearance; the first ETag, the last effect.
        assert_eq!(folded[0].etag.as_deref(), Some("e1"));
        assert!(
            matches!(&folded[0].op, TransactionOp::Upsert(r) if r.key == "a" && &r.value[..] == b"3")
        );
        assert!(matches!(&folded[1].op, TransactionOp::Delete(r) if r.key == "b"));
        assert!(matches!(
            fold(vec![upsert("a", "1", None), upsert("a", "2", Some("e"))]),
            Err(StateError::InvalidRequest(_))
        ));
        assert!(fold(vec![]).expect("empty").is_empty());
    }
}
