//! Query strings: one serde struct per route, used both to parse and to document the route
//! (`IntoParams`). Unknown and repeated parameters are refused with the parameter named, so a
//! misspelt `grupBy` is reported instead of silently ignored.

use analytics_core::query::SummaryRequest;
use analytics_core::{Comparison, EventLogRequest, SeriesPageRequest};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use utoipa::IntoParams;

use crate::error::ApiError;

/// A route's query string, parsed into `T` (a struct with `deny_unknown_fields`).
#[derive(Debug, Clone)]
pub(crate) struct Params<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query()).map(Params)
    }
}

/// Parses a query string into `T`, naming the parameter to blame.
///
/// # Errors
/// 400 naming the first unknown, repeated or malformed parameter.
pub(crate) fn parse<T: DeserializeOwned>(query: Option<&str>) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
    let deserializer = serde_urlencoded::Deserializer::new(pairs);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        let field = quoted_name(&message, "unknown field `")
            .or_else(|| quoted_name(&message, "duplicate field `"))
            .map_or(path, str::to_owned);
        // A parameter with no name (`?=x`) or an error about the query as a whole blames the
        // query string itself, so the error still names where to look.
        let field = if field.is_empty() || field == "." {
            "query".to_owned()
        } else {
            field
        };
        let message = match quoted_name(&message, "unknown field `") {
            Some("") => "a parameter has no name (`=value` or a stray `&=`)".to_owned(),
            Some(name) => format!("unknown parameter {name:?}; {}", expected(&message)),
            None if message.starts_with("duplicate field") => {
                format!("parameter {field:?} is given twice (by its name or by another name of it)")
            }
            None => format!("{field}: {message}"),
        };
        ApiError::bad_request(field, message)
    })
}

/// The name in serde's "unknown field `name`, expected …".
fn quoted_name<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    message.strip_prefix(prefix)?.split('`').next()
}

/// The accepted names of serde's "unknown field …, expected one of …".
fn expected(message: &str) -> String {
    match message.split_once(", expected ") {
        Some((_, names)) if names.starts_with("one of") || names.starts_with('`') => {
            format!("this route accepts {}", names.trim_start_matches("one of "))
        }
        _ => "this route takes no parameters".to_owned(),
    }
}

/// A route that takes no query parameters: any parameter is a 400 naming it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoParams {}

/// A boolean flag: `true`/`false`/`1`/`0`, or present with no value (true).
fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    match raw.as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("" | "true" | "1") => Ok(true),
        Some(other) => Err(serde::de::Error::custom(format!("{other:?} is not true or false"))),
    }
}

/// A whole number, with a message that names what was given.
fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    let raw = Option::<String>::deserialize(deserializer)?;
    raw.map(|raw| {
        raw.parse()
            .map_err(|_| serde::de::Error::custom(format!("{raw:?} is not a whole number")))
    })
    .transpose()
}

/// Declares a route's parameter struct: the summary's own parameters (one definition, so the
/// routes that take a summary's parameters agree on their names, parsing and documentation),
/// then the route's extra fields.
macro_rules! summary_params {
    ($(#[$meta:meta])* $name:ident { $($extra:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default, Deserialize, IntoParams)]
        #[into_params(parameter_in = Query)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub(crate) struct $name {
            /// `YYYY-MM-DD` (start of that day in `timezone`) or an RFC 3339 instant. Required.
            /// Also accepted as `from`.
            #[serde(alias = "from")]
            #[param(required = true, value_type = analytics_core::query::schema_types::DateBound)]
            pub(crate) start_date: Option<String>,
            /// `YYYY-MM-DD` (through the end of that day) or an RFC 3339 instant (exclusive).
            /// Required. Also accepted as `to`.
            #[serde(alias = "to")]
            #[param(required = true, value_type = analytics_core::query::schema_types::DateBound)]
            pub(crate) end_date: Option<String>,
            /// `hour`, `day` (default), `week` or `month`.
            #[param(value_type = Option<analytics_core::query::Granularity>)]
            pub(crate) group_by: Option<String>,
            /// IANA timezone of the buckets and dates (default `UTC`).
            #[param(value_type = Option<analytics_core::query::schema_types::TimezoneName>)]
            pub(crate) timezone: Option<String>,
            /// Only events of this type.
            #[param(value_type = Option<analytics_core::model::EventType>)]
            pub(crate) event_type: Option<String>,
            /// Only events of this user.
            #[param(value_type = Option<analytics_core::model::UserId>)]
            pub(crate) user_id: Option<String>,
            /// Only this experiment's events, with per-variant stats.
            #[param(value_type = Option<analytics_core::model::ExperimentId>)]
            pub(crate) experiment_id: Option<String>,
            /// Count unique users exactly (`true`, `1`, or present without a value).
            #[serde(default, deserialize_with = "flag")]
            #[param(value_type = Option<bool>)]
            pub(crate) exact: bool,
            $($extra)*
        }

        impl $name {
            /// The core summary request (`skipCache` false where the route has none).
            fn summary_request(&self, skip_cache: bool) -> SummaryRequest {
                SummaryRequest {
                    start_date: self.start_date.clone(),
                    end_date: self.end_date.clone(),
                    group_by: self.group_by.clone(),
                    timezone: self.timezone.clone(),
                    event_type: self.event_type.clone(),
                    user_id: self.user_id.clone(),
                    experiment_id: self.experiment_id.clone(),
                    exact: self.exact,
                    skip_cache,
                }
            }
        }
    };
}

summary_params! {
    /// The parameters of a summary.
    SummaryParams {
        /// Bypass the cache read (`true`, `1`, or present without a value).
        #[serde(default, deserialize_with = "flag")]
        #[param(value_type = Option<bool>)]
        pub(crate) skip_cache: bool,
        /// `previous`: also the previous period of equal length, and the change to it.
        #[param(value_type = Option<Comparison>)]
        pub(crate) compare: Option<Comparison>,
    }
}

impl SummaryParams {
    /// The core request.
    pub(crate) fn request(&self) -> SummaryRequest {
        self.summary_request(self.skip_cache)
    }
}

summary_params! {
    /// The parameters of a summary with its series in pages.
    PagedSummaryParams {
        /// Bypass the cache read.
        #[serde(default, deserialize_with = "flag")]
        #[param(value_type = Option<bool>)]
        pub(crate) skip_cache: bool,
        /// The `timestamp` of the page's first bucket (a `nextCursor`); absent for the first page.
        pub(crate) cursor: Option<String>,
        /// Buckets per page, 1–1000 (default 50).
        #[serde(default, deserialize_with = "number")]
        #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
        pub(crate) limit: Option<u32>,
    }
}

impl PagedSummaryParams {
    /// The core requests: the summary and the page.
    pub(crate) fn requests(&self) -> (SummaryRequest, SeriesPageRequest) {
        let page = SeriesPageRequest {
            cursor: self.cursor.clone(),
            limit: self.limit,
        };
        (self.summary_request(self.skip_cache), page)
    }
}

summary_params! {
    /// The parameters of the live stream: those of a summary, without `compare` and `skipCache`.
    StreamParams {}
}

impl StreamParams {
    /// The core request.
    pub(crate) fn request(&self) -> SummaryRequest {
        self.summary_request(false)
    }
}

/// Filters and paging of the event log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EventLogParams {
    /// `YYYY-MM-DD` (UTC) or an RFC 3339 instant: events at or after it.
    #[param(value_type = Option<analytics_core::query::schema_types::DateBound>)]
    pub(crate) start_date: Option<String>,
    /// `YYYY-MM-DD` (UTC, inclusive) or an RFC 3339 instant (exclusive).
    #[param(value_type = Option<analytics_core::query::schema_types::DateBound>)]
    pub(crate) end_date: Option<String>,
    /// Only this type.
    #[param(value_type = Option<analytics_core::model::EventType>)]
    pub(crate) event_type: Option<String>,
    /// Only this user.
    #[param(value_type = Option<analytics_core::model::UserId>)]
    pub(crate) user_id: Option<String>,
    /// The caller's own tenant; any other is 403.
    #[param(value_type = Option<analytics_core::model::TenantId>)]
    pub(crate) tenant_id: Option<String>,
    /// Page number from 1 (offset paging, with totals; the default).
    #[serde(default, deserialize_with = "number")]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 4_294_967_295_i64)]
    pub(crate) page: Option<u32>,
    /// Events per page, 1–1000 (default 50).
    #[serde(default, deserialize_with = "number")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub(crate) limit: Option<u32>,
    /// Keyset paging: empty for the first page, then the previous page's `nextCursor`.
    pub(crate) cursor: Option<String>,
}

impl From<EventLogParams> for EventLogRequest {
    fn from(p: EventLogParams) -> Self {
        Self {
            start_date: p.start_date,
            end_date: p.end_date,
            event_type: p.event_type,
            user_id: p.user_id,
            tenant_id: p.tenant_id,
            page: p.page,
            limit: p.limit,
            cursor: p.cursor,
        }
    }
}

/// Options of an experiment's results.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ResultsParams {
    /// Confidence level of intervals and significance, 0.5–0.9999 (default 0.95).
    #[param(minimum = 0.5, maximum = 0.9999)]
    pub(crate) confidence_level: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_repeated_and_aliased_parameters_are_named() {
        let unknown = parse::<SummaryParams>(Some("startDate=2024-01-01&grupBy=day")).unwrap_err();
        assert_eq!(unknown.field.as_deref(), Some("grupBy"));
        assert!(unknown.message.contains("groupBy"), "{}", unknown.message);
        let twice = parse::<PagedSummaryParams>(Some("limit=1&limit=2")).unwrap_err();
        assert_eq!(twice.field.as_deref(), Some("limit"));
        let both = parse::<SummaryParams>(Some("from=a&startDate=b")).unwrap_err();
        assert_eq!(both.field.as_deref(), Some("startDate"));
        let decoded = parse::<SummaryParams>(Some("userId=a%20b&exact&from=2024-01-01")).unwrap();
        assert_eq!(decoded.user_id.as_deref(), Some("a b"));
        assert_eq!(decoded.start_date.as_deref(), Some("2024-01-01"));
        assert!(decoded.exact);
        let nameless = parse::<SummaryParams>(Some("=2024-01-01&groupBy=day")).unwrap_err();
        assert_eq!(nameless.field.as_deref(), Some("query"));
        let none = parse::<NoParams>(Some("x=1")).unwrap_err();
        assert_eq!(none.field.as_deref(), Some("x"));
        assert!(parse::<NoParams>(None).is_ok());
    }

    #[test]
    fn numbers_flags_and_enums_are_checked() {
        let limit = parse::<PagedSummaryParams>(Some("limit=ten")).unwrap_err();
        assert_eq!(limit.field.as_deref(), Some("limit"));
        let skip = parse::<SummaryParams>(Some("skipCache=maybe")).unwrap_err();
        assert_eq!(skip.field.as_deref(), Some("skipCache"));
        let compare = parse::<SummaryParams>(Some("compare=next")).unwrap_err();
        assert_eq!(compare.field.as_deref(), Some("compare"));
        let ok = parse::<SummaryParams>(Some("compare=previous&skipCache=0")).unwrap();
        assert_eq!(ok.compare, Some(Comparison::Previous));
        assert!(!ok.skip_cache);
        let page = parse::<EventLogParams>(Some("page=99999999999")).unwrap_err();
        assert_eq!(page.field.as_deref(), Some("page"));
    }
}
