//! The numbers a store answers a [`QueryPlan`](super::QueryPlan) with. Integers only, so any two
//! stores can be compared exactly; percentages and rates are derived in one place
//! ([`Summary`](super::Summary)).

use std::collections::BTreeMap;

use crate::model::{Browser, Country, Device, EventType, Page, VariantKey};

/// Per-variant counts of an experiment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VariantCounts {
    /// Events tagged with the experiment and this variant.
    pub events: u64,
    /// Distinct users among those events.
    pub users: u64,
    /// Distinct users among those events with at least one event of the experiment's conversion
    /// type.
    pub conversions: u64,
}

/// A store's answer to a summary plan. The reference aggregation defines every field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aggregates {
    /// Events counted.
    pub total_events: u64,
    /// Distinct non-anonymous users among them.
    pub unique_users: u64,
    /// Whether `unique_users` is an estimate (sketch stores without `exact`).
    pub unique_users_approximate: bool,
    /// Count per event type, ranked (see [`rank_counts`]).
    pub events_by_type: Vec<(EventType, u64)>,
    /// Count per bucket, aligned with the query's bucket starts; zero-filled.
    pub time_series: Vec<u64>,
    /// The [`TOP_PAGES`](super::TOP_PAGES) pages with most events, ranked.
    pub top_pages: Vec<(Page, u64)>,
    /// Count per device, ranked; events without a device are not listed.
    pub devices: Vec<(Device, u64)>,
    /// Count per browser, ranked; events without a browser are not listed.
    pub browsers: Vec<(Browser, u64)>,
    /// Count per country, ranked; events without a country are not listed.
    pub countries: Vec<(Country, u64)>,
    /// Per-variant counts when the query filters on an experiment; variants without events are
    /// absent.
    pub variants: Option<BTreeMap<VariantKey, VariantCounts>>,
}

/// Ranks counts: largest count first, ties by key ascending (byte order), zero counts dropped,
/// at most `limit` entries. Every list in [`Aggregates`] is ranked this way.
pub fn rank_counts<K: Ord>(counts: impl IntoIterator<Item = (K, u64)>, limit: Option<usize>) -> Vec<(K, u64)> {
    let mut ranked: Vec<(K, u64)> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if let Some(limit) = limit {
        ranked.truncate(limit);
    }
    ranked
}

/// [`rank_counts`] of a breakdown (pages, devices, browsers, countries), or nothing when the
/// query omits breakdowns (`wanted` false): a store may have counted a few values on its way
/// (raw edges), and an omitted breakdown must be empty in every store alike.
pub fn rank_breakdown<K: Ord>(
    wanted: bool,
    counts: impl IntoIterator<Item = (K, u64)>,
    limit: Option<usize>,
) -> Vec<(K, u64)> {
    if wanted { rank_counts(counts, limit) } else { Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_by_count_then_key() {
        let ranked = rank_counts([("b", 2), ("a", 2), ("c", 5), ("z", 0)], Some(2));
        assert_eq!(ranked, [("c", 5), ("a", 2)]);
    }
}
