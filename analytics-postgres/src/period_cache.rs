//! Decoded `period_stats` rows kept between summaries.
//!
//! A `period_stats` row never changes once written: ingestion appends rows, compaction deletes a
//! period's rows and appends their merge, and every row has an id (`period_stats.id`, an
//! identity column) that is never reused. So a row decoded once is right for as long as its id
//! exists. Which rows a period has is still read from PostgreSQL by every summary, in the same
//! single query as before: the query names the ids this store already holds, and PostgreSQL
//! sends the counts and sketches of the other rows only. A summary the response cache did not
//! answer (`skipCache`, a first request, a range nobody asked for) then no longer transfers and
//! decodes a month of per-page counts and sketches again — that was two thirds of a cold 31-day
//! summary (profiled). A row written by another process, or a compaction anywhere, shows up as
//! an id this store does not hold, and is fetched.
//!
//! Entries are per (tenant, level, period): the ids a summary saw for that period, with their
//! decoded rows. moka bounds them by weight (about the bytes they hold); see
//! [`PostgresConfig::period_cache_bytes`](crate::PostgresConfig::period_cache_bytes).

use std::sync::Arc;

use analytics_core::Result;

use crate::error::corrupt;
use crate::sketch::StoredSketch;
use crate::stats::{self, Dim};

/// One decoded `period_stats` row.
#[derive(Debug)]
pub(crate) struct PeriodRow {
    /// `period_stats.id`.
    pub(crate) id: i64,
    /// Events counted in the row.
    pub(crate) events: i64,
    /// Events per (dimension, value).
    pub(crate) counts: Vec<(Dim, Box<str>, u64)>,
    /// The user sketch; `None` when the row has no identified users (or `users_read` is false).
    pub(crate) users: Option<StoredSketch>,
    /// Whether `users` was read. Summaries that count users exactly do not read sketches; a row
    /// decoded by one of them is not offered as known to a summary that needs the sketch.
    pub(crate) users_read: bool,
}

impl PeriodRow {
    /// Decodes a row's stored columns; `users` is `None` when not read (`users_read` false).
    /// A row to be `kept` has its sketch prepared for many unions ([`StoredSketch::kept`]).
    pub(crate) fn decode(
        id: i64,
        events: i64,
        (counts, users): (&[u8], Option<Vec<u8>>),
        users_read: bool,
        kept: bool,
    ) -> Result<Self> {
        let counts = stats::decode_counts(counts)?
            .into_iter()
            .map(|(dim, value, n)| (dim, Box::from(value), n))
            .collect();
        if events < 0 {
            return Err(corrupt("event count", events));
        }
        Ok(Self {
            id,
            events,
            counts,
            users: users
                .map(|bytes| {
                    let bytes = bytes.into_boxed_slice();
                    if kept {
                        StoredSketch::kept(bytes)
                    } else {
                        Ok(StoredSketch::new(bytes))
                    }
                })
                .transpose()?,
            users_read,
        })
    }

    /// About the bytes the row holds.
    fn weight(&self) -> usize {
        let counts: usize = self.counts.iter().map(|(_, value, _)| value.len() + 40).sum();
        64 + counts + self.users.as_ref().map_or(0, StoredSketch::weight)
    }
}

/// A (tenant, level, period) slot.
type Slot = (Arc<str>, i16, i64);

/// The rows a summary saw for one period.
type SlotRows = Arc<[Arc<PeriodRow>]>;

/// Decoded rows by period, bounded by weight. Cheap to share.
#[derive(Clone)]
pub(crate) struct PeriodCache {
    slots: Option<moka::sync::Cache<Slot, SlotRows>>,
}

impl std::fmt::Debug for PeriodCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeriodCache")
            .field("entries", &self.slots.as_ref().map(|s| s.entry_count()))
            .finish()
    }
}

impl PeriodCache {
    /// A cache holding about `bytes` of decoded rows; 0 keeps nothing.
    pub(crate) fn new(bytes: u64) -> Self {
        let slots = (bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|_: &Slot, rows: &SlotRows| {
                    let bytes: usize = rows.iter().map(|row| row.weight()).sum();
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .build()
        });
        Self { slots }
    }

    /// Whether rows are kept at all.
    pub(crate) fn keeps_rows(&self) -> bool {
        self.slots.is_some()
    }

    /// The rows held for `tenant`'s periods `pieces` (level, first, end), to be offered as
    /// known. With `need_users`, rows whose sketch was not read are left out.
    pub(crate) fn held(&self, tenant: &Arc<str>, pieces: &[(i16, i64, i64)], need_users: bool) -> Held {
        let mut held = Held::default();
        let Some(slots) = &self.slots else {
            return held;
        };
        for &(level, start, end) in pieces {
            for period in start..end {
                if let Some(rows) = slots.get(&(tenant.clone(), level, period)) {
                    for row in rows.iter().filter(|row| row.users_read || !need_users) {
                        held.ids.push(row.id);
                        held.rows.push(row.clone());
                    }
                }
            }
        }
        held.ids.sort_unstable();
        held.rows.sort_unstable_by_key(|row| row.id);
        held
    }

    /// Records the rows a summary saw for `tenant`'s period (level, period).
    pub(crate) fn store(&self, tenant: &Arc<str>, (level, period): (i16, i64), rows: Vec<Arc<PeriodRow>>) {
        if let Some(slots) = &self.slots {
            slots.insert((tenant.clone(), level, period), rows.into());
        }
    }
}

/// Rows a store holds for a summary's periods, by id.
#[derive(Debug, Default)]
pub(crate) struct Held {
    /// The rows' ids, ascending (sent to PostgreSQL as known).
    pub(crate) ids: Vec<i64>,
    /// The rows, in `ids` order.
    rows: Vec<Arc<PeriodRow>>,
}

impl Held {
    /// The held row with `id`.
    pub(crate) fn get(&self, id: i64) -> Option<&Arc<PeriodRow>> {
        self.ids.binary_search(&id).ok().map(|i| &self.rows[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, users_read: bool) -> Arc<PeriodRow> {
        let counts = postcard::to_allocvec(&vec![(Dim::Page, "/a", 2u64)]).expect("encodes");
        Arc::new(PeriodRow::decode(id, 2, (&counts, None), users_read, true).expect("decodes"))
    }

    #[test]
    fn held_rows_are_per_tenant_and_period_and_skip_unread_sketches_when_needed() {
        let cache = PeriodCache::new(1 << 20);
        let (acme, other): (Arc<str>, Arc<str>) = ("acme".into(), "other".into());
        cache.store(&acme, (1, 10), vec![row(7, true), row(3, false)]);
        cache.store(&acme, (1, 12), vec![row(9, true)]);
        cache.store(&other, (1, 11), vec![row(5, true)]);

        let held = cache.held(&acme, &[(1, 10, 12)], false);
        assert_eq!(held.ids, [3, 7]);
        assert_eq!(held.get(7).map(|r| r.counts.len()), Some(1));
        assert!(held.get(5).is_none(), "another tenant's row");
        assert_eq!(cache.held(&acme, &[(1, 10, 13)], true).ids, [7, 9]);
        assert!(cache.held(&acme, &[(0, 10, 13)], false).ids.is_empty(), "another level");
    }

    #[test]
    fn a_zero_sized_cache_holds_nothing() {
        let cache = PeriodCache::new(0);
        let acme: Arc<str> = "acme".into();
        cache.store(&acme, (1, 10), vec![row(7, true)]);
        assert!(cache.held(&acme, &[(1, 10, 11)], false).ids.is_empty());
    }

    #[test]
    fn rows_decode_their_counts_and_reject_garbage() {
        assert_eq!(&*row(1, true).counts[0].1, "/a");
        assert!(PeriodRow::decode(1, 2, (&[0xff, 0xff], None), true, true).is_err());
        assert!(PeriodRow::decode(1, -1, (&[0], None), true, true).is_err());
        assert!(
            PeriodRow::decode(1, 2, (&[0], Some(vec![7, 7])), true, true).is_err(),
            "not a sketch"
        );
    }
}
