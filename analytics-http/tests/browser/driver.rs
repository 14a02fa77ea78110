//! Headless Chromium over chromedriver: the session, waits signalled by the page, console
//! errors and screenshots.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use analytics_core::testkit::process::ChildServer;
pub(crate) use analytics_core::testkit::process::free_port;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The browser's own limit on how long a page may take to show a value, generous for a noisy
/// machine: waits end as soon as the value shows.
pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// A chromedriver process, ended (by its PID) when dropped.
pub(crate) struct Driver {
    _process: ChildServer,
    url: String,
}

/// Starts chromedriver, or `None` (skip) when it is not installed and not required.
pub(crate) fn chromedriver(test: &str) -> Option<Driver> {
    let port = free_port();
    let mut command = Command::new("chromedriver");
    command
        .arg(format!("--port={port}"))
        // The page computes "today" in the browser's timezone; UTC keeps it equal to the test's.
        .env("TZ", "UTC")
        .stderr(Stdio::null());
    let process = ChildServer::start(test, command, "started successfully")?;
    Some(Driver {
        _process: process,
        url: format!("http://127.0.0.1:{port}"),
    })
}

pub(crate) async fn browser(driver: &Driver, profile: &tempdir::Profile) -> Client {
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
pub(crate) mod tempdir {
    pub(crate) struct Profile(std::path::PathBuf);

    impl Profile {
        pub(crate) fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!("analytics-browser-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("a profile directory");
            Self(path)
        }

        pub(crate) fn path(&self) -> &std::path::Path {
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
pub(crate) struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

pub(crate) async fn console_errors(client: &Client) -> Vec<String> {
    let log = client.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["level"] == "SEVERE")
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

pub(crate) fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("browser");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

pub(crate) async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).expect("the screenshot written");
}

pub(crate) async fn text(client: &Client, id: &str) -> String {
    client.find(Locator::Id(id)).await.unwrap().text().await.unwrap()
}

/// Resolves with the element's rendered text as soon as it differs from `seen` (at once when it
/// already does), or with the unchanged text after `within` ms: the browser signals the change
/// through a `MutationObserver`, so the test neither polls nor sleeps.
pub(crate) const NEXT_TEXT: &str = "
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
pub(crate) async fn wait_text(client: &Client, id: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
    wait_text_within(client, id, what, WAIT, ready).await
}

/// [`wait_text`] with its own deadline.
pub(crate) async fn wait_text_within(
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

pub(crate) fn number(text: &str) -> u64 {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

pub(crate) async fn click(client: &Client, locator: Locator<'_>) {
    client.find(locator).await.unwrap().click().await.unwrap();
}

pub(crate) async fn select(client: &Client, id: &str, value: &str) {
    client
        .find(Locator::Id(id))
        .await
        .unwrap()
        .select_by_value(value)
        .await
        .unwrap();
}

pub(crate) async fn set_input(client: &Client, id: &str, value: &str) {
    let input = client.find(Locator::Id(id)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

pub(crate) fn number_or_zero(text: &str) -> u64 {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}
