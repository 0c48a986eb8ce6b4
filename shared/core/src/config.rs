//! Tempest's settings: a YAML file, then environment variables, then command-line flags
//! (applied by the binary). Every setting has a default that works locally with nothing installed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File that was read.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid YAML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// File that was parsed.
        path: PathBuf,
        /// Underlying YAML error.
        source: serde_yaml::Error,
    },
    /// An environment variable or flag has a value of the wrong form.
    #[error("invalid value for {name}: {message}")]
    Invalid {
        /// Variable or flag name.
        name: String,
        /// What was wrong.
        message: String,
    },
}

/// The whole configuration of a Tempest process.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// App id Tempest itself uses as CloudEvent `source` and as the default state key prefix.
    pub app_id: String,
    /// Folder for the embedded stores (state, pub/sub) and, later, trace blocks.
    pub data_dir: PathBuf,
    /// Folder of Dapr resource files (Component, Subscription, Configuration, Resiliency).
    pub resources_path: Option<PathBuf>,
    /// Dapr resource documents inline (YAML, `---` between documents), read after the folder:
    /// how a serverless function gets its components from one environment variable.
    pub components: Option<String>,
    /// Dapr HTTP API settings.
    pub dapr: DaprConfig,
    /// Declared apps: app id → base URL. Invoke resolves these; deliveries go here.
    pub apps: BTreeMap<String, String>,
    /// Trace ingestion and storage.
    pub traces: TracesConfig,
    /// The `deliver` function on hosts whose broker pushes messages to it.
    pub deliver: DeliverConfig,
}

/// What a pushed `deliver` function serves: one pub/sub component's queue, for one
/// subscribing app (Dapr's SNS/SQS layout: a queue per app) or for every declared app.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverConfig {
    /// The pub/sub component whose messages arrive.
    pub pubsub: String,
    /// The one app the queue belongs to; none: every declared app.
    pub app: Option<String>,
    /// Topic of messages that name none (a queue per topic).
    pub topic: Option<String>,
}

impl Default for DeliverConfig {
    fn default() -> Self {
        DeliverConfig {
            pubsub: "pubsub".into(),
            app: None,
            topic: None,
        }
    }
}

/// Settings of trace ingestion and block storage.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// Where blocks live: a folder, `file:///…` or `memory://`. Default: `<data_dir>/traces`.
    pub storage: Option<String>,
    /// Address the trace receivers bind.
    pub bind: String,
    /// OTLP/gRPC port (Tempo's default 4317); 0 disables it.
    pub otlp_grpc_port: u16,
    /// OTLP/HTTP port (Tempo's default 4318); 0 disables it.
    pub otlp_http_port: u16,
    /// Zipkin port (9411); 0 disables it.
    pub zipkin_port: u16,
    /// Jaeger Thrift HTTP port (14268); 0 disables it.
    pub jaeger_port: u16,
    /// Tempo query API port (Tempo's default 3200), for Grafana; 0 disables it.
    pub query_port: u16,
    /// Largest accepted ingest body in bytes, after decompression.
    pub max_body_size: usize,
    /// Export Tempest's own spans (service `tempest`) into its OTLP/HTTP receiver.
    pub self_telemetry: bool,
    /// Send each search job to the `search-worker` at this URL (HTTP POST) instead of
    /// running it in the query process.
    pub search_worker_url: Option<String>,
    /// Tenants the receivers and the query API serve; empty serves every valid tenant. A
    /// public function URL needs this: Tempo leaves tenant checks to a gateway in front.
    pub allowed_tenants: Vec<String>,
    /// Compaction and retention of blocks.
    pub compaction: CompactionConfig,
}

/// Settings of the `compact` function (Tempo's compactor and retention settings). Durations
/// are written like Tempo's: `30s`, `5m`, `1h`, `336h`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionConfig {
    /// How often `tempest serve` runs `compact`; `0s` turns the schedule off.
    #[serde(with = "duration_text")]
    pub interval: Duration,
    /// How long one run may take (a Lambda run has a hard deadline); what does not fit is
    /// left for the next run.
    #[serde(with = "duration_text")]
    pub time_budget: Duration,
    /// Width of a compaction window (Tempo's `compaction_window`).
    #[serde(with = "duration_text")]
    pub window: Duration,
    /// Most blocks merged into one (Tempo's `max_input_blocks`).
    pub max_input_blocks: usize,
    /// Most data bytes in a merged block (Tempo's `max_block_bytes`).
    pub max_block_bytes: u64,
    /// How long blocks are kept (Tempo's `block_retention`).
    #[serde(with = "duration_text")]
    pub retention: Duration,
    /// Per-tenant retention, overriding `retention`.
    #[serde(with = "duration_map_text")]
    pub tenant_retention: BTreeMap<String, Duration>,
    /// How long a compacted block is kept for in-flight queries before it is deleted
    /// (Tempo's `compacted_block_retention`).
    #[serde(with = "duration_text")]
    pub compacted_block_retention: Duration,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig {
            interval: Duration::from_secs(300),
            time_budget: Duration::from_secs(240),
            window: Duration::from_secs(3600),
            max_input_blocks: 32,
            max_block_bytes: 1 << 30,
            retention: Duration::from_secs(336 * 3600),
            tenant_retention: BTreeMap::new(),
            compacted_block_retention: Duration::from_secs(3600),
        }
    }
}

/// Parses a duration the way the config file writes them (`90s`, `5m`, `1h30m`, `336h`).
pub fn parse_duration(name: &str, text: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| ConfigError::Invalid {
        name: name.into(),
        message: format!("{text:?} is not a duration like 30s, 5m or 336h: {e}"),
    })
}

/// Parses `tenant=duration,…` (`TEMPEST_TENANT_RETENTION`).
pub fn parse_tenant_durations(
    name: &str,
    text: &str,
) -> Result<BTreeMap<String, Duration>, ConfigError> {
    let mut out = BTreeMap::new();
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (tenant, d) = pair.split_once('=').ok_or_else(|| ConfigError::Invalid {
            name: name.into(),
            message: format!("{pair:?} is not tenant=duration"),
        })?;
        out.insert(tenant.trim().to_owned(), parse_duration(name, d)?);
    }
    Ok(out)
}

mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_duration("duration", &text).map_err(serde::de::Error::custom)
    }
}

mod duration_map_text {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Duration>, D::Error> {
        BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                super::parse_duration(&k, &v)
                    .map(|d| (k, d))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            storage: None,
            bind: "127.0.0.1".into(),
            otlp_grpc_port: 4317,
            otlp_http_port: 4318,
            zipkin_port: 9411,
            jaeger_port: 14268,
            query_port: 3200,
            max_body_size: 20 << 20,
            self_telemetry: true,
            search_worker_url: None,
            allowed_tenants: Vec::new(),
            compaction: CompactionConfig::default(),
        }
    }
}

impl Config {
    /// The block storage URL: the configured one, or `<data_dir>/traces`.
    pub fn traces_storage(&self) -> String {
        self.traces
            .storage
            .clone()
            .unwrap_or_else(|| self.data_dir.join("traces").to_string_lossy().into_owned())
    }
}

/// Settings of the Dapr HTTP API listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DaprConfig {
    /// Address to bind.
    pub bind: String,
    /// Port of the Dapr HTTP API (Dapr's default is 3500).
    pub http_port: u16,
    /// Largest accepted request body in bytes (Dapr's default is 4 MiB).
    pub max_body_size: usize,
    /// When set, every request must carry this value in `dapr-api-token`.
    pub api_token: Option<String>,
    /// When set, sent as `dapr-api-token` on every call Tempest makes to an app.
    pub app_api_token: Option<String>,
}

impl Default for DaprConfig {
    fn default() -> Self {
        DaprConfig {
            bind: "127.0.0.1".into(),
            http_port: 3500,
            max_body_size: 4 << 20,
            api_token: None,
            app_api_token: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            app_id: "tempest".into(),
            data_dir: PathBuf::from("./data"),
            resources_path: None,
            components: None,
            dapr: DaprConfig::default(),
            apps: BTreeMap::new(),
            traces: TracesConfig::default(),
            deliver: DeliverConfig::default(),
        }
    }
}

/// Parses `ID=URL` as used by `--app` and `TEMPEST_APPS`.
pub fn parse_app(spec: &str) -> Result<(String, String), ConfigError> {
    let invalid = |message: &str| ConfigError::Invalid {
        name: "app".into(),
        message: format!("{message} in {spec:?} (expected ID=URL)"),
    };
    let (id, url) = spec.split_once('=').ok_or_else(|| invalid("missing '='"))?;
    let (id, url) = (id.trim(), url.trim().trim_end_matches('/'));
    if id.is_empty() || id.contains("||") || id.contains('/') {
        return Err(invalid("invalid app id"));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(invalid("URL must start with http:// or https://"));
    }
    Ok((id.to_owned(), url.to_owned()))
}

fn parse_num<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::Invalid {
        name: name.into(),
        message: format!("{value:?} is not a valid number"),
    })
}

impl Config {
    /// Reads a YAML config file on top of the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        let mut config: Config =
            serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.into(),
                source,
            })?;
        // Validate and normalise the apps the same way `--app` does.
        let apps = std::mem::take(&mut config.apps);
        for (id, url) in apps {
            let (id, url) = parse_app(&format!("{id}={url}"))?;
            config.apps.insert(id, url);
        }
        Ok(config)
    }

    /// Applies environment variables (`TEMPEST_*`, plus Dapr's `DAPR_API_TOKEN`, `APP_API_TOKEN`
    /// and `DAPR_HTTP_PORT`). Takes the variables as an iterator so tests need not touch the process env.
    pub fn apply_env<I, K, V>(&mut self, vars: I) -> Result<(), ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        for (name, value) in vars {
            let (name, value) = (name.as_ref(), value.as_ref());
            match name {
                "TEMPEST_APP_ID" => self.app_id = value.into(),
                "TEMPEST_DATA_DIR" => self.data_dir = value.into(),
                "TEMPEST_RESOURCES_PATH" => self.resources_path = Some(value.into()),
                "TEMPEST_COMPONENTS" => {
                    self.components = Some(value.to_owned()).filter(|v| !v.trim().is_empty())
                }
                "TEMPEST_DAPR_BIND" => self.dapr.bind = value.into(),
                "TEMPEST_DAPR_HTTP_PORT" | "DAPR_HTTP_PORT" => {
                    self.dapr.http_port = parse_num(name, value)?
                }
                "TEMPEST_MAX_BODY_SIZE" => self.dapr.max_body_size = parse_num(name, value)?,
                "TEMPEST_TRACES_STORAGE" => self.traces.storage = Some(value.into()),
                "TEMPEST_OTLP_HTTP_PORT" => self.traces.otlp_http_port = parse_num(name, value)?,
                "TEMPEST_OTLP_GRPC_PORT" => self.traces.otlp_grpc_port = parse_num(name, value)?,
                "TEMPEST_ZIPKIN_PORT" => self.traces.zipkin_port = parse_num(name, value)?,
                "TEMPEST_JAEGER_PORT" => self.traces.jaeger_port = parse_num(name, value)?,
                "TEMPEST_QUERY_PORT" => self.traces.query_port = parse_num(name, value)?,
                "TEMPEST_ALLOWED_TENANTS" => {
                    self.traces.allowed_tenants = value
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "TEMPEST_SEARCH_WORKER_URL" => {
                    self.traces.search_worker_url =
                        Some(value.trim().to_owned()).filter(|v| !v.is_empty())
                }
                "TEMPEST_SELF_TELEMETRY" => {
                    self.traces.self_telemetry =
                        !matches!(value.trim(), "0" | "false" | "off" | "no")
                }
                "TEMPEST_TRACES_MAX_BODY_SIZE" => {
                    self.traces.max_body_size = parse_num(name, value)?
                }
                "TEMPEST_COMPACTION_INTERVAL" => {
                    self.traces.compaction.interval = parse_duration(name, value)?
                }
                "TEMPEST_COMPACTION_TIME_BUDGET" => {
                    self.traces.compaction.time_budget = parse_duration(name, value)?
                }
                "TEMPEST_COMPACTION_WINDOW" => {
                    self.traces.compaction.window = parse_duration(name, value)?
                }
                "TEMPEST_COMPACTION_MAX_INPUT_BLOCKS" => {
                    self.traces.compaction.max_input_blocks = parse_num(name, value)?
                }
                "TEMPEST_COMPACTION_MAX_BLOCK_BYTES" => {
                    self.traces.compaction.max_block_bytes = parse_num(name, value)?
                }
                "TEMPEST_RETENTION" => {
                    self.traces.compaction.retention = parse_duration(name, value)?
                }
                "TEMPEST_TENANT_RETENTION" => {
                    self.traces.compaction.tenant_retention = parse_tenant_durations(name, value)?
                }
                "TEMPEST_COMPACTED_BLOCK_RETENTION" => {
                    self.traces.compaction.compacted_block_retention = parse_duration(name, value)?
                }
                "TEMPEST_DELIVER_PUBSUB" => self.deliver.pubsub = value.trim().into(),
                "TEMPEST_DELIVER_APP" => {
                    self.deliver.app = Some(value.trim().to_owned()).filter(|v| !v.is_empty())
                }
                "TEMPEST_DELIVER_TOPIC" => {
                    self.deliver.topic = Some(value.trim().to_owned()).filter(|v| !v.is_empty())
                }
                "DAPR_API_TOKEN" if !value.is_empty() => self.dapr.api_token = Some(value.into()),
                "APP_API_TOKEN" if !value.is_empty() => {
                    self.dapr.app_api_token = Some(value.into())
                }
                "TEMPEST_APPS" => {
                    for spec in value.split(',').filter(|s| !s.trim().is_empty()) {
                        let (id, url) = parse_app(spec)?;
                        self.apps.insert(id, url);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_locally() {
        let c = Config::default();
        assert_eq!(c.dapr.http_port, 3500);
        assert_eq!(c.dapr.max_body_size, 4 * 1024 * 1024);
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.apps.is_empty());
    }

    #[test]
    fn file_then_env() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tempest.yaml");
        std::fs::write(
            &path,
            "app_id: shop\ndapr:\n  http_port: 3600\napps:\n  orders: http://127.0.0.1:5001/\n",
        )
        .expect("write");
        let mut c = Config::from_file(&path).expect("parse");
        assert_eq!(c.app_id, "shop");
        assert_eq!(c.dapr.http_port, 3600);
        c.apply_env([
            ("TEMPEST_DAPR_HTTP_PORT", "3700"),
            ("TEMPEST_APPS", "billing=http://127.0.0.1:5002"),
            ("DAPR_API_TOKEN", "s3cret"),
            ("UNRELATED", "x"),
        ])
        .expect("env");
        assert_eq!(c.dapr.http_port, 3700);
        assert_eq!(c.apps["orders"], "http://127.0.0.1:5001");
        assert_eq!(c.apps["billing"], "http://127.0.0.1:5002");
        assert_eq!(c.dapr.api_token.as_deref(), Some("s3cret"));
    }

    #[test]
    fn rejects_bad_values() {
        let mut c = Config::default();
        assert!(c.apply_env([("TEMPEST_DAPR_HTTP_PORT", "http")]).is_err());
        assert!(parse_app("noequals").is_err());
        assert!(parse_app("a=ftp://x").is_err());
        assert!(parse_app("=http://x").is_err());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.yaml");
        std::fs::write(&path, "dapr:\n  http_port: [1]\n").expect("write");
        assert!(matches!(
            Config::from_file(&path),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::write(&path, "nosuchsetting: 1\n").expect("write");
        assert!(Config::from_file(&path).is_err());
        std::fs::write(&path, "traces:\n  compaction:\n    retention: soon\n").expect("write");
        assert!(Config::from_file(&path).is_err());
        for (name, value) in [
            ("TEMPEST_RETENTION", "14 days-ish"),
            ("TEMPEST_TENANT_RETENTION", "a:1h"),
            ("TEMPEST_TENANT_RETENTION", "a=forever"),
            ("TEMPEST_COMPACTION_MAX_INPUT_BLOCKS", "-1"),
        ] {
            assert!(c.apply_env([(name, value)]).is_err(), "{name}={value}");
        }
    }

    #[test]
    fn compaction_settings_from_file_and_env() {
        let c = Config::default().traces.compaction;
        assert_eq!(
            c.retention,
            Duration::from_secs(14 * 24 * 3600),
            "Tempo's 336h"
        );
        assert_eq!(c.compacted_block_retention, Duration::from_secs(3600));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tempest.yaml");
        std::fs::write(
            &path,
            "traces:\n  compaction:\n    interval: 30s\n    retention: 48h\n    \
             tenant_retention:\n      team-a: 1h30m\n",
        )
        .expect("write");
        let mut c = Config::from_file(&path).expect("parse");
        let k = &c.traces.compaction;
        assert_eq!(k.interval, Duration::from_secs(30));
        assert_eq!(k.retention, Duration::from_secs(48 * 3600));
        assert_eq!(k.tenant_retention["team-a"], Duration::from_secs(5400));
        c.apply_env([
            ("TEMPEST_COMPACTION_INTERVAL", "0"),
            ("TEMPEST_TENANT_RETENTION", "b=24h, c=10m"),
            ("TEMPEST_COMPACTED_BLOCK_RETENTION", "5m"),
            ("TEMPEST_COMPACTION_MAX_INPUT_BLOCKS", "100"),
        ])
        .expect("env");
        let k = &c.traces.compaction;
        assert_eq!(k.interval, Duration::ZERO);
        assert_eq!(k.tenant_retention.len(), 2);
        assert_eq!(k.tenant_retention["c"], Duration::from_secs(600));
        assert_eq!(k.compacted_block_retention, Duration::from_secs(300));
        assert_eq!(k.max_input_blocks, 100);
    }
}
