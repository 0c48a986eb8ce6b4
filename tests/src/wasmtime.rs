//! `wasmtime serve`, the engine Spin embeds, serving a WebAssembly HTTP component the way Spin
//! does (a fresh instance per request): used by the Spin tests and by `tempest-bench spin`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `wasmtime` CLI `scripts/install-wasmtime` installs; `TEMPEST_WASMTIME` overrides.
pub fn binary() -> PathBuf {
    let path = std::env::var_os("TEMPEST_WASMTIME").map_or_else(
        || {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/tempest/wasmtime/bin/wasmtime")
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: scripts/install-wasmtime installs it (scripts/test runs it)",
        path.display()
    );
    path
}

/// One served component; killed when dropped.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// From starting `wasmtime serve` to its port answering (compiling the component).
    pub listening_after: Duration,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `component` as `function` (its TEMPEST_FUNCTION) with `env` in its environment and
/// `data`, if given, mounted at `/data` (spin.toml's data folder); without it the component has
/// no folder. Panics when the server exits or does not listen within 120 s.
pub async fn serve(
    component: &Path,
    function: Option<&str>,
    data: Option<&Path>,
    env: &[(&str, String)],
) -> Served {
    let port = crate::free_port();
    let started = Instant::now();
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "-Scli", "--addr", &format!("127.0.0.1:{port}")]);
    if let Some(data) = data {
        cmd.arg("--dir").arg(format!("{}::/data", data.display()));
    }
    if let Some(f) = function {
        cmd.arg("--env").arg(format!("TEMPEST_FUNCTION={f}"));
    }
    for (k, v) in env {
        cmd.arg("--env").arg(format!("{k}={v}"));
    }
    let child = cmd
        .arg(component)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start wasmtime serve");
    // Owned by `Served` from here, so a panic below still stops the process.
    let mut served = Served {
        child,
        url: format!("http://127.0.0.1:{port}"),
        listening_after: Duration::ZERO,
    };
    // Compiling a component takes seconds on two shared cores.
    while started.elapsed() < Duration::from_secs(120) {
        if let Some(status) = served.child.try_wait().expect("wasmtime status") {
            panic!("wasmtime serve exited before it listened: {status}");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            served.listening_after = started.elapsed();
            return served;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("wasmtime serve did not listen on {port} within 120 s");
}
