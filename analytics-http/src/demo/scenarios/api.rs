//! The scenarios' HTTP client: requests as a scenario tenant, seeding through the batch API,
//! the demo's fault switch, readiness figures, and a reader of the live stream's totals.

use std::time::{Duration, Instant};

use chrono::{Days, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::key_of;
use crate::demo::FaultMode;

pub(super) struct Api {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
}

/// A response, or the transport error in words (status 0).
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) retry_after: Option<u64>,
    pub(super) body: Value,
    pub(super) elapsed: Duration,
}

impl Reply {
    pub(super) fn metadata(&self, field: &str) -> &Value {
        &self.body["_metadata"][field]
    }
}

impl Api {
    pub(super) fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap_or_default(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder, tenant: &str) -> Reply {
        let started = Instant::now();
        let request = request
            .header("x-api-key", key_of(tenant))
            .header("x-tenant-id", tenant);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
                let body = response.json().await.unwrap_or(Value::Null);
                Reply {
                    status,
                    retry_after,
                    body,
                    elapsed: started.elapsed(),
                }
            }
            Err(error) => Reply {
                status: 0,
                retry_after: None,
                body: json!({ "error": { "message": error.to_string() } }),
                elapsed: started.elapsed(),
            },
        }
    }

    pub(super) async fn get(&self, tenant: &str, path_and_query: &str, priority: Option<u8>) -> Reply {
        let mut request = self.http.get(format!("{}{path_and_query}", self.base));
        if let Some(priority) = priority {
            request = request.header("x-priority", priority.to_string());
        }
        self.send(request, tenant).await
    }

    pub(super) async fn post(&self, tenant: &str, path: &str, body: &Value) -> Reply {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body), tenant)
            .await
    }

    pub(super) async fn set_faults(&self, mode: FaultMode) -> Result<(), String> {
        let response = self
            .http
            .post(format!("{}/api/demo/faults", self.base))
            .json(&mode)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "{} from /api/demo/faults: the server is not in demo mode",
                response.status()
            ))
        }
    }

    pub(super) async fn health(&self) -> Value {
        match self
            .http
            .get(format!("{}/api/analytics/health", self.base))
            .send()
            .await
        {
            Ok(response) => response.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }

    pub(super) async fn breaker_state(&self) -> String {
        self.health().await["metrics"]["circuitBreaker"]["state"]
            .as_str()
            .unwrap_or("UNKNOWN")
            .to_owned()
    }

    pub(super) async fn load_level(&self) -> String {
        self.health().await["metrics"]["load"]["level"]
            .as_str()
            .unwrap_or("UNKNOWN")
            .to_owned()
    }

    /// Ingests `count` events for `tenant`, spread over the last `days` days (0: the last
    /// minute); returns how many were accepted.
    pub(super) async fn seed(&self, tenant: &str, run: &str, count: usize, days: u64) -> Result<usize, String> {
        let now = Utc::now();
        let events: Vec<Value> = (0..count)
            .map(|i| {
                let back = if days == 0 {
                    Duration::from_millis((i as u64 * 997) % 60_000)
                } else {
                    Duration::from_secs((i as u64 * 7_919) % (days * 86_400))
                };
                let at = now - chrono::TimeDelta::from_std(back).unwrap_or_default();
                let event_type = ["page_view", "click", "add_to_cart", "CONVERSION"][i % 4];
                let device = ["desktop", "mobile", "tablet"][i % 3];
                let browser = ["Chrome", "Firefox", "Safari"][i % 3];
                let country = ["US", "DE", "JP", "BR"][i % 4];
                json!({
                    "id": format!("{run}-{tenant}-{i}"),
                    "userId": format!("user-{}", i % 97),
                    "eventType": event_type,
                    "page": format!("/page/{}", i % 23),
                    "device": device,
                    "browser": browser,
                    "country": country,
                    "timestamp": at.to_rfc3339_opts(SecondsFormat::Micros, true),
                })
            })
            .collect();
        let mut accepted = 0;
        for chunk in events.chunks(1_000) {
            let reply = self
                .post(tenant, "/api/events/batch", &json!({ "events": chunk }))
                .await;
            if reply.status != 200 {
                return Err(format!("seeding {tenant}: HTTP {} {}", reply.status, reply.body));
            }
            accepted += reply.body["accepted"].as_array().map_or(0, Vec::len);
        }
        Ok(accepted)
    }
}

/// A run id, so events of repeated runs against one server are new events.
pub(super) fn run_id() -> String {
    format!("hl{}", Utc::now().timestamp_micros())
}

/// `startDate=…&endDate=…` for the last `days` days (UTC), ending today.
pub(super) fn last_days(days: u64) -> String {
    let today = Utc::now().date_naive();
    let start = today
        .checked_sub_days(Days::new(days.saturating_sub(1)))
        .unwrap_or(today);
    format!("startDate={start}&endDate={today}")
}
