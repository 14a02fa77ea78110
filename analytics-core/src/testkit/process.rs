//! Helper programs a test runs itself (a `redis-server` it kills, chromedriver): started, ready
//! when their output says so (not after a timer), killed when dropped. A test skips when the
//! program is not installed, unless `ANALYTICS_REQUIRE_SERVERS=1` (the test script) makes that a
//! failure.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running helper program, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
}

impl ChildServer {
    /// Starts `command` with its standard output piped and waits for a line containing
    /// `ready`; keeps draining the output afterwards so the program never blocks on it.
    /// `None` (skip) when the program cannot be started and servers are not required.
    ///
    /// # Panics
    /// When servers are required and the program is missing, or when it exits before `ready`.
    pub fn start(test: &str, mut command: Command, ready: &str) -> Option<Self> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = match command.stdout(Stdio::piped()).spawn() {
            Ok(child) => child,
            Err(_) if std::env::var("ANALYTICS_REQUIRE_SERVERS").as_deref() == Ok("1") => {
                panic!("{test}: {program} is not installed but ANALYTICS_REQUIRE_SERVERS=1")
            }
            Err(_) => {
                eprintln!("skipping {test}: install {program} to run it");
                return None;
            }
        };
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let started = lines.by_ref().map_while(Result::ok).any(|line| line.contains(ready));
        assert!(started, "{program} exited before saying {ready:?}");
        std::thread::spawn(move || lines.for_each(drop));
        Some(Self { child })
    }

    /// Kills it (SIGKILL, as a crash) and waits for it to be gone.
    pub fn kill(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `redis-server` of the test's own on `port` (loopback, no persistence), for tests that kill
/// and restart it: never the shared server other tests use.
pub fn redis_server(test: &str, port: u16) -> Option<ChildServer> {
    let mut command = Command::new("redis-server");
    command.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    ChildServer::start(test, command, "Ready to accept connections")
}

/// A loopback port free at the time of the call.
///
/// # Panics
/// When the system has none.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
