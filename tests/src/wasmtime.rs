//! `wasmtime serve`, the engine Spin embeds, serving a WebAssembly HTTP component the way Spin
//! does (a fresh instance per request): used by the Spin tests and by `tempest-bench spin`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::process::{Server, spawn_listening};
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
    _server: Server,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// From starting `wasmtime serve` to its port answering (compiling the component).
    pub listening_after: Duration,
}

/// Serves `component` as `function` (its TEMPEST_FUNCTION) with `env` in its environment and
/// `data`, if given, mounted at `/data` (spin.toml's data folder); without it the component has
/// no folder. Panics when it does not listen within 120 s, or exits before it listens on four
/// ports in a row.
pub async fn serve(
    component: &Path,
    function: Option<&str>,
    data: Option<&Path>,
    env: &[(&str, String)],
) -> Served {
    let started = Instant::now();
    // Compiling a component takes seconds on two shared cores.
    let (server, port) = spawn_listening("wasmtime serve", Duration::from_secs(120), |port| {
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
        cmd.arg(component)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        cmd
    })
    .await;
    Served {
        _server: server,
        url: format!("http://127.0.0.1:{port}"),
        listening_after: started.elapsed(),
    }
}
