//! Queries: what a dashboard asks ([`SummaryRequest`]), its validated form ([`Query`]), the plan
//! a store executes ([`QueryPlan`]), and the [`Aggregates`] it answers with.

pub mod aggregates;
pub mod plan;
mod request;
#[cfg(feature = "openapi")]
pub mod schema_types;
pub mod summary;
pub mod time;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use aggregates::{Aggregates, VariantCounts, rank_breakdown, rank_counts};
pub use plan::{BucketPlan, HourSpan, PlanSource, QueryPlan, SpanPlan};
pub use request::{SummaryRequest, parse_bound};
pub use summary::{
    BrowserShare, CountryShare, DeviceShare, EventTypeCount, LoadLevel, PageViews, Summary, SummaryBody,
    SummaryMetadata, TimePoint, VariantStats,
};

use crate::error::{Error, Result};
use crate::model::event::{MIN_TIMESTAMP, truncate_to_micros};
use crate::model::{Event, EventType, ExperimentId, TenantId, UserId};

/// The most buckets a time series may have. An hourly series over a year (8,784 buckets) fits;
/// larger requests get an error naming `groupBy` rather than an unbounded response.
pub const MAX_BUCKETS: usize = 10_000;
/// How many pages `topPages` lists.
pub const TOP_PAGES: usize = 10;

/// The width of a time-series bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    /// Local clock hours.
    Hour,
    /// Local calendar days.
    Day,
    /// ISO weeks, starting Monday.
    Week,
    /// Calendar months.
    Month,
}

impl Granularity {
    /// All granularities, finest first.
    pub const ALL: [Granularity; 4] = [Self::Hour, Self::Day, Self::Week, Self::Month];

    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// The next coarser granularity, if any (used by degradation under load).
    pub fn coarser(self) -> Option<Self> {
        match self {
            Self::Hour => Some(Self::Day),
            Self::Day => Some(Self::Week),
            Self::Week => Some(Self::Month),
            Self::Month => None,
        }
    }
}

impl FromStr for Granularity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| Error::invalid("groupBy", format!("{s:?} is not one of hour, day, week, month")))
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-empty half-open interval `[start, end)` of instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimeRange {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TimeRange {
    /// `[start, end)`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `endDate` unless `start < end`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self> {
        if start >= end {
            return Err(Error::invalid("endDate", "must be after startDate"));
        }
        Ok(Self { start, end })
    }

    /// Inclusive start.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// Exclusive end.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }

    /// Whether `t` lies in the range.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    /// The overlap with `[start, end)`, if not empty.
    pub fn clip(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Self> {
        // Checked here rather than through `new`, whose error (built and dropped for every
        // empty edge of every bucket) was a visible share of planning 90 days by hour.
        let (start, end) = (self.start.max(start), self.end.min(end));
        (start < end).then_some(Self { start, end })
    }
}

/// Optional restrictions on which events a query counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Filters {
    /// Only events of this type.
    pub event_type: Option<EventType>,
    /// Only events of this user.
    pub user_id: Option<UserId>,
    /// Only events of this experiment; adds per-variant results.
    pub experiment_id: Option<ExperimentId>,
}

impl Filters {
    /// Whether any filter is set.
    pub fn is_empty(&self) -> bool {
        self.event_type.is_none() && self.user_id.is_none() && self.experiment_id.is_none()
    }

    /// Whether `event` passes every filter. Part of the metric definitions: stores filtering
    /// raw events use exactly this.
    pub fn matches(&self, event: &Event) -> bool {
        self.event_type.as_ref().is_none_or(|t| *t == event.event_type)
            && self.user_id.as_ref().is_none_or(|u| event.user_id.as_ref() == Some(u))
            && self
                .experiment_id
                .as_ref()
                .is_none_or(|x| event.experiment_id.as_ref() == Some(x))
    }
}

/// A validated, normalized summary query. Construct with [`Query::parse`] or [`Query::new`];
/// every `Query` that exists is valid.
#[derive(Debug, Clone)]
pub struct Query {
    tenant: TenantId,
    range: TimeRange,
    granularity: Granularity,
    timezone: Tz,
    filters: Filters,
    conversion_event_type: EventType,
    exact_unique_users: bool,
    breakdowns: bool,
    /// Computed on first use: a cached answer never needs them, and computing them in the
    /// timezone is a good part of validating a request.
    bucket_starts: OnceLock<Arc<[DateTime<Utc>]>>,
    /// The cache key, computed on first use and kept by clones (a server that reuses a parsed
    /// query skips hashing its canonical text); reset by every `with_*` that changes the query.
    cache_key: OnceLock<crate::cache::CacheKey>,
    /// The cache tags of the range (see [`TtlPolicy::query_tags`](crate::cache::TtlPolicy::query_tags)),
    /// made on first use and kept by clones: a cached answer is looked up under them on every
    /// request, and making them (formatting dates) showed in that path's profile. The range
    /// never changes after construction, so they are never reset.
    calendar_tags: OnceLock<Arc<[crate::cache::Tag]>>,
}

/// Equal when every field but the derived bucket starts is equal (those follow from the rest).
impl PartialEq for Query {
    fn eq(&self, other: &Self) -> bool {
        self.tenant == other.tenant
            && self.range == other.range
            && self.granularity == other.granularity
            && self.timezone == other.timezone
            && self.filters == other.filters
            && self.conversion_event_type == other.conversion_event_type
            && self.exact_unique_users == other.exact_unique_users
            && self.breakdowns == other.breakdowns
    }
}

impl Query {
    /// Validates `request` for `tenant`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first bad field (`startDate`, `endDate`, `groupBy`,
    /// `timezone`, `eventType`, `userId`, `experimentId`).
    pub fn parse(tenant: &TenantId, request: &SummaryRequest) -> Result<Self> {
        let timezone: Tz = match &request.timezone {
            None => Tz::UTC,
            Some(name) => name
                .parse()
                .map_err(|_| Error::invalid("timezone", format!("{name:?} is not an IANA timezone name")))?,
        };
        let start = parse_bound(request.start_date.as_deref(), "startDate", timezone, false)?;
        let end = parse_bound(request.end_date.as_deref(), "endDate", timezone, true)?;
        let granularity = request
            .group_by
            .as_deref()
            .map(str::parse)
            .transpose()?
            .unwrap_or(Granularity::Day);
        let filters = Filters {
            event_type: request.event_type.as_deref().map(EventType::parse).transpose()?,
            user_id: request.user_id.as_deref().map(UserId::parse).transpose()?,
            experiment_id: request.experiment_id.as_deref().map(ExperimentId::parse).transpose()?,
        };
        let mut query = Self::new(
            tenant.clone(),
            TimeRange::new(start, end)?,
            granularity,
            timezone,
            filters,
        )?;
        query.exact_unique_users = request.exact;
        Ok(query)
    }

    /// A query from typed parts.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `startDate` before 1970, on `startDate` or `endDate` past the
    /// year 9999 in the query's timezone (a bucket there has no RFC 3339 timestamp), or on
    /// `groupBy` when the series would exceed [`MAX_BUCKETS`].
    pub fn new(
        tenant: TenantId,
        range: TimeRange,
        granularity: Granularity,
        timezone: Tz,
        filters: Filters,
    ) -> Result<Self> {
        if range.start() < MIN_TIMESTAMP {
            return Err(Error::invalid("startDate", "must not be before 1970-01-01"));
        }
        // RFC 3339 has four-digit years: every instant of the range, read in the query's
        // timezone, must fall in year 9999 or before (the end is exclusive).
        let last = range.end() - chrono::TimeDelta::microseconds(1);
        if time::local_year(range.start(), timezone) > 9999 {
            return Err(Error::invalid(
                "startDate",
                "must be before the year 10000 in the query's timezone",
            ));
        }
        if time::local_year(last, timezone) > 9999 {
            return Err(Error::invalid(
                "endDate",
                "must be before the year 10000 in the query's timezone",
            ));
        }
        let range = TimeRange::new(truncate_to_micros(range.start()), truncate_to_micros(range.end()))?;
        let bucket_starts = OnceLock::new();
        // The bucket limit is checked exactly only when the cheap bound cannot vouch for it.
        if time::bucket_count_bound(range.start(), range.end(), granularity) > MAX_BUCKETS {
            let starts = time::bucket_starts(range.start(), range.end(), granularity, timezone, MAX_BUCKETS)?;
            let _ = bucket_starts.set(starts.into());
        }
        Ok(Self {
            tenant,
            range,
            granularity,
            timezone,
            filters,
            conversion_event_type: EventType::conversion(),
            exact_unique_users: false,
            breakdowns: true,
            bucket_starts,
            cache_key: OnceLock::new(),
            calendar_tags: OnceLock::new(),
        })
    }

    /// The same query at another granularity.
    ///
    /// # Errors
    /// As [`Query::new`].
    pub fn with_granularity(&self, granularity: Granularity) -> Result<Self> {
        let mut next = Self::new(
            self.tenant.clone(),
            self.range,
            granularity,
            self.timezone,
            self.filters.clone(),
        )?;
        next.conversion_event_type = self.conversion_event_type.clone();
        next.exact_unique_users = self.exact_unique_users;
        next.breakdowns = self.breakdowns;
        Ok(next)
    }

    /// The same query over the period of equal length that ends where this one starts (for
    /// "compared with the previous period").
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on `compare` when that period would start before 1970.
    pub fn previous_period(&self) -> Result<Self> {
        let length = self.range.end() - self.range.start();
        let start = self.range.start() - length;
        if start < MIN_TIMESTAMP {
            return Err(Error::invalid(
                "compare",
                "the previous period would start before 1970-01-01",
            ));
        }
        let mut previous = Self::new(
            self.tenant.clone(),
            TimeRange::new(start, self.range.start())?,
            self.granularity,
            self.timezone,
            self.filters.clone(),
        )
        .map_err(|e| match e {
            Error::InvalidInput { reason, .. } => Error::invalid("compare", reason),
            other => other,
        })?;
        previous.conversion_event_type = self.conversion_event_type.clone();
        previous.exact_unique_users = self.exact_unique_users;
        previous.breakdowns = self.breakdowns;
        Ok(previous)
    }

    /// Sets the conversion event type of the filtered experiment (default `CONVERSION`).
    pub fn with_conversion_event_type(mut self, event_type: EventType) -> Self {
        self.conversion_event_type = event_type;
        self.cache_key = OnceLock::new();
        self
    }

    /// Whether to compute the costly breakdowns (top pages, device stats); `false` leaves them
    /// empty (degradation under load).
    pub fn with_breakdowns(mut self, breakdowns: bool) -> Self {
        self.breakdowns = breakdowns;
        self.cache_key = OnceLock::new();
        self
    }

    /// Whether top pages and device stats are computed.
    pub fn breakdowns(&self) -> bool {
        self.breakdowns
    }

    /// Requires exact unique-user counts.
    pub fn with_exact_unique_users(mut self, exact: bool) -> Self {
        self.exact_unique_users = exact;
        self.cache_key = OnceLock::new();
        self
    }

    /// The query's cache key ([`CacheKey::for_query`](crate::cache::CacheKey::for_query)),
    /// computed once per query and kept by its clones.
    pub fn cache_key(&self) -> &crate::cache::CacheKey {
        self.cache_key.get_or_init(|| crate::cache::CacheKey::for_query(self))
    }

    /// The cache tags of the range's calendar: the tenant tag, the UTC months it covers whole
    /// and the UTC dates of partly covered months. Computed once per query and kept by its
    /// clones: a server that keeps a parsed query calls this once so that no clone formats them
    /// again.
    pub fn calendar_tags(&self) -> &[crate::cache::Tag] {
        self.calendar_tags
            .get_or_init(|| crate::cache::policy::calendar_tags(self.range).into())
    }

    /// The tenant queried.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }
    /// The half-open range queried.
    pub fn range(&self) -> TimeRange {
        self.range
    }
    /// The series granularity.
    pub fn granularity(&self) -> Granularity {
        self.granularity
    }
    /// The timezone of buckets and date bounds.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }
    /// The filters.
    pub fn filters(&self) -> &Filters {
        &self.filters
    }
    /// The event type that counts as a conversion for the filtered experiment.
    pub fn conversion_event_type(&self) -> &EventType {
        &self.conversion_event_type
    }
    /// Whether unique users must be exact.
    pub fn exact_unique_users(&self) -> bool {
        self.exact_unique_users
    }
    /// The bucket starts of the series (see [`time::bucket_starts`]).
    pub fn bucket_starts(&self) -> &[DateTime<Utc>] {
        self.bucket_starts.get_or_init(|| {
            // `new` checked the limit (exactly, or by a bound that cannot be below the count).
            time::bucket_starts(
                self.range.start(),
                self.range.end(),
                self.granularity,
                self.timezone,
                usize::MAX,
            )
            .expect("no limit to exceed")
            .into()
        })
    }

    /// Whether `event` is counted by this query: the tenant, the range and the filters.
    pub fn counts(&self, event: &Event) -> bool {
        event.tenant_id == self.tenant && self.range.contains(event.timestamp) && self.filters.matches(event)
    }

    /// The canonical text of the normalized query: equal queries, however they were spelled,
    /// have equal text. The cache key is its hash.
    pub fn canonical(&self) -> String {
        use fmt::Write as _;
        // One buffer, no intermediate strings: this runs on every request, cached or not.
        let mut text = String::with_capacity(160);
        let _ = write!(
            text,
            "v2|{}|{}|{}|{}|{}",
            self.tenant,
            self.range.start().timestamp_micros(),
            self.range.end().timestamp_micros(),
            self.granularity,
            self.timezone.name(),
        );
        for filter in [
            self.filters.event_type.as_ref().map(|v| v.as_str()),
            self.filters.user_id.as_ref().map(|v| v.as_str()),
            self.filters.experiment_id.as_ref().map(|v| v.as_str()),
        ] {
            // Length-prefixed, so no filter value can imitate a separator.
            let _ = match filter {
                Some(value) => write!(text, "|{}:{value}", value.len()),
                None => write!(text, "|-"),
            };
        }
        let _ = write!(
            text,
            "|{}|{}|{}",
            self.conversion_event_type, self.exact_unique_users, self.breakdowns
        );
        text
    }
}

#[cfg(test)]
mod tests;
