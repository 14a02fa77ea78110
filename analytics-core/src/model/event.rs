//! Events: the input clients send ([`EventInput`]) and the validated record stores keep
//! ([`Event`]).

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::text::{
    Browser, Country, Device, EventId, EventType, ExperimentId, Page, SessionId, TenantId, UserId, VariantKey,
};
use crate::error::{Error, Result};

/// The largest accepted `properties` object, serialized as JSON.
pub const MAX_PROPERTIES_BYTES: usize = 8 * 1024;
/// How far in the future an event's timestamp may be (clock skew allowance).
pub const MAX_FUTURE_SKEW: TimeDelta = TimeDelta::minutes(5);
/// The earliest accepted event timestamp (1970-01-01T00:00:00Z).
pub const MIN_TIMESTAMP: DateTime<Utc> = DateTime::UNIX_EPOCH;

/// An event as a client sends it: every field optional and unvalidated, camelCase as in the
/// original APIs. [`Event::from_input`] validates it.
///
/// Compatibility: `metadata` is accepted as a synonym of `properties`, and
/// `properties.experimentId` / `properties.variant` (as some campaign clients send them) fill in
/// `experimentId` / `variant` when those are absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventInput {
    /// Idempotency key; generated when absent.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<EventId>))]
    pub id: Option<String>,
    /// Must match the tenant the event is ingested for, when given.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<TenantId>))]
    pub tenant_id: Option<String>,
    /// The user; anonymous events (no user) count in totals but not in unique users.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<UserId>))]
    pub user_id: Option<String>,
    /// Required: what happened.
    #[cfg_attr(feature = "openapi", schema(value_type = EventType))]
    pub event_type: Option<String>,
    /// Session id.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<SessionId>))]
    pub session_id: Option<String>,
    /// Page path or URL.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Page>))]
    pub page: Option<String>,
    /// Browser name.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Browser>))]
    pub browser: Option<String>,
    /// Device class.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Device>))]
    pub device: Option<String>,
    /// Country.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Country>))]
    pub country: Option<String>,
    /// RFC 3339 instant; defaults to now.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub timestamp: Option<String>,
    /// Free-form JSON object, at most [`MAX_PROPERTIES_BYTES`] serialized.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub properties: Option<Value>,
    /// Another name for `properties`, which older dashboard clients send.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub metadata: Option<Value>,
    /// The experiment this event belongs to.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<ExperimentId>))]
    pub experiment_id: Option<String>,
    /// The variant of that experiment the user saw.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<VariantKey>))]
    pub variant: Option<String>,
}

/// A validated event, as stores keep it. Timestamps are truncated to microseconds so every store
/// (PostgreSQL keeps microseconds) agrees on ordering and bucketing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Idempotency key, unique per tenant.
    pub id: EventId,
    /// Owner of the event.
    pub tenant_id: TenantId,
    /// The user, if known.
    pub user_id: Option<UserId>,
    /// What happened.
    pub event_type: EventType,
    /// Session id.
    pub session_id: Option<SessionId>,
    /// Page.
    pub page: Option<Page>,
    /// Browser.
    pub browser: Option<Browser>,
    /// Device class.
    pub device: Option<Device>,
    /// Country.
    pub country: Option<Country>,
    /// When it happened (microsecond precision).
    #[serde(with = "rfc3339_micros")]
    pub timestamp: DateTime<Utc>,
    /// Free-form properties (a JSON object).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub properties: Arc<Map<String, Value>>,
    /// Experiment the event belongs to.
    pub experiment_id: Option<ExperimentId>,
    /// Variant of that experiment.
    pub variant: Option<VariantKey>,
}

impl Event {
    /// A minimal valid event, for programmatic construction; fill other fields directly.
    pub fn new(tenant_id: TenantId, id: EventId, event_type: EventType, timestamp: DateTime<Utc>) -> Self {
        Self {
            id,
            tenant_id,
            user_id: None,
            event_type,
            session_id: None,
            page: None,
            browser: None,
            device: None,
            country: None,
            timestamp: truncate_to_micros(timestamp),
            properties: Arc::default(),
            experiment_id: None,
            variant: None,
        }
    }

    /// Validates a client's event for `tenant` at time `now`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first offending field; [`Error::Forbidden`] on a
    /// `tenantId` other than `tenant`.
    pub fn from_input(input: EventInput, tenant: &TenantId, now: DateTime<Utc>) -> Result<Self> {
        if let Some(claimed) = &input.tenant_id
            && claimed != tenant.as_str()
        {
            return Err(Error::forbidden(
                "tenantId",
                format!(
                    "events may only be sent for the authenticated tenant {:?}",
                    tenant.as_str()
                ),
            ));
        }
        let id = match input.id {
            Some(id) => EventId::parse(id)?,
            None => generate_event_id(now),
        };
        let event_type = EventType::parse(
            input
                .event_type
                .ok_or_else(|| Error::invalid("eventType", "is required"))?,
        )?;
        let timestamp = match input.timestamp {
            Some(raw) => parse_event_timestamp(&raw, now)?,
            None => truncate_to_micros(now),
        };
        let properties = merge_properties(input.properties, input.metadata)?;
        let experiment_id =
            from_input_or_property(input.experiment_id, &properties, "experimentId", ExperimentId::parse)?;
        let variant = from_input_or_property(input.variant, &properties, "variant", VariantKey::parse)?;
        if variant.is_some() && experiment_id.is_none() {
            return Err(Error::invalid("variant", "requires experimentId"));
        }
        Ok(Self {
            id,
            tenant_id: tenant.clone(),
            user_id: input.user_id.map(UserId::parse).transpose()?,
            event_type,
            session_id: input.session_id.map(SessionId::parse).transpose()?,
            page: input.page.map(Page::parse).transpose()?,
            browser: input.browser.map(Browser::parse).transpose()?,
            device: input.device.map(Device::parse).transpose()?,
            country: input.country.map(Country::parse).transpose()?,
            timestamp,
            properties: Arc::new(properties),
            experiment_id,
            variant,
        })
    }
}

/// A new time-ordered event id (UUIDv7) for `now`.
pub fn generate_event_id(now: DateTime<Utc>) -> EventId {
    let seconds = u64::try_from(now.timestamp()).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, seconds, now.timestamp_subsec_nanos());
    EventId::parse(uuid::Uuid::new_v7(ts).to_string()).expect("a UUID is a valid event id")
}

/// Drops sub-microsecond precision.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

fn parse_event_timestamp(raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let parsed = DateTime::parse_from_rfc3339(raw)
        .map_err(|e| Error::invalid("timestamp", format!("{raw:?} is not an RFC 3339 instant ({e})")))?
        .with_timezone(&Utc);
    if parsed < MIN_TIMESTAMP {
        return Err(Error::invalid("timestamp", "must not be before 1970-01-01"));
    }
    if parsed > now + MAX_FUTURE_SKEW {
        return Err(Error::invalid("timestamp", "is more than 5 minutes in the future"));
    }
    Ok(truncate_to_micros(parsed))
}

fn merge_properties(properties: Option<Value>, metadata: Option<Value>) -> Result<Map<String, Value>> {
    let mut merged = Map::new();
    for (field, value) in [("metadata", metadata), ("properties", properties)] {
        match value {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => merged.extend(map),
            Some(_) => return Err(Error::invalid(field, "must be a JSON object")),
        }
    }
    let size = serde_json::to_vec(&merged)
        .map_err(|e| Error::Internal(format!("serializing properties: {e}")))?
        .len();
    if size > MAX_PROPERTIES_BYTES {
        return Err(Error::invalid(
            "properties",
            format!("is {size} bytes as JSON; the limit is {MAX_PROPERTIES_BYTES}"),
        ));
    }
    Ok(merged)
}

/// The top-level value if given, else the same-named string property; both must agree.
fn from_input_or_property<T: PartialEq>(
    top_level: Option<String>,
    properties: &Map<String, Value>,
    name: &str,
    parse: fn(String) -> Result<T>,
) -> Result<Option<T>> {
    let from_property = match properties.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse(s.clone()).map_err(|e| e.in_field("properties."))?),
        Some(_) => {
            return Err(Error::invalid(format!("properties.{name}"), "must be a string"));
        }
    };
    match (top_level.map(parse).transpose()?, from_property) {
        (Some(top), Some(prop)) if top != prop => {
            Err(Error::invalid(name, format!("disagrees with properties.{name}")))
        }
        (Some(top), _) => Ok(Some(top)),
        (None, prop) => Ok(prop),
    }
}

/// Serde helper: RFC 3339 with microseconds and `Z`.
pub mod rfc3339_micros {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// Serializes as `2024-01-01T00:00:00.000000Z`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    /// Parses any RFC 3339 instant.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<DateTime<Utc>, D::Error> {
        let raw = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2024-06-01T12:00:00Z".parse().unwrap()
    }

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn input(value: Value) -> EventInput {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn validates_a_seed_000_event() {
        let event = Event::from_input(
            input(json!({
                "tenantId": "acme", "userId": "user-456", "eventType": "click",
                "sessionId": "s-1", "page": "/home", "browser": "Chrome", "device": "desktop",
                "country": "USA", "timestamp": "2024-05-31T10:30:00.1234567Z",
                "metadata": {"customField": "value"}
            })),
            &tenant(),
            now(),
        )
        .unwrap();
        assert_eq!(event.event_type.as_str(), "click");
        assert_eq!(event.timestamp.timestamp_subsec_nanos(), 123_456_000);
        assert_eq!(event.properties.get("customField"), Some(&json!("value")));
        assert!(event.id.as_str().len() == 36, "generated UUID id");
    }

    #[test]
    fn takes_experiment_from_seed_004_properties() {
        let event = Event::from_input(
            input(json!({"userId": "u", "eventType": "CONVERSION",
                "properties": {"experimentId": "exp_1", "variant": "A"}})),
            &tenant(),
            now(),
        )
        .unwrap();
        assert_eq!(event.experiment_id.unwrap().as_str(), "exp_1");
        assert_eq!(event.variant.unwrap().as_str(), "A");
        assert_eq!(event.timestamp, now());
    }

    #[test]
    fn rejects_bad_input_naming_the_field() {
        let cases = [
            (json!({}), "eventType"),
            (json!({"eventType": "a", "timestamp": "yesterday"}), "timestamp"),
            (
                json!({"eventType": "a", "timestamp": "2024-06-01T12:06:00Z"}),
                "timestamp",
            ),
            (
                json!({"eventType": "a", "timestamp": "1969-12-31T23:59:59Z"}),
                "timestamp",
            ),
            (json!({"eventType": "a", "properties": [1]}), "properties"),
            (
                json!({"eventType": "a", "properties": {"big": "x".repeat(9000)}}),
                "properties",
            ),
            (json!({"eventType": "a", "variant": "A"}), "variant"),
            (
                json!({"eventType": "a", "experimentId": "e1", "properties": {"experimentId": "e2"}}),
                "experimentId",
            ),
            (
                json!({"eventType": "a", "properties": {"variant": 3}}),
                "properties.variant",
            ),
            (json!({"eventType": "a", "page": ""}), "page"),
            (json!({"eventType": "a", "id": "has space"}), "id"),
        ];
        for (value, field) in cases {
            let err = Event::from_input(input(value.clone()), &tenant(), now()).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput { field: f, .. } if f == field),
                "{value} gave {err}"
            );
        }
    }

    #[test]
    fn another_tenant_is_forbidden() {
        let err =
            Event::from_input(input(json!({"eventType": "a", "tenantId": "other"})), &tenant(), now()).unwrap_err();
        assert!(
            matches!(&err, Error::Forbidden { field, .. } if field == "tenantId"),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_value::<EventInput>(json!({"eventType": "a", "colour": 1})).unwrap_err();
        assert!(err.to_string().contains("colour"));
    }

    #[test]
    fn future_skew_within_five_minutes_is_accepted() {
        let event = Event::from_input(
            input(json!({"eventType": "a", "timestamp": "2024-06-01T12:05:00Z"})),
            &tenant(),
            now(),
        );
        assert!(event.is_ok());
    }
}
