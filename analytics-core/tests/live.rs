//! Live summaries through the facade, as an embedding service subscribes to them: the current
//! summary first, a push per change of the tenant's data, none for other tenants, no resend of
//! what a subscriber has, one topic per query, and an end on close.

use std::sync::Arc;
use std::time::Duration;

use analytics_core::clock::ManualClock;
use analytics_core::model::{EventInput, TenantId};
use analytics_core::query::{Query, SummaryRequest};
use analytics_core::{Analytics, LiveConfig, LiveSummary, LiveUpdate, SummaryOptions};
use serde_json::Value;

fn facade() -> Analytics {
    Analytics::builder()
        .clock(Arc::new(ManualClock::new("2024-06-01T00:00:00Z".parse().unwrap())))
        .live(LiveConfig {
            coalesce: Duration::ZERO,
        })
        .build()
        .unwrap()
}

fn event(id: &str) -> EventInput {
    EventInput {
        id: Some(id.into()),
        user_id: Some("u1".into()),
        event_type: Some("click".into()),
        timestamp: Some("2024-05-10T10:00:00Z".into()),
        ..Default::default()
    }
}

/// The next summary's total and id; a hang guard, not a timing assertion.
async fn next_total(live: &mut LiveSummary) -> (u64, String) {
    let update = tokio::time::timeout(Duration::from_secs(30), live.next())
        .await
        .expect("no update within 30 s")
        .expect("the subscription ended");
    match update {
        LiveUpdate::Summary { id, json } => {
            let value: Value = serde_json::from_str(&json).unwrap();
            (value["totalEvents"].as_u64().unwrap(), id)
        }
        LiveUpdate::Failed(error) => panic!("{error}"),
    }
}

#[tokio::test]
async fn subscribers_get_the_summary_then_each_change_of_their_tenant_only() {
    let analytics = facade();
    let acme = TenantId::parse("acme").unwrap();
    let beta = TenantId::parse("beta").unwrap();
    let query = Query::parse(&acme, &SummaryRequest::new("2024-05-01", "2024-05-31")).unwrap();
    let options = SummaryOptions::default();
    let mut live = analytics.live_summary(query.clone(), options, None);
    let mut twin = analytics.live_summary(query.clone(), options, None);
    assert_eq!(analytics.live_topics(), 1, "one topic per query");
    let (zero, zero_id) = next_total(&mut live).await;
    assert_eq!(zero, 0);
    assert_eq!(next_total(&mut twin).await.0, 0);

    analytics.ingest(&beta, vec![event("b1")]).await.unwrap();
    analytics.ingest(&acme, vec![event("a1")]).await.unwrap();
    let (one, one_id) = next_total(&mut live).await;
    assert_eq!(one, 1, "beta's ingest was not acme's change");
    assert_ne!(one_id, zero_id);

    // A subscriber that already has the current summary is sent only the next one.
    let mut caught_up = analytics.live_summary(query.clone(), options, Some(one_id.clone()));
    analytics.ingest(&acme, vec![event("a2")]).await.unwrap();
    assert_eq!(next_total(&mut caught_up).await.0, 2);

    analytics.close_live();
    let ended = tokio::time::timeout(Duration::from_secs(30), async { while live.next().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the subscription did not end on close");
}
