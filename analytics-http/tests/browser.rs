//! The dashboard in a real browser: Debian's headless Chromium driven over WebDriver by
//! `fantoccini` through `chromedriver`, against an in-process server seeded with known events.
//!
//! Rust rather than a Node.js tool, so `cargo test` runs it like every other test and no
//! JavaScript toolchain is needed. Without `chromedriver` on the PATH the tests skip (one line),
//! unless `ANALYTICS_REQUIRE_SERVERS=1` (`scripts/test`, which installs Chromium), when they fail.
//!
//! A screenshot of each view is written under `target/browser/`, kept whether the run passes
//! or fails.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use analytics_core::Analytics;
use analytics_core::EventLogRequest;
use analytics_core::experiments::ResultsOptions;
use analytics_core::model::{
    Browser, Country, Device, Event, EventId, EventType, ExperimentId, Page, TenantId, UserId, VariantKey,
};
use analytics_core::query::{Summary, SummaryRequest};
use analytics_http::server::bootstrap_tenant;
use analytics_http::{AppState, AuthMode, HttpConfig, router};
use chrono::{DateTime, Days, TimeDelta, Utc};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The browser's own limit on how long a page may take to show a value, generous for a noisy
/// machine: waits end as soon as the value shows.
const WAIT: Duration = Duration::from_secs(15);

/// A chromedriver process, ended (by its PID) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts chromedriver, or `None` (skip) when it is not installed and not required.
fn chromedriver(test: &str) -> Option<Driver> {
    let port = free_port();
    let spawned = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        // The page computes "today" in the browser's timezone; UTC keeps it equal to the test's.
        .env("TZ", "UTC")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(_) if std::env::var("ANALYTICS_REQUIRE_SERVERS").as_deref() == Ok("1") => {
            panic!("{test}: chromedriver is not installed but ANALYTICS_REQUIRE_SERVERS=1")
        }
        Err(_) => {
            eprintln!("skipping {test}: install chromium and chromium-driver to run it");
            return None;
        }
    };
    // Ready when it says so.
    let stdout = child.stdout.take().expect("piped stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains("started successfully"));
    assert!(ready, "chromedriver did not start");
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

async fn browser(driver: &Driver, profile: &tempdir::Profile) -> Client {
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--lang=en-US", "--window-size=1280,1400",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let Value::Object(capabilities) = capabilities else {
        unreachable!()
    };
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// A fresh browser profile directory, removed when dropped.
mod tempdir {
    pub(super) struct Profile(std::path::PathBuf);

    impl Profile {
        pub(super) fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!("analytics-browser-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("a profile directory");
            Self(path)
        }

        pub(super) fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Profile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The browser console's messages (chromedriver's log endpoint).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

async fn console_errors(client: &Client) -> Vec<String> {
    let log = client.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["level"] == "SEVERE")
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("browser");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("the screenshot written");
}

/// Serves `analytics` on a free loopback port; returns the base URL.
async fn serve(analytics: Analytics, config: HttpConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(AppState::new(analytics, config));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn text(client: &Client, id: &str) -> String {
    client.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

/// Resolves with the element's rendered text as soon as it differs from `seen` (at once when it
/// already does), or with the unchanged text after `within` ms: the browser signals the change
/// through a `MutationObserver`, so the test neither polls nor sleeps.
const NEXT_TEXT: &str = "
    const [id, seen, within, done] = arguments;
    const el = document.getElementById(id);
    const text = () => el.innerText;
    if (text() !== seen) return done(text());
    const observer = new MutationObserver(() => {
        if (text() !== seen) { observer.disconnect(); clearTimeout(timer); done(text()); }
    });
    const timer = setTimeout(() => { observer.disconnect(); done(text()); }, within);
    observer.observe(el, { childList: true, subtree: true, characterData: true, attributes: true });
";

/// Waits until the element's text satisfies `ready`; returns it.
async fn wait_text(client: &Client, id: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
    wait_text_within(client, id, what, WAIT, ready).await
}

/// [`wait_text`] with its own deadline.
async fn wait_text_within(
    client: &Client,
    id: &str,
    what: &str,
    within: Duration,
    ready: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    let mut seen = Value::Null;
    loop {
        // WebDriver's default script timeout is 30 s: each wait stays under it.
        let left = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(20));
        let args = vec![json!(id), seen.clone(), json!(left.as_millis() as u64)];
        let value = client.execute_async(NEXT_TEXT, args).await.unwrap();
        let text = value.as_str().unwrap_or_default().to_owned();
        if ready(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "#{id} never showed {what}; it shows {text:?}"
        );
        seen = value;
    }
}

fn number(text: &str) -> u64 {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

async fn click(client: &Client, locator: Locator<'_>) {
    client.find(locator).await.unwrap().click().await.unwrap();
}

async fn select(client: &Client, id: &str, value: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap();
}

async fn set_input(client: &Client, id: &str, value: &str) {
    let input = client.find(Locator::Id(id)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

// ---- Data -----------------------------------------------------------------------------------

const EXPERIMENT: &str = "exp_dash";

/// Events at known ages: `(days ago, how many)`. Today's are a few seconds old.
const AGES: [(u64, usize); 4] = [(0, 5), (3, 7), (20, 11), (60, 13)];

fn seeded_events(tenant: &TenantId, now: DateTime<Utc>) -> Vec<Event> {
    let midnight = now.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let mut events = Vec::new();
    for (days, count) in AGES {
        for i in 0..count {
            let at = if days == 0 {
                (now - TimeDelta::seconds(i as i64 + 1)).max(midnight)
            } else {
                now.checked_sub_days(Days::new(days)).unwrap()
            };
            let id = EventId::parse(format!("seed-{days}-{i}")).unwrap();
            let event_type = if i % 4 == 3 {
                "CONVERSION"
            } else {
                ["page_view", "click"][i % 2]
            };
            let mut event = Event::new(tenant.clone(), id, EventType::parse(event_type).unwrap(), at);
            event.user_id = (i % 5 != 0).then(|| UserId::parse(format!("user-{}", i % 6)).unwrap());
            event.page = Some(Page::parse(["/", "/pricing", "/docs"][i % 3]).unwrap());
            event.device = Some(Device::parse(["desktop", "mobile"][i % 2]).unwrap());
            event.browser = Some(Browser::parse(["Chrome", "Firefox", "Safari"][i % 3]).unwrap());
            event.country = Some(Country::parse(["US", "DE"][i % 2]).unwrap());
            event.experiment_id = Some(ExperimentId::parse(EXPERIMENT).unwrap());
            event.variant = Some(VariantKey::parse(["control", "treatment"][i % 2]).unwrap());
            events.push(event);
        }
    }
    events
}

async fn seeded_site(config: HttpConfig) -> (String, Analytics, TenantId) {
    let analytics = Analytics::in_memory();
    let tenant = TenantId::parse("acme").unwrap();
    analytics
        .ingest_events(&tenant, seeded_events(&tenant, Utc::now()))
        .await
        .unwrap();
    bootstrap_tenant(&analytics, "acme:key-acme-browser").await.unwrap();
    let base = serve(analytics.clone(), config).await;
    (base, analytics, tenant)
}

fn header_mode() -> HttpConfig {
    HttpConfig {
        auth: AuthMode::Header,
        default_tenant: Some(TenantId::parse("acme").unwrap()),
        ..HttpConfig::default()
    }
}

async fn api_summary(analytics: &Analytics, tenant: &TenantId, days_back: u64) -> Summary {
    let today = Utc::now().date_naive();
    let start = today.checked_sub_days(Days::new(days_back)).unwrap();
    let request = SummaryRequest::new(start.to_string(), today.to_string()).timezone("UTC");
    analytics.summary(tenant, &request).await.unwrap()
}

// ---- Tests ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_what_the_api_answers() {
    let Some(driver) = chromedriver("the_dashboard_shows_what_the_api_answers") else {
        return;
    };
    let (base, analytics, tenant) = seeded_site(header_mode()).await;
    let profile = tempdir::Profile::new("views");
    let client = browser(&driver, &profile).await;

    // Overview: with a default tenant the page needs no key and opens on the overview.
    client.goto(&format!("{base}/")).await.unwrap();
    let week = api_summary(&analytics, &tenant, 6).await;
    let shown = wait_text(&client, "total-events", "a number", |t| t != "–").await;
    assert_eq!(number(&shown), week.body.total_events, "7-day total");
    assert_eq!(number(&text(&client, "unique-users").await), week.body.unique_users);
    let budget = client
        .execute(
            "const nav = performance.getEntriesByType('navigation')[0];
             const files = performance.getEntriesByType('resource').filter(r => r.name.includes('/dashboard/'));
             const paint = performance.getEntriesByName('first-contentful-paint')[0];
             const rendered = performance.getEntriesByName('overview-rendered')[0];
             return { bytes: nav.transferSize + files.reduce((n, r) => n + r.transferSize, 0),
                      firstPaintMs: paint ? paint.startTime : null, numbersMs: rendered ? rendered.startTime : null };",
            vec![],
        )
        .await
        .unwrap();
    eprintln!("cold load: {budget}");
    let bytes = budget["bytes"].as_u64().expect("transfer sizes");
    assert!(bytes > 0 && bytes <= 200 * 1024, "cold load transferred {bytes} bytes");
    let by_type = text(&client, "by-type").await;
    for entry in &week.body.events_by_type {
        assert!(
            by_type.contains(&entry.event_type),
            "{by_type:?} lacks {}",
            entry.event_type
        );
    }
    let browsers = text(&client, "browsers").await;
    assert!(
        browsers.contains("Chrome") && browsers.contains("Firefox"),
        "{browsers:?}"
    );
    let badges = text(&client, "badges").await;
    assert!(badges.contains("day · UTC"), "{badges:?}");
    screenshot(&client, "overview").await;

    // A preset changes the range: 30 days take in the events of 20 days ago.
    let month = api_summary(&analytics, &tenant, 29).await;
    assert_ne!(
        month.body.total_events, week.body.total_events,
        "the data distinguishes the presets"
    );
    select(&client, "preset", "30d").await;
    let want = month.body.total_events.to_string();
    wait_text(&client, "total-events", "the 30-day total", |t| {
        number_or_zero(t).to_string() == want
    })
    .await;
    let start = client
        .find(Locator::Id("start-date"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap();
    let expected_start = Utc::now().date_naive().checked_sub_days(Days::new(29)).unwrap();
    assert_eq!(start.as_deref(), Some(expected_start.to_string().as_str()));

    // Live: the stream opens and shows today's numbers; events sent from the generator view
    // arrive without a reload (a page variable set before survives).
    client.goto(&format!("{base}/#live")).await.unwrap();
    client
        .execute("window.notReloaded = true; return null;", vec![])
        .await
        .unwrap();
    wait_text(&client, "live-state", "open", |t| t == "open").await;
    let before = number(&wait_text(&client, "live-total", "a number", |t| t != "–").await);
    let today = api_summary(&analytics, &tenant, 0).await;
    assert_eq!(before, today.body.total_events);
    let updates_before = number(&text(&client, "live-updates").await);
    screenshot(&client, "live").await;

    client.goto(&format!("{base}/#generator")).await.unwrap();
    set_input(&client, "gen-count", "3").await;
    set_input(&client, "gen-days", "0").await;
    click(&client, Locator::Id("gen-send")).await;
    wait_text(&client, "gen-status", "done", |t| t.contains("done")).await;
    let sent_at = Instant::now();
    assert!(text(&client, "gen-status").await.starts_with("3 accepted"));
    screenshot(&client, "generator").await;
    client.goto(&format!("{base}/#live")).await.unwrap();
    let want = (before + 3).to_string();
    wait_text(&client, "live-total", "the 3 new events", |t| {
        number_or_zero(t).to_string() == want
    })
    .await;
    eprintln!("generator → live view: {} ms", sent_at.elapsed().as_millis());
    assert!(number(&text(&client, "live-updates").await) > updates_before);
    let same_page = client
        .execute("return window.notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(same_page, json!(true), "the live view reloaded");

    // Event log: 25 per page, "Older" until the oldest; every event exactly once.
    client.goto(&format!("{base}/#events")).await.unwrap();
    select(&client, "log-limit", "25").await;
    click(&client, Locator::Css("#events-form button")).await;
    let all = analytics
        .event_log(
            &tenant,
            &EventLogRequest {
                limit: Some(1000),
                ..EventLogRequest::default()
            },
        )
        .await
        .unwrap();
    let want: HashSet<String> = all.events.iter().map(|e| e.id.to_string()).collect();
    let mut seen = Vec::new();
    for page in 1.. {
        wait_text(&client, "log-position", "the page", |t| {
            t.starts_with(&format!("page {page} "))
        })
        .await;
        for row in client.find_all(Locator::Css("#log-rows tr[data-id]")).await.unwrap() {
            seen.push(row.attr("data-id").await.unwrap().unwrap());
        }
        if page == 1 {
            click(&client, Locator::Css("#log-rows tr[data-id]")).await;
            let detail = text(&client, "detail-json").await;
            assert!(detail.contains("\"eventType\""), "{detail:?}");
            screenshot(&client, "events").await;
        }
        let next = client.find(Locator::Id("log-next")).await.unwrap();
        if next.prop("disabled").await.unwrap().as_deref() == Some("true") {
            break;
        }
        next.click().await.unwrap();
    }
    assert!(seen.len() > 25, "more than one page");
    assert_eq!(seen.len(), want.len(), "every event once");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), want);

    // Experiments: created from the form; the results render per variant with a verdict.
    client.goto(&format!("{base}/#experiments")).await.unwrap();
    set_input(&client, "exp-id", EXPERIMENT).await;
    set_input(&client, "exp-name", "Dashboard test").await;
    click(&client, Locator::Css("#exp-form button")).await;
    wait_text(&client, "exp-result-rows", "both variants", |t| {
        t.contains("control") && t.contains("treatment")
    })
    .await;
    let results = analytics
        .experiment_results(
            &tenant,
            &ExperimentId::parse(EXPERIMENT).unwrap(),
            ResultsOptions::default(),
        )
        .await
        .unwrap();
    let rows = text(&client, "exp-result-rows").await;
    for variant in &results.variants {
        assert!(rows.contains(&variant.users.to_string()), "{rows:?} lacks {variant:?}");
    }
    assert!(text(&client, "exp-rows").await.contains(EXPERIMENT));
    assert!(!text(&client, "exp-srm").await.is_empty());
    assert!(!text(&client, "exp-verdicts").await.is_empty());
    screenshot(&client, "experiments").await;

    // Operations: the breaker, load and cache figures of the server, and the last call's limits.
    client.goto(&format!("{base}/#operations")).await.unwrap();
    wait_text(&client, "ops-breaker", "the breaker", |t| t.contains("CLOSED")).await;
    wait_text(&client, "ops-cache", "the hit rate", |t| t.contains('%')).await;
    screenshot(&client, "operations").await;
    client.goto(&format!("{base}/#high-load")).await.unwrap();
    screenshot(&client, "high-load").await;

    // Phone width: the page still lays out (screenshot for a look).
    client.set_window_size(390, 844).await.unwrap();
    client.goto(&format!("{base}/#overview")).await.unwrap();
    wait_text(&client, "total-events", "a number", |t| t != "–").await;
    screenshot(&client, "overview-phone").await;

    let errors = console_errors(&client).await;
    assert!(errors.is_empty(), "browser console errors: {errors:#?}");
    client.close().await.unwrap();
}

fn number_or_zero(text: &str) -> u64 {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_is_asked_once_and_never_put_in_a_url() {
    let Some(driver) = chromedriver("an_api_key_is_asked_once_and_never_put_in_a_url") else {
        return;
    };
    let (base, analytics, tenant) = seeded_site(HttpConfig::default()).await;
    let profile = tempdir::Profile::new("sign-in");
    let client = browser(&driver, &profile).await;

    client.goto(&format!("{base}/dashboard")).await.unwrap();
    let form = client.wait().for_element(Locator::Id("api-key")).await.unwrap();
    assert!(form.is_displayed().await.unwrap(), "the sign-in form shows");
    form.send_keys("not-a-key").await.unwrap();
    click(&client, Locator::Css("#sign-in-form button")).await;
    wait_text(&client, "sign-in-error", "the refusal", |t| t.contains("not valid")).await;
    screenshot(&client, "sign-in").await;

    set_input(&client, "api-key", "key-acme-browser").await;
    click(&client, Locator::Css("#sign-in-form button")).await;
    let week = api_summary(&analytics, &tenant, 6).await;
    let shown = wait_text(&client, "total-events", "a number", |t| t != "–").await;
    assert_eq!(number(&shown), week.body.total_events);
    let kept = client
        .execute("return sessionStorage.getItem('analytics.apiKey');", vec![])
        .await
        .unwrap();
    assert_eq!(kept, json!("key-acme-browser"));
    let urls = client
        .execute(
            "return [location.href, ...performance.getEntriesByType('resource').map(r => r.name)];",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        !urls.to_string().contains("key-acme-browser"),
        "a URL carried the key: {urls}"
    );

    // A reload keeps the session; the live stream authenticates with the header too.
    client.goto(&format!("{base}/dashboard#live")).await.unwrap();
    wait_text(&client, "live-state", "open", |t| t == "open").await;
    click(&client, Locator::Id("sign-out")).await;
    let cleared = client
        .execute("return sessionStorage.getItem('analytics.apiKey');", vec![])
        .await
        .unwrap();
    assert_eq!(cleared, Value::Null);
    // The only console errors are the refused calls this test made on purpose.
    let errors: Vec<String> = console_errors(&client)
        .await
        .into_iter()
        .filter(|e| !e.contains("status of 401"))
        .collect();
    assert!(errors.is_empty(), "browser console errors: {errors:#?}");
    client.close().await.unwrap();
}

/// The High load view of a demo server runs the five scenarios and shows each one's result.
#[cfg(feature = "demo")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_high_load_view_runs_the_scenarios_on_a_demo_server() {
    use analytics_http::demo::{self, DemoServer, SwitchedOff};

    let Some(driver) = chromedriver("the_high_load_view_runs_the_scenarios_on_a_demo_server") else {
        return;
    };
    let (analytics, faults) = demo::analytics(SwitchedOff::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = DemoServer::serve(listener, analytics, faults, header_mode())
        .await
        .unwrap();
    let profile = tempdir::Profile::new("high-load");
    let client = browser(&driver, &profile).await;

    client.goto(&format!("{}/#high-load", server.base_url)).await.unwrap();
    click(&client, Locator::Id("hl-run")).await;
    let state = wait_text_within(
        &client,
        "hl-state",
        "the scenarios' outcome",
        Duration::from_secs(90),
        |t| !t.is_empty() && !t.contains("running"),
    )
    .await;
    screenshot(&client, "high-load-run").await;
    let rows = text(&client, "hl-rows").await;
    assert_eq!(
        state,
        "all scenarios passed",
        "{rows}\n{}",
        text(&client, "hl-log").await
    );
    for name in [
        "traffic spike",
        "circuit breaker",
        "cache performance",
        "graceful degradation",
        "integration",
    ] {
        assert!(rows.contains(name), "{rows:?} lacks {name}");
    }
    assert_eq!(rows.matches("pass").count(), 5, "{rows:?}");
    // While the scenarios fail the store, readiness truthfully answers 503, which Chromium logs.
    let errors: Vec<String> = console_errors(&client)
        .await
        .into_iter()
        .filter(|e| !(e.contains("/api/analytics/health") && e.contains("status of 503")))
        .collect();
    assert!(errors.is_empty(), "browser console errors: {errors:#?}");
    client.close().await.unwrap();
}
