//! A `redis-server` of a test's own, for tests that kill and restart it (never the shared one).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A `redis-server` on a fixed loopback port, killed (SIGKILL) when dropped.
pub(crate) struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    /// Starts one on `port`, or `None` (skip) when redis-server is not installed and servers
    /// are not required.
    pub(crate) fn start(port: u16) -> Option<Self> {
        let spawned = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(_) if std::env::var("ANALYTICS_REQUIRE_SERVERS").as_deref() == Ok("1") => {
                panic!("redis-server is not installed but ANALYTICS_REQUIRE_SERVERS=1")
            }
            Err(_) => {
                eprintln!("skipping: install redis-server to run this test");
                return None;
            }
        };
        // Ready when it says so, not after a timer.
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains("Ready to accept connections"));
        assert!(ready, "redis-server did not start");
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Some(Self { child, port })
    }

    /// Its URL.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and waits for it to be gone.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free at the time of the call.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
