//! Server processes the tests start on free loopback ports. A port picked by [`crate::free_port`]
//! is free only when it is picked: a test running alongside may take it before the process binds
//! it, and then whatever answers on it is not the process the test started. So a start here waits
//! until the started process itself holds the listening socket, and picks a new port when the
//! process exits before it listens.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A server process killed when the test ends.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many ports a start tries before it gives up.
const ATTEMPTS: u32 = 4;

/// Starts `command(port)` on a free port and waits up to `timeout` until that process listens on
/// it; the handle and the port. Panics naming `what` when it never does.
pub async fn spawn_listening(
    what: &str,
    timeout: Duration,
    mut command: impl FnMut(u16) -> Command,
) -> (Server, u16) {
    for _ in 0..ATTEMPTS {
        let port = crate::free_port();
        let mut server = Server(
            command(port)
                .spawn()
                .unwrap_or_else(|e| panic!("start {what}: {e}")),
        );
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = server.0.try_wait().expect("child status") {
                // Most often the port was taken between picking and binding it: try another.
                eprintln!(
                    "{what} exited before it listened on {port} ({status}); trying another port"
                );
                break;
            }
            if listens_on(server.0.id(), port) {
                return (server, port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            started.elapsed() < timeout,
            "{what} did not listen on port {port} within {timeout:?}"
        );
    }
    panic!("{what} exited before it listened, on {ATTEMPTS} ports in a row");
}

/// Whether process `pid` holds a socket listening on TCP `port` (any local address). Read from
/// `/proc`: the listening sockets' inodes in `/proc/net/tcp{,6}`, then the process's descriptors.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            inodes
                .iter()
                .any(|inode| target == format!("socket:[{inode}]"))
        })
    })
}

/// The inodes of the sockets in state LISTEN on `port`.
fn listening_inodes(port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    let port = format!("{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| {
                    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let local_port = fields.get(1)?.rsplit(':').next()?;
                    (local_port == port && *fields.get(3)? == LISTEN)
                        .then(|| fields.get(9).map(|inode| inode.to_string()))
                        .flatten()
                })
                .collect::<Vec<_>>()
        })
        .collect()
}
