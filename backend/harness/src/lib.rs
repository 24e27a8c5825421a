//! Starts a real `backend serve` process and finds the address it listens on: the one way the
//! backend's crash test, the end-to-end tests and `backend-bench` run a server. The caller builds
//! the `Command` (which binary, arguments, environment, where stderr goes); this crate pipes its
//! stdout, waits for the `listening on ADDR` line `serve` prints once it accepts connections, and
//! keeps draining stdout afterwards so the server never blocks on a full pipe. Dropping the
//! [`Served`] handle kills the process (SIGKILL) and reaps it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// What `backend serve` prints on stdout once it is listening, followed by the address.
pub const LISTENING: &str = "listening on ";

/// A running `backend serve` process.
#[derive(Debug)]
pub struct Served {
    pub child: Child,
    /// `host:port` it listens on.
    pub addr: String,
}

impl Served {
    /// Stops the server abruptly (SIGKILL, like a crash) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Why a server did not come up.
#[derive(Debug)]
pub enum StartError {
    /// The process could not be started at all.
    Spawn(std::io::Error),
    /// It exited, or printed no `listening on` line within the time allowed; the stdout lines it
    /// printed are kept for the report.
    NotListening { stdout: Vec<String> },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Spawn(e) => write!(f, "could not start the backend: {e}"),
            StartError::NotListening { stdout } => write!(
                f,
                "the backend did not start listening; its output: {}",
                stdout.join("\n")
            ),
        }
    }
}

impl std::error::Error for StartError {}

/// Spawns `cmd` (a `backend serve ...` command) with stdout piped and waits up to `timeout` for
/// it to listen. On failure the process is killed.
pub fn start(mut cmd: Command, timeout: Duration) -> Result<Served, StartError> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(StartError::Spawn)?;
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(StartError::NotListening { stdout: Vec::new() });
    };
    let (tx, rx) = mpsc::channel();
    // Reads every line for as long as the process lives; the receiver stops listening once the
    // address is known, and the rest is drained and dropped.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => match line.strip_prefix(LISTENING) {
                Some(addr) => {
                    return Ok(Served {
                        child,
                        addr: addr.trim().to_string(),
                    })
                }
                None => seen.push(line),
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(StartError::NotListening { stdout: seen });
            }
        }
    }
}

/// The URL of database `name` on the server `admin` names (keeping its query: host, user).
pub fn database_url(admin: &str, name: &str) -> String {
    let (base, q) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let base = base.rsplit_once('/').map(|(b, _)| b).unwrap_or(base);
    match q {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_after_other_lines() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo migrating; echo 'listening on 127.0.0.1:4321'; exec sleep 5",
        ]);
        let served = start(cmd, Duration::from_secs(5)).expect("started");
        assert_eq!(served.addr, "127.0.0.1:4321");
        assert_eq!(served.url(), "http://127.0.0.1:4321");
    }

    #[test]
    fn a_process_that_exits_without_listening_is_an_error_with_its_output() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'bad config'; exit 2"]);
        match start(cmd, Duration::from_secs(5)) {
            Err(StartError::NotListening { stdout }) => assert_eq!(stdout, ["bad config"]),
            other => panic!("expected NotListening, got {other:?}"),
        }
    }

    #[test]
    fn a_silent_process_times_out() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exec sleep 5"]);
        assert!(start(cmd, Duration::from_millis(300)).is_err());
    }
}
