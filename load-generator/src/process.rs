//! The `tempest serve` process being measured, and its CPU and memory from /proc.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// A `tempest serve` child process.
pub struct Served {
    child: Child,
    /// Dapr HTTP API base URL.
    pub url: String,
    /// OTLP/HTTP traces URL (`…/v1/traces`).
    pub otlp_http_traces: String,
    /// Tempo query API base URL.
    pub query: String,
}

/// CPU time (user + system) and memory of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// CPU seconds used so far.
    pub cpu_secs: f64,
    /// Resident set size now, in bytes.
    pub rss_bytes: u64,
    /// Peak resident set size, in bytes.
    pub peak_rss_bytes: u64,
}

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl Served {
    /// Starts `bin serve` with `args` and waits for `/v1.0/healthz`.
    pub async fn start(bin: &Path, data_dir: &Path, args: &[String]) -> anyhow::Result<Served> {
        let port = free_port()?;
        let otlp_http = free_port()?;
        let query = free_port()?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--dapr-http-port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--otlp-http-port")
            .arg(otlp_http.to_string())
            .arg("--otlp-grpc-port")
            .arg(free_port()?.to_string())
            .arg("--zipkin-port")
            .arg(free_port()?.to_string())
            .arg("--jaeger-port")
            .arg(free_port()?.to_string())
            .arg("--query-port")
            .arg(query.to_string())
            .args(args)
            .env("TEMPEST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let served = Served {
            child,
            url: format!("http://127.0.0.1:{port}"),
            otlp_http_traces: format!("http://127.0.0.1:{otlp_http}/v1/traces"),
            query: format!("http://127.0.0.1:{query}"),
        };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if http
                .get(format!("{}/v1.0/healthz", served.url))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 204)
            {
                return Ok(served);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("tempest did not become healthy at {}", served.url)
    }

    /// Current CPU and memory use of the process.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        usage_of(self.child.id())
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads `/proc/<pid>/stat` (utime, stime) and `/proc/<pid>/status` (VmRSS, VmHWM).
pub fn usage_of(pid: u32) -> anyhow::Result<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat")?.parse::<f64>()?)
    };
    // SC_CLK_TCK is 100 on Linux for every architecture we run on.
    let cpu_secs = (ticks(11)? + ticks(12)?) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Ok(Usage {
        cpu_secs,
        rss_bytes: kb("VmRSS:"),
        peak_rss_bytes: kb("VmHWM:"),
    })
}

/// The release `tempest` binary next to this benchmark binary, or `target/release/tempest`.
pub fn default_tempest_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("tempest")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("target/release/tempest"))
}
