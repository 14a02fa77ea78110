//! The response: the dashboard summary (camelCase fields), per-variant `variants`, and `_metadata`.

use std::collections::BTreeMap;

use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};

use super::{Aggregates, Granularity, Query};

/// One entry of `eventsByType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EventTypeCount {
    /// The event type.
    pub event_type: String,
    /// Events of that type.
    pub count: u64,
}

/// One point of `timeSeriesData`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TimePoint {
    /// The bucket's start, RFC 3339 with the query timezone's offset (`Z` for UTC).
    pub timestamp: String,
    /// Events in the bucket (within the range).
    pub count: u64,
}

/// One entry of `topPages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PageViews {
    /// The page.
    pub page: String,
    /// Events on that page (of any type; named `views`, as dashboards expect).
    pub views: u64,
}

/// One entry of `deviceStats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct DeviceShare {
    /// The device class.
    pub device: String,
    /// Events from it.
    pub count: u64,
    /// Share of the events that name a device, in percent, rounded to two decimals.
    pub percentage: f64,
}

/// One entry of `browserStats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BrowserShare {
    /// The browser.
    pub browser: String,
    /// Events from it.
    pub count: u64,
    /// Share of the events that name a browser, in percent, rounded to two decimals.
    pub percentage: f64,
}

/// One entry of `countryStats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CountryShare {
    /// The country.
    pub country: String,
    /// Events from it.
    pub count: u64,
    /// Share of the events that name a country, in percent, rounded to two decimals.
    pub percentage: f64,
}

/// One experiment variant's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct VariantStats {
    /// Events of the variant.
    pub events: u64,
    /// Distinct users of the variant.
    pub users: u64,
    /// Distinct users of the variant who converted.
    pub conversions: u64,
    /// `conversions / users` (0 when there are no users).
    pub conversion_rate: f64,
}

/// The summary without per-response metadata: what the cache stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SummaryBody {
    /// Events in range.
    pub total_events: u64,
    /// Distinct non-anonymous users.
    pub unique_users: u64,
    /// Count per event type, largest first.
    pub events_by_type: Vec<EventTypeCount>,
    /// Every bucket of the range, zero-filled.
    pub time_series_data: Vec<TimePoint>,
    /// The ten pages with most events.
    pub top_pages: Vec<PageViews>,
    /// Events per device with shares.
    pub device_stats: Vec<DeviceShare>,
    /// Events per browser with shares.
    #[serde(default)]
    pub browser_stats: Vec<BrowserShare>,
    /// Events per country with shares.
    #[serde(default)]
    pub country_stats: Vec<CountryShare>,
    /// Per-variant results when an experiment was queried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variants: Option<BTreeMap<String, VariantStats>>,
    /// Whether `uniqueUsers` is an estimate (reported in `_metadata`).
    #[serde(skip)]
    pub unique_users_approximate: bool,
}

impl SummaryBody {
    /// Derives the response body from a store's aggregates for `query`.
    pub fn assemble(aggregates: &Aggregates, query: &Query) -> Self {
        let tz = query.timezone();
        Self {
            total_events: aggregates.total_events,
            unique_users: aggregates.unique_users,
            events_by_type: aggregates
                .events_by_type
                .iter()
                .map(|(t, n)| EventTypeCount {
                    event_type: t.to_string(),
                    count: *n,
                })
                .collect(),
            time_series_data: query
                .bucket_starts()
                .iter()
                .zip(&aggregates.time_series)
                .map(|(start, n)| TimePoint {
                    timestamp: start.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true),
                    count: *n,
                })
                .collect(),
            top_pages: aggregates
                .top_pages
                .iter()
                .map(|(p, n)| PageViews {
                    page: p.to_string(),
                    views: *n,
                })
                .collect(),
            device_stats: shares(&aggregates.devices, |device, count, percentage| DeviceShare {
                device,
                count,
                percentage,
            }),
            browser_stats: shares(&aggregates.browsers, |browser, count, percentage| BrowserShare {
                browser,
                count,
                percentage,
            }),
            country_stats: shares(&aggregates.countries, |country, count, percentage| CountryShare {
                country,
                count,
                percentage,
            }),
            variants: aggregates.variants.as_ref().map(|variants| {
                variants
                    .iter()
                    .map(|(key, c)| {
                        let rate = if c.users == 0 {
                            0.0
                        } else {
                            c.conversions as f64 / c.users as f64
                        };
                        let stats = VariantStats {
                            events: c.events,
                            users: c.users,
                            conversions: c.conversions,
                            conversion_rate: rate,
                        };
                        (key.to_string(), stats)
                    })
                    .collect()
            }),
            unique_users_approximate: aggregates.unique_users_approximate,
        }
    }
}

/// Each value's count with its share of the listed total (the events naming a value).
fn shares<K: std::fmt::Display, T>(counts: &[(K, u64)], entry: impl Fn(String, u64, f64) -> T) -> Vec<T> {
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    counts
        .iter()
        .map(|(value, n)| entry(value.to_string(), *n, percent(*n, total)))
        .collect()
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 10_000.0 / whole as f64).round() / 100.0
}

/// How loaded the service is (see the resilience module); reported with every answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "UPPERCASE")]
pub enum LoadLevel {
    /// Everything served normally.
    #[default]
    Normal,
    /// Cached answers preferred.
    Elevated,
    /// Granularity coarsened, costly breakdowns dropped for low priorities.
    High,
    /// Only cached answers or the highest priorities.
    Critical,
}

/// `_metadata`: how this answer was produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SummaryMetadata {
    /// Load level when answering.
    pub load_level: LoadLevel,
    /// Served from the cache.
    pub cached: bool,
    /// Served past its freshness (fallback or stale-while-revalidate).
    pub stale: bool,
    /// Age of the served data in milliseconds, when cached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
    /// Time taken, in milliseconds (fractional).
    pub response_time: f64,
    /// Granularity of `timeSeriesData` (may be coarser than asked when degraded).
    pub granularity: Granularity,
    /// The timezone of buckets and date bounds.
    pub timezone: String,
    /// What was degraded to answer, if anything.
    pub degraded: Vec<String>,
    /// Whether `uniqueUsers` is an estimate.
    pub unique_users_approximate: bool,
}

impl LoadLevel {
    /// The level's name as it is serialized (`NORMAL`, `ELEVATED`, `HIGH`, `CRITICAL`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "NORMAL",
            Self::Elevated => "ELEVATED",
            Self::High => "HIGH",
            Self::Critical => "CRITICAL",
        }
    }
}

impl SummaryMetadata {
    /// Appends this metadata as JSON, byte for byte what its `Serialize` writes (a test holds
    /// the two equal). A cached summary writes it on every request, and serde's derived code
    /// (escaping every key through the formatter) was a twentieth of that path's instructions.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let flag = |value: bool| if value { &b"true"[..] } else { &b"false"[..] };
        out.extend_from_slice(b"{\"loadLevel\":\"");
        out.extend_from_slice(self.load_level.as_str().as_bytes());
        out.extend_from_slice(b"\",\"cached\":");
        out.extend_from_slice(flag(self.cached));
        out.extend_from_slice(b",\"stale\":");
        out.extend_from_slice(flag(self.stale));
        if let Some(age) = self.age_ms {
            out.extend_from_slice(b",\"ageMs\":");
            write_value(out, &age);
        }
        out.extend_from_slice(b",\"responseTime\":");
        // Numbers and strings through serde_json, so their formatting and escaping are its own.
        write_value(out, &self.response_time);
        out.extend_from_slice(b",\"granularity\":\"");
        out.extend_from_slice(self.granularity.as_str().as_bytes());
        out.extend_from_slice(b"\",\"timezone\":");
        write_str(out, &self.timezone);
        out.extend_from_slice(b",\"degraded\":");
        if self.degraded.is_empty() {
            out.extend_from_slice(b"[]");
        } else {
            write_value(out, &self.degraded);
        }
        out.extend_from_slice(b",\"uniqueUsersApproximate\":");
        out.extend_from_slice(flag(self.unique_users_approximate));
        out.push(b'}');
    }
}

/// A JSON string: as it is when nothing in it needs escaping (a timezone's name), else through
/// serde_json.
fn write_str(out: &mut Vec<u8>, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\' && b < 0x7f) {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        write_value(out, value);
    }
}

fn write_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing a number, a string or a list of strings into a `Vec` cannot fail.
    serde_json::to_writer(out, value).expect("JSON of a number or strings");
}

/// A summary response: the body plus `_metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    /// The numbers.
    #[serde(flatten)]
    pub body: SummaryBody,
    /// How they were produced.
    #[serde(rename = "_metadata")]
    pub metadata: SummaryMetadata,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_written_by_hand_is_what_serde_writes() {
        let levels = [
            LoadLevel::Normal,
            LoadLevel::Elevated,
            LoadLevel::High,
            LoadLevel::Critical,
        ];
        let granularities = [
            Granularity::Hour,
            Granularity::Day,
            Granularity::Week,
            Granularity::Month,
        ];
        for (i, (load_level, granularity)) in levels.into_iter().zip(granularities).enumerate() {
            for (age_ms, degraded) in [
                (None, vec![]),
                (
                    Some(1_234),
                    vec!["granularity:hour->day".to_owned(), "quote \" and \\".to_owned()],
                ),
            ] {
                let metadata = SummaryMetadata {
                    load_level,
                    cached: i % 2 == 0,
                    stale: i % 3 == 0,
                    age_ms,
                    response_time: [0.0, 0.123_456, 1e-7, 12_345.678][i],
                    granularity,
                    // Real names need no escaping; the other case takes the escaping path.
                    timezone: match age_ms {
                        None => ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"][i].to_owned(),
                        Some(_) => "quote \" back\\slash \u{1} é".to_owned(),
                    },
                    degraded,
                    unique_users_approximate: i % 2 == 1,
                };
                let mut written = Vec::new();
                metadata.write_json(&mut written);
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    serde_json::to_string(&metadata).unwrap()
                );
            }
        }
    }

    #[test]
    fn percentages_round_to_two_decimals() {
        assert_eq!(percent(1, 3), 33.33);
        assert_eq!(percent(2, 3), 66.67);
        assert_eq!(percent(0, 0), 0.0);
    }
}
