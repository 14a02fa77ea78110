//! A server seeded with known events, and the API's own answers to compare the page with.

use analytics_core::Analytics;
use analytics_core::model::{
    Browser, Country, Device, Event, EventId, EventType, ExperimentId, Page, TenantId, UserId, VariantKey,
};
use analytics_core::query::{Summary, SummaryRequest};
use analytics_http::server::bootstrap_tenant;
use analytics_http::{AppState, AuthMode, HttpConfig, router};
use chrono::{DateTime, Days, TimeDelta, Utc};

/// Serves `analytics` on a free loopback port; returns the base URL.
pub(crate) async fn serve(analytics: Analytics, config: HttpConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(AppState::new(analytics, config));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

pub(crate) const EXPERIMENT: &str = "exp_dash";

/// Events at known ages: `(days ago, how many)`. Today's are a few seconds old.
pub(crate) const AGES: [(u64, usize); 4] = [(0, 5), (3, 7), (20, 11), (60, 13)];

pub(crate) fn seeded_events(tenant: &TenantId, now: DateTime<Utc>) -> Vec<Event> {
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

pub(crate) async fn seeded_site(config: HttpConfig) -> (String, Analytics, TenantId) {
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

pub(crate) fn header_mode() -> HttpConfig {
    HttpConfig {
        auth: AuthMode::Header,
        default_tenant: Some(TenantId::parse("acme").unwrap()),
        ..HttpConfig::default()
    }
}

pub(crate) async fn api_summary(analytics: &Analytics, tenant: &TenantId, days_back: u64) -> Summary {
    let today = Utc::now().date_naive();
    let start = today.checked_sub_days(Days::new(days_back)).unwrap();
    let request = SummaryRequest::new(start.to_string(), today.to_string()).timezone("UTC");
    analytics.summary(tenant, &request).await.unwrap()
}
