//! A real PostgreSQL stopped under two server binaries (API-key and header mode) and started
//! again: cached ranges are still answered (stale, labelled) in both modes, uncached ones and
//! writes get 503 with `Retry-After`, and once PostgreSQL is back the breaker closes by itself
//! and nothing was lost or counted twice. The test runs its own throwaway cluster (never the
//! shared one other tests use) and stops only what it started.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::binary::Server;
use serde_json::{Value, json};

/// A throwaway PostgreSQL cluster, stopped and removed when dropped.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
}

/// Runs a PostgreSQL tool as the `postgres` user when this is root (they refuse root).
fn pg_tool(bin: &Path, tool: &str, args: &[&str]) -> bool {
    let tool = bin.join(tool);
    let status = if is_root() {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(&tool)
            .args(args)
            .output()
    } else {
        Command::new(&tool).args(args).output()
    };
    status.is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

impl Postgres {
    /// A cluster of its own for the test `name` (tests of one binary run at once).
    fn start(name: &str) -> Option<Self> {
        let Some(bin) = pg_bin() else {
            if std::env::var("ANALYTICS_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("PostgreSQL's initdb is not installed but ANALYTICS_REQUIRE_SERVERS=1");
            }
            eprintln!("skipping postgres_faults: install postgresql to run it");
            return None;
        };
        let data = std::env::temp_dir().join(format!("analytics-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        if is_root() {
            assert!(
                Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(&data)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let dir = data.to_str().unwrap().to_owned();
        assert!(
            pg_tool(
                &bin,
                "initdb",
                &["-D", &dir, "-U", "postgres", "-A", "trust", "--no-sync"]
            ),
            "initdb"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self { bin, data, port };
        pg.run();
        Some(pg)
    }

    /// Starts the server and waits until it accepts connections (`pg_ctl -w`).
    fn run(&self) {
        let dir = self.data.to_str().unwrap();
        let options = format!("-p {} -k {dir} -c listen_addresses=127.0.0.1 -c fsync=off", self.port);
        let log = format!("{dir}/server.log");
        assert!(
            pg_tool(
                &self.bin,
                "pg_ctl",
                &["-D", dir, "-l", &log, "-w", "-o", &options, "start"]
            ),
            "pg_ctl start"
        );
    }

    fn stop(&self) {
        let dir = self.data.to_str().unwrap();
        assert!(
            pg_tool(&self.bin, "pg_ctl", &["-D", dir, "-m", "immediate", "-w", "stop"]),
            "pg_ctl stop"
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let dir = self.data.to_str().unwrap_or_default().to_owned();
        pg_tool(&self.bin, "pg_ctl", &["-D", &dir, "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

struct Reply {
    status: u16,
    retry_after: bool,
    body: Value,
    took: Duration,
}

async fn call(request: reqwest::RequestBuilder) -> Reply {
    let started = Instant::now();
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let body = response.json().await.unwrap_or(Value::Null);
    Reply {
        status,
        retry_after,
        body,
        took: started.elapsed(),
    }
}

const KEY: &str = "key-faults-0001";
const JANUARY: &str = "startDate=2024-01-01&endDate=2024-01-31";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_again() {
    let Some(pg) = Postgres::start("stopped") else {
        return;
    };
    let store = pg.url();
    let common = ["--store", store.as_str(), "--breaker-open-wait", "1"];
    let keyed = Server::start(&[&common[..], &["--bootstrap-tenant", &format!("acme:{KEY}")]].concat());
    let header = Server::start(&[&common[..], &["--auth", "header", "--default-tenant", "acme"]].concat());
    let http = reqwest::Client::new();
    let get = |server: &Server, path: &str| {
        let request = http.get(server.url(path));
        if server.base == keyed.base {
            request.header("x-api-key", KEY)
        } else {
            request
        }
    };
    let ingest = |id: &str| {
        let event = json!({"id": id, "eventType": "click", "timestamp": "2024-01-10T10:00:00Z"});
        http.post(keyed.url("/api/events"))
            .header("x-api-key", KEY)
            .json(&event)
    };
    let posted = call(ingest("e1")).await;
    assert_eq!(posted.status, 201, "{}", posted.body);
    for server in [&keyed, &header] {
        let summary = format!("/api/analytics/summary?{JANUARY}");
        assert_eq!(call(get(server, &summary)).await.body["totalEvents"], 1);
    }

    pg.stop();
    for server in [&keyed, &header] {
        // The cached range is answered (stale once its store read fails), in both auth modes.
        let cached = call(get(server, &format!("/api/analytics/summary?{JANUARY}"))).await;
        assert_eq!(cached.status, 200, "{}", cached.body);
        assert_eq!(cached.body["totalEvents"], 1);
        // Uncached ranges: 503 with Retry-After; fast once the breaker is open.
        let mut refusals = Vec::new();
        for day in 1..=8 {
            let path = format!("/api/analytics/summary?startDate=2024-02-{day:02}&endDate=2024-02-28");
            let reply = call(get(server, &path)).await;
            assert_eq!(reply.status, 503, "{}", reply.body);
            assert!(reply.retry_after);
            refusals.push(reply.took);
        }
        eprintln!("PostgreSQL down ({}): uncached refusals {refusals:?}", server.base);
    }
    let refused = call(ingest("e2")).await;
    assert_eq!(
        refused.status, 503,
        "a write the store cannot take is refused: {}",
        refused.body
    );
    assert!(refused.retry_after);

    pg.run();
    // Each server says when its breaker has closed (trial calls after the 1 s open wait).
    for server in [&keyed, &header] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let path = format!("/api/analytics/summary?{JANUARY}&skipCache=true");
            if call(get(server, &path)).await.status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "{} never recovered", server.base);
            // Another process's breaker on its own clock: asked again shortly, until it answers.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let retried = call(ingest("e2")).await;
    assert_eq!(
        retried.status, 201,
        "the refused write, retried, is stored: {}",
        retried.body
    );
    let summary = format!("/api/analytics/summary?{JANUARY}&skipCache=true");
    assert_eq!(
        call(get(&header, &summary)).await.body["totalEvents"],
        2,
        "nothing lost, nothing twice"
    );
    keyed.terminate();
    header.terminate();
}

/// `kill -9` of the server during concurrent batch ingest with clients that retry the same ids
/// until acknowledged, then a new server on the same database: every event counted exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_ingest_loses_nothing_and_counts_nothing_twice() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let Some(pg) = Postgres::start("crash") else {
        return;
    };
    let store = pg.url();
    let args = [
        "--store",
        store.as_str(),
        "--auth",
        "header",
        "--default-tenant",
        "acme",
    ];
    let first = Server::start(&args);
    let base = Arc::new(std::sync::RwLock::new(first.base.clone()));
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let (progress, mut watch) = tokio::sync::watch::channel(0usize);
    let progress = Arc::new(progress);
    const CLIENTS: usize = 4;
    const BATCHES: usize = 15;
    const EVENTS: usize = 100;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (base, acknowledged, progress) = (base.clone(), acknowledged.clone(), progress.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                for batch in 0..BATCHES {
                    let events: Vec<Value> = (0..EVENTS)
                        .map(|i| {
                            json!({"id": format!("c{client}-b{batch}-{i}"), "eventType": "click",
                                   "timestamp": format!("2024-01-{:02}T10:00:00Z", 1 + (batch + i) % 28)})
                        })
                        .collect();
                    // Retried with the same ids until acknowledged, whichever server answers.
                    let deadline = Instant::now() + Duration::from_secs(60);
                    loop {
                        let url = format!("{}/api/events/batch", base.read().unwrap());
                        let sent = http.post(url).json(&json!({ "events": events })).send().await;
                        if sent.is_ok_and(|r| r.status().is_success()) {
                            let done = acknowledged.fetch_add(1, Ordering::SeqCst) + 1;
                            progress.send_replace(done);
                            break;
                        }
                        assert!(
                            Instant::now() < deadline,
                            "batch {batch} of client {client} never acknowledged"
                        );
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    // Crash the server once a few batches are in, mid-stream.
    watch.wait_for(|done| *done >= CLIENTS * 2).await.unwrap();
    first.kill();
    let second = Server::start(&args);
    *base.write().unwrap() = second.base.clone();
    for client in clients {
        client.await.unwrap();
    }
    let http = reqwest::Client::new();
    let summary = format!(
        "{}/api/analytics/summary?{JANUARY}&skipCache=true&exact=true",
        second.base
    );
    let body: Value = http.get(summary).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        body["totalEvents"],
        CLIENTS * BATCHES * EVENTS,
        "every acknowledged event once: {body}"
    );
    second.terminate();
}
