//! What clients send: [`SummaryRequest`] (strings, unvalidated) and the parsing of a range's
//! ends ([`parse_bound`]).

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{Granularity, time};
use crate::error::{Error, Result};

/// A summary request as a dashboard sends it: strings, unvalidated, with the field names dashboards send.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SummaryRequest {
    /// `YYYY-MM-DD` (start of that day in `timezone`) or an RFC 3339 instant (inclusive).
    #[cfg_attr(feature = "openapi", schema(value_type = super::schema_types::DateBound))]
    pub start_date: Option<String>,
    /// `YYYY-MM-DD` (inclusive: through the end of that day) or an RFC 3339 instant (exclusive).
    #[cfg_attr(feature = "openapi", schema(value_type = super::schema_types::DateBound))]
    pub end_date: Option<String>,
    /// `hour`, `day` (default), `week` or `month`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<super::Granularity>))]
    pub group_by: Option<String>,
    /// IANA timezone name; default `UTC`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<super::schema_types::TimezoneName>))]
    pub timezone: Option<String>,
    /// Only this event type.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::model::EventType>))]
    pub event_type: Option<String>,
    /// Only this user.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::model::UserId>))]
    pub user_id: Option<String>,
    /// Only this experiment, with per-variant results.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::model::ExperimentId>))]
    pub experiment_id: Option<String>,
    /// Count unique users exactly even where a store would estimate.
    #[serde(default)]
    pub exact: bool,
    /// Bypass the cache read (the fresh answer is still cached).
    #[serde(default)]
    pub skip_cache: bool,
}

impl SummaryRequest {
    /// A request for `[start_date, end_date]` with every option at its default.
    pub fn new(start_date: impl Into<String>, end_date: impl Into<String>) -> Self {
        Self {
            start_date: Some(start_date.into()),
            end_date: Some(end_date.into()),
            ..Self::default()
        }
    }

    /// Sets `groupBy`.
    pub fn group_by(mut self, granularity: Granularity) -> Self {
        self.group_by = Some(granularity.as_str().to_owned());
        self
    }

    /// Sets `timezone`.
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = Some(tz.into());
        self
    }

    /// Sets `experimentId`.
    pub fn experiment(mut self, id: impl Into<String>) -> Self {
        self.experiment_id = Some(id.into());
        self
    }
}

/// `YYYY-MM-DD` exactly, without chrono's format-string parser (the common case on the cached
/// path, where that parser showed in the profile); other spellings chrono accepts fall through
/// to it.
fn iso_date(raw: &str) -> Option<NaiveDate> {
    let b = raw.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range]
            .iter()
            .try_fold(0u32, |n, &d| d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0')))
    };
    NaiveDate::from_ymd_opt(i32::try_from(number(0..4)?).ok()?, number(5..7)?, number(8..10)?)
}

/// Parses one end of a date range as the API accepts it: `YYYY-MM-DD` (the start of that day in
/// `tz`; for an end, the start of the next day, so the day is included) or an RFC 3339 instant.
///
/// # Errors
/// [`Error::InvalidInput`] naming `field` when `raw` is absent or unparseable.
pub fn parse_bound(raw: Option<&str>, field: &str, tz: Tz, is_end: bool) -> Result<DateTime<Utc>> {
    let raw = raw.ok_or_else(|| Error::invalid(field, "is required"))?;
    if let Some(date) = iso_date(raw).or_else(|| NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok()) {
        let date = if is_end {
            date.succ_opt()
                .ok_or_else(|| Error::invalid(field, "is out of range"))?
        } else {
            date
        };
        return Ok(time::local_day_start(date, tz));
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::invalid(field, format!("{raw:?} is neither YYYY-MM-DD nor an RFC 3339 instant")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_fast_path_agrees_with_chrono() {
        for raw in [
            "2024-01-31",
            "2024-02-29",
            "2023-02-29",
            "1970-01-01",
            "9999-12-31",
            "2024-13-01",
            "2024-1-01",
            "20x4-01-01",
            "2024/01/01",
        ] {
            assert_eq!(
                iso_date(raw),
                NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                    .ok()
                    .filter(|_| raw.len() == 10),
                "{raw}"
            );
        }
    }
}
