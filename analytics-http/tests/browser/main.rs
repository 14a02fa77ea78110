//! The dashboard in a real browser: Debian's headless Chromium driven over WebDriver by
//! `fantoccini` through `chromedriver`, against an in-process server seeded with known events.
//!
//! Rust rather than a Node.js tool, so `cargo test` runs it like every other test and no
//! JavaScript toolchain is needed. Without `chromedriver` on the PATH the tests skip (one line),
//! unless `ANALYTICS_REQUIRE_SERVERS=1` (`scripts/test`, which installs Chromium), when they fail.
//!
//! A screenshot of each view is written under `target/browser/`, kept whether the run passes
//! or fails.

mod driver;
mod site;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use analytics_core::EventLogRequest;
use analytics_core::experiments::ResultsOptions;
use analytics_core::model::ExperimentId;
use analytics_http::HttpConfig;
use chrono::{Days, Utc};
use fantoccini::Locator;
use serde_json::{Value, json};

use driver::*;
use site::*;

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
        // One script reads every row of the rendered page at once, so no row can be
        // replaced between finding it and reading it.
        let ids = client
            .execute(
                "return Array.from(document.querySelectorAll('#log-rows tr[data-id]'), r => r.dataset.id);",
                vec![],
            )
            .await
            .unwrap();
        let ids: Vec<String> = serde_json::from_value(ids).unwrap();
        assert!(!ids.is_empty(), "page {page} shows events");
        seen.extend(ids);
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
