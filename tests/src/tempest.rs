//! The `tempest serve` process under test.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Path of the `tempest` binary: `TEMPEST_BIN`, else the workspace's debug build.
pub fn binary() -> PathBuf {
    if let Ok(p) = std::env::var("TEMPEST_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/tempest")
}

/// Another binary of the workspace, next to `tempest` (e.g. `tempest-load`).
pub fn sibling_binary(name: &str) -> PathBuf {
    binary().with_file_name(name)
}

/// A running `tempest serve`; killed when dropped.
pub struct Tempest {
    child: Option<Child>,
    /// Dapr HTTP API port.
    pub port: u16,
    /// Base URL of the Dapr HTTP API.
    pub url: String,
    /// OTLP/HTTP receiver port.
    pub otlp_port: u16,
    /// OTLP/gRPC receiver port.
    pub grpc_port: u16,
    /// Zipkin receiver port.
    pub zipkin_port: u16,
    /// Jaeger Thrift HTTP receiver port.
    pub jaeger_port: u16,
    /// Tempo query API port.
    pub query_port: u16,
    /// The data folder (kept across restarts of the same test).
    pub data_dir: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
}

impl Tempest {
    /// Starts `tempest serve` with `args` (plus port and data folder) and waits until healthy.
    pub async fn start(data_dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Tempest {
        let port = crate::free_port();
        let mut t = Tempest {
            child: None,
            port,
            url: format!("http://127.0.0.1:{port}"),
            otlp_port: crate::free_port(),
            grpc_port: crate::free_port(),
            zipkin_port: crate::free_port(),
            jaeger_port: crate::free_port(),
            query_port: crate::free_port(),
            data_dir: data_dir.to_path_buf(),
            args: args.iter().map(|s| s.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log: data_dir.join(format!("tempest-{port}.log")),
        };
        t.spawn().await;
        t
    }

    async fn spawn(&mut self) {
        self.spawn_attempt(0).await
    }

    async fn spawn_attempt(&mut self, attempt: u32) {
        let bin = binary();
        assert!(
            bin.exists(),
            "tempest binary not found at {} (build the workspace first)",
            bin.display()
        );
        std::fs::create_dir_all(&self.data_dir).expect("data dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = Command::new(&bin);
        cmd.arg("serve")
            .arg("--dapr-http-port")
            .arg(self.port.to_string())
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--otlp-http-port")
            .arg(self.otlp_port.to_string())
            .arg("--otlp-grpc-port")
            .arg(self.grpc_port.to_string())
            .arg("--zipkin-port")
            .arg(self.zipkin_port.to_string())
            .arg("--jaeger-port")
            .arg(self.jaeger_port.to_string())
            .arg("--query-port")
            .arg(self.query_port.to_string())
            .args(&self.args)
            .env("TEMPEST_LOG", "info,tempest_building_blocks=debug")
            .env_remove("DAPR_API_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("start tempest"));
        let client = reqwest::Client::new();
        let health = format!("{}/v1.0/healthz", self.url);
        for _ in 0..200 {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let log = self.log_text();
                // Another test may have taken the port between picking and binding it.
                if log.contains("cannot listen") && attempt < 3 {
                    self.port = crate::free_port();
                    self.otlp_port = crate::free_port();
                    self.grpc_port = crate::free_port();
                    self.zipkin_port = crate::free_port();
                    self.jaeger_port = crate::free_port();
                    self.query_port = crate::free_port();
                    self.url = format!("http://127.0.0.1:{}", self.port);
                    return Box::pin(self.spawn_attempt(attempt + 1)).await;
                }
                panic!("tempest exited with {status} during start:\n{log}");
            }
            // Healthy, and the answer came from this process, not from one that took the port.
            if client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 204)
                && self
                    .child
                    .as_ref()
                    .is_some_and(|c| crate::process::listens_on(c.id(), self.port))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("tempest did not become healthy:\n{}", self.log_text());
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again with the same arguments, port and data folder.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Everything the process logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/v1.0/metadata` lists at least `n` subscriptions (apps' programmatic
    /// subscriptions arrive once Tempest has asked them).
    pub async fn wait_for_subscriptions(&self, n: usize) {
        let http = reqwest::Client::new();
        crate::eventually(10, "subscriptions in metadata", || async {
            let md: serde_json::Value = http
                .get(self.at("/v1.0/metadata"))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (md["subscriptions"].as_array()?.len() >= n).then_some(())
        })
        .await;
    }

    /// `url` + `path`.
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// Dapr's optimistic concurrency through the state API of `store`: saves `item` (a state
    /// item with `key` and `value`), reads it back (200, the value, an ETag), is refused with
    /// 409 under `stale_etag` and accepted under the ETag read. Returns the read's headers.
    pub async fn etag_round_trip(
        &self,
        store: &str,
        item: serde_json::Value,
        stale_etag: &str,
    ) -> reqwest::header::HeaderMap {
        let http = reqwest::Client::new();
        let key = item["key"].as_str().expect("item key").to_owned();
        let save = |body: serde_json::Value| {
            http.post(self.at(&format!("/v1.0/state/{store}")))
                .json(&body)
                .send()
        };
        let saved = save(serde_json::json!([item])).await.expect("save");
        assert_eq!(saved.status(), 204);
        let got = http
            .get(self.at(&format!("/v1.0/state/{store}/{key}")))
            .send()
            .await
            .expect("get");
        assert_eq!(got.status(), 200);
        let headers = got.headers().clone();
        let etag = headers["etag"].to_str().expect("etag").to_owned();
        assert_eq!(
            got.json::<serde_json::Value>().await.expect("json"),
            item["value"]
        );
        let stale = save(serde_json::json!([{"key": key, "value": 1, "etag": stale_etag}]))
            .await
            .expect("save");
        assert_eq!(stale.status(), 409, "a stale ETag: Dapr's 409");
        let ok = save(serde_json::json!([{"key": key, "value": 2, "etag": etag}]))
            .await
            .expect("save");
        assert_eq!(ok.status(), 204);
        headers
    }
}

impl Drop for Tempest {
    fn drop(&mut self) {
        self.kill();
    }
}
