//! `state.redis`: Dapr's layout, so data is shared with daprd: each key is a hash with fields
//! `data` (the JSON value) and `version` (the ETag, incremented on every write). All writes go
//! through one Lua script that checks every ETag before applying anything, which makes single
//! writes and transactions atomic alike.

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::ConnectionManager;
use tempest_building_blocks::state::{
    Concurrency, DeleteRequest, Feature, SetRequest, StateEntry, StateError, StateStore,
    TransactionOp,
};

use crate::ComponentError;
use crate::metadata::Metadata;

/// Checks then applies a list of operations. Per operation, ARGV holds five values:
/// kind (`U`/`D`), value, ETag (empty = none), first-write (`1`/`0`), TTL seconds (empty = none).
/// As in Dapr's Redis store, an ETag given for a key that does not exist is accepted.
pub const WRITE_SCRIPT: &str = r#"
local ver = {}
local function current(k)
  if ver[k] == nil then
    local t = redis.call("TYPE", k)["ok"]
    if t == "none" then ver[k] = false
    elseif t == "hash" then ver[k] = tonumber(redis.call("HGET", k, "version") or "0")
    else ver[k] = 0 end
  end
  return ver[k]
end
for i = 1, #KEYS do
  local k, b = KEYS[i], (i - 1) * 5
  local kind, etag, fw = ARGV[b + 1], ARGV[b + 3], ARGV[b + 4]
  local cur = current(k)
  if etag ~= "" then
    if cur and tostring(cur) ~= etag then return redis.error_reply("ETAG_MISMATCH " .. k) end
  elseif kind == "U" and fw == "1" and cur then
    return redis.error_reply("ETAG_MISMATCH " .. k)
  end
  if kind == "U" then ver[k] = (cur or 0) + 1 else ver[k] = false end
end
for i = 1, #KEYS do
  local k, b = KEYS[i], (i - 1) * 5
  if ARGV[b + 1] == "U" then
    if redis.call("TYPE", k)["ok"] ~= "hash" then redis.call("DEL", k) end
    redis.call("HINCRBY", k, "version", 1)
    redis.call("HSET", k, "data", ARGV[b + 2])
    if ARGV[b + 5] ~= "" then redis.call("EXPIRE", k, ARGV[b + 5]) else redis.call("PERSIST", k) end
  else
    redis.call("DEL", k)
  end
end
return "OK"
"#;

/// A Redis-backed state store.
pub struct RedisStateStore {
    conn: ConnectionManager,
    script: redis::Script,
}

/// Opens a Redis connection from Dapr's Redis metadata (`redisHost`, `redisPassword`,
/// `redisUsername`, `redisDB`).
pub async fn connect(md: &Metadata) -> Result<(redis::Client, ConnectionManager), ComponentError> {
    let err = |message: String| ComponentError::Init {
        component: md.component.clone(),
        message,
    };
    if md.flag("enableTLS", false)? {
        return Err(err("enableTLS is not supported by this build".into()));
    }
    let host = md.required("redisHost")?;
    let (h, p) = host.rsplit_once(':').unwrap_or((host, "6379"));
    let port: u16 = p
        .parse()
        .map_err(|_| err(format!("invalid redisHost {host:?}")))?;
    let db: i64 = md.number("redisDB", 0i64)?;
    let auth = match (md.get("redisUsername"), md.get("redisPassword")) {
        (None, None) => String::new(),
        (user, pass) => format!(
            "{}:{}@",
            userinfo(user.unwrap_or("")),
            userinfo(pass.unwrap_or(""))
        ),
    };
    let info = format!("redis://{auth}{h}:{port}/{db}");
    let client = redis::Client::open(info.as_str()).map_err(|e| err(e.to_string()))?;
    let conn = ConnectionManager::new(client.clone())
        .await
        .map_err(|e| err(format!("cannot connect to {host}: {e}")))?;
    Ok((client, conn))
}

/// Percent-encodes a URL userinfo part (RFC 3986 unreserved characters stay as they are).
fn userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn redis_err(e: redis::RedisError) -> StateError {
    if e.to_string().contains("ETAG_MISMATCH") {
        StateError::EtagMismatch(e.to_string())
    } else {
        StateError::backend(e)
    }
}

fn check_etag(etag: &Option<String>) -> Result<String, StateError> {
    match etag.as_deref() {
        None | Some("") => Ok(String::new()),
        Some(e) if e.parse::<u64>().is_ok() => Ok(e.to_owned()),
        Some(e) => Err(StateError::EtagInvalid(format!(
            "{e:?} is not a Redis ETag (a number)"
        ))),
    }
}

impl RedisStateStore {
    /// Connects using Dapr's Redis metadata.
    pub async fn connect(md: &Metadata) -> Result<Self, ComponentError> {
        let (_, conn) = connect(md).await?;
        Ok(RedisStateStore {
            conn,
            script: redis::Script::new(WRITE_SCRIPT),
        })
    }

    async fn write(&self, ops: &[TransactionOp]) -> Result<(), StateError> {
        let mut inv = self.script.prepare_invoke();
        for op in ops {
            match op {
                TransactionOp::Upsert(r) => {
                    let fw = if r.concurrency == Concurrency::FirstWrite {
                        "1"
                    } else {
                        "0"
                    };
                    let ttl = r.ttl_seconds.map(|t| t.to_string()).unwrap_or_default();
                    inv.key(&r.key)
                        .arg("U")
                        .arg(r.value.as_ref())
                        .arg(check_etag(&r.etag)?)
                        .arg(fw)
                        .arg(ttl);
                }
                TransactionOp::Delete(r) => {
                    // A present-but-empty If-Match on delete still means "check", and nothing matches it.
                    let etag = match r.etag.as_deref() {
                        Some("") => return Err(StateError::EtagMismatch("empty ETag".into())),
                        _ => check_etag(&r.etag)?,
                    };
                    inv.key(&r.key).arg("D").arg("").arg(etag).arg("0").arg("");
                }
            }
        }
        let mut conn = self.conn.clone();
        inv.invoke_async::<()>(&mut conn).await.map_err(redis_err)
    }
}

#[async_trait]
impl StateStore for RedisStateStore {
    fn features(&self) -> &'static [Feature] {
        &[Feature::Etag, Feature::Transactional, Feature::Ttl]
    }

    async fn get(&self, key: &str) -> Result<Option<StateEntry>, StateError> {
        let mut conn = self.conn.clone();
        let ((data, version), pttl): ((Option<Vec<u8>>, Option<String>), i64) = redis::pipe()
            .atomic()
            .cmd("HMGET")
            .arg(key)
            .arg("data")
            .arg("version")
            .cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .map_err(redis_err)?;
        let Some(data) = data else { return Ok(None) };
        Ok(Some(StateEntry {
            value: Bytes::from(data),
            etag: version.unwrap_or_else(|| "0".into()),
            expires_at: (pttl > 0)
                .then(|| chrono::Utc::now() + chrono::Duration::milliseconds(pttl)),
        }))
    }

    async fn set(&self, req: SetRequest) -> Result<(), StateError> {
        self.write(&[TransactionOp::Upsert(req)]).await
    }

    async fn delete(&self, req: DeleteRequest) -> Result<(), StateError> {
        self.write(&[TransactionOp::Delete(req)]).await
    }

    async fn transact(&self, ops: Vec<TransactionOp>) -> Result<(), StateError> {
        self.write(&ops).await
    }
}
