//! PostgreSQL [`EventStore`](analytics_core::store::EventStore) for the analytics library.
//!
//! ```no_run
//! use std::sync::Arc;
//! use analytics_core::Analytics;
//! use analytics_postgres::{PostgresConfig, PostgresStore};
//!
//! # async fn run() -> analytics_core::Result<()> {
//! let store = PostgresStore::connect(&PostgresConfig::new("postgres://app@localhost/analytics")).await?;
//! let analytics = Analytics::builder().store(Arc::new(store)).build()?;
//! # Ok(()) }
//! ```
//!
//! # Schema
//!
//! Embedded migrations ([`MIGRATOR`], `migrations/` in this crate) are applied by
//! [`PostgresStore::connect`]. To run them yourself (as a deploy step, or with a role that may
//! run DDL), turn that off with [`PostgresConfig::migrate`]`(false)` and either call
//! `analytics_postgres::MIGRATOR.run(&pool)` or `sqlx migrate run --source migrations` with the
//! sqlx CLI; both record what ran in `_sqlx_migrations`.
//!
//! - `events`: raw rows, partitioned by month on the timestamp (`events_pYYYYMM`, created as
//!   events arrive, one month ahead) with a default partition, so no event is refused for its
//!   date. Index: a btree on `(tenant_id, ts)` — every raw read (range edges, filtered
//!   summaries, the event log's keyset pages, which sort the rare id ties) is one tenant's time
//!   range. A BRIN on `ts` is a fraction of the size but cannot order a page of the log or skip
//!   other tenants' rows inside a block range, and is useless when events arrive out of order.
//! - `event_ids`: the idempotency ledger. A unique index on a partitioned table must contain the
//!   partition key, which would let a retry with another timestamp in; ids are deduplicated here.
//!   Keyed by the ids themselves, so time-ordered ids (the UUIDv7 core assigns to events sent
//!   without one, ULIDs, counters) are claimed at the right edge of its index. A 128-bit digest
//!   key was tried: 9–15% faster at 10M events with ids random in arrival order, but it makes
//!   every claim random, and with ids in arrival order (the generator's own order) two callers
//!   ingested 47k instead of 65k events/s at 10M. Random ids are the ledger's cost: claiming a
//!   10,000-event batch took 27 ms at the start and 58 ms at 10M.
//! - `period_stats`: per (tenant, UTC hour) and (tenant, UTC day), the number of events, their
//!   counts per event type, page, device, browser, country and experiment variant, and a
//!   HyperLogLog++ sketch of their users (see [below](crate#unique-users)). Append-only: every
//!   batch adds one row per period it touches, holding only its own share, and rows of a period
//!   add up; compaction merges them (see [below](crate#compaction)).
//! - `experiment_users`: per (tenant, experiment, variant, user) the first exposure and the set
//!   of event types seen, kept at ingest; [`PostgresStore::experiment_state`] answers
//!   whole-experiment variant counts exactly from it (and variant event counts from
//!   `period_stats`).
//! - `tenants`, `api_keys` (SHA-256 hashes only), `experiments`.
//! - `owed_invalidations`: cache invalidations owed by ingests committed while the cache was
//!   unreachable, until an instance applies them (see `Analytics::ingest` in `analytics-core`).
//!
//! Key text columns are `COLLATE "C"`: byte-wise comparison, instead of the database default's
//! locale-aware one that showed up in the ingest profile.
//!
//! ## Why per-period rows rather than per-dimension counters
//!
//! The first layout kept one `(level, dimension, period, value) → count` row per counter,
//! upserted by each batch, and a sketch per period rewritten by each batch. Measured at 1M
//! events with batches in the generator's order (every batch spread over all 90 days): a batch
//! upserted ~57,000 counter rows (160 ms of its ~290 ms) and rewrote ~2,250 sketches, dense ones
//! 12 KiB each (30 ms, growing with the data: at 10M events a batch rewrote ~26 MB of sketches).
//! Appending one row per touched period costs ~6 ms per batch whatever the data size, takes no
//! row locks (concurrent batches never wait for each other there), and a query reads a few rows
//! per period instead of one per counter. The dimensions stay separate counts inside a row —
//! nothing is counted per combination of dimensions.
//!
//! # Ingestion
//!
//! A batch is one transaction: claim the batch's ids in the ledger — a binary `COPY` inside a
//! savepoint, falling back to `INSERT … ON CONFLICT DO NOTHING RETURNING` only when an id is
//! already there (a retry), since the plain `COPY` is about twice as fast — then `COPY` (binary)
//! only the new events into `events`, append their `period_stats` rows, and upsert the
//! experiment state they extend. Duplicates — earlier in the batch or stored before — are
//! reported, never counted. Ids are claimed in byte order and experiment rows in key order, so
//! concurrent batches wait rather than deadlock (a lost deadlock is retried anyway). The outcome
//! is returned after commit only.
//!
//! Experiment state only grows (a first exposure can only move earlier, a set of event types
//! only gain members), so each store remembers, as hashes, the state it has committed and skips
//! batch rows that state covers — safe however stale that memory is, because the table always
//! holds at least what was committed. Without it, upserting every user's row cost ~17 ms per
//! batch and serialized concurrent batches on popular users.
//!
//! The work a batch costs the calling process (encoding the `COPY` rows, counting the batch per
//! period with its sketches, gathering experiment rows, building the outcome) runs before the
//! transaction and on the same cores as everything else. Profiled at 10M events it was a fifth
//! of the machine's CPU, most of it SipHash and string comparisons in ordered maps: repeats in a
//! batch found through a hash set of ids, the outcome through another, experiment rows in a
//! `BTreeMap` of three strings, each event counted into its hour's and its day's maps. Now
//! repeats fall out of the id sort the ledger needs anyway, the outcome is built from positions,
//! experiment rows and counts go into `foldhash` maps (randomly seeded), experiment rows are
//! hashed once, each event is counted once into its hour and a day's row is the sum of its
//! hours' (summed in hash maps with borrowed keys and ordered once, when the row is written,
//! and each period's users sketched once from its list: ordered maps merged entry by entry and
//! hour sketches merged one by one into days and weeks had been a third of the server's CPU
//! time on an HTTP ingest, 2026-12-03), and `jsonb` is serialized straight into the stream.
//! Two callers at 10M events went from 129,999 to 152,896–173,835 events/s
//! ([Figures](crate#figures)).
//!
//! Where a batch's server time goes, from `pg_stat_statements` over one ingest of 1M events
//! in time order (`INGEST_ONLY=1` of the bench, 10,000-event batches, 2026-12-03): the events'
//! `COPY` 31.8 ms per batch, the ledger's `COPY` 30.6 ms, the experiment upsert 13.5 ms, the
//! period rows 2.4 ms, compaction under 1 ms. The ledger alone costs what the events' own
//! `COPY` costs, so while an id is deduplicated against every id ever stored the batch API
//! stays near half of a bare `COPY` at best (34–39% measured with two callers; the goal of 90%
//! is not met). The events' own index on (tenant, ts, id) could enforce uniqueness at no cost,
//! but only per timestamp: a retry with another timestamp (an event sent without one is
//! stamped on arrival) would be counted twice. That is a change to what an event id means, for
//! every store, not a tuning of this one.
//!
//! # Compaction
//!
//! Each store counts the rows it appended per period and, in the `append` call that writes the
//! [`PostgresConfig::compact_after`]-th (default 16) — or, for any period it appended to,
//! in the first `append` whose batch lies wholly after it (events arriving in time order leave
//! each hour and day behind well before 16 rows) — merges the period's rows into one: `DELETE
//! … RETURNING` and one insert of the merge, in one transaction. That is safe beside ingestion
//! (rows committed meanwhile are not deleted, so not lost), beside another compaction (the
//! second skips rows the first deleted) and beside queries (one statement sees the rows before
//! or the merge after). A failed compaction never fails the append (its events are committed);
//! the period is tried again later. [`PostgresStore::compact`] merges every period of every
//! tenant with more than one row, for rows left by other processes or before a restart.
//!
//! When a migration replaces derived tables (0002 did), the next `connect` recounts
//! `period_stats` from `events` in one transaction that blocks ingestion meanwhile.
//!
//! # Queries
//!
//! Core's [`QueryPlan`](analytics_core::query::QueryPlan) is executed as planned:
//! `period_stats` for whole hours (whole UTC days read the daily rows), merged in Rust; raw rows
//! for partial edges; raw rows only for filtered queries, with time series bucketed in SQL on
//! core's bucket starts (so every IANA timezone, DST and 30/45-minute offset is bucketed the same
//! way as everywhere else).
//!
//! `period_stats` rows are never updated (ingestion appends, compaction deletes a period's rows
//! and appends their merge) and each has an id never reused, so the store keeps the rows it has
//! decoded, by id, up to [`PostgresConfig::period_cache_bytes`] (16 MiB by default). Every
//! summary still reads which rows its periods have, in the same single query, which names the
//! ids already kept: PostgreSQL sends only the other rows' counts and sketches. A row written by
//! another instance, or a compaction anywhere, is a new id and is fetched; nothing kept can go
//! stale. The time series reads only the `events` column of its periods, an index-only scan
//! (the index includes it). Sessions plan each statement once (`plan_cache_mode`
//! `force_generic_plan`): the plans are index range scans whatever the bound values, and
//! re-planning was 13–14% of a cold summary.
//!
//! # Unique users
//!
//! Unfiltered summaries merge the sketches of the range (days where whole, hours at the edges)
//! and add the users of raw edge rows; the result is flagged approximate. Queries with
//! `exact` count distinct users from raw rows. The sketch is
//! [`hyperloglockless`]'s `HyperLogLogPlus` at precision 14 with a fixed seed: maintained, with a
//! sparse mode (a batch's share of a quiet hour costs bytes, not 16 KiB) and a standard error of
//! ~0.8% when dense.
//!
//! # Connections and errors
//!
//! A write pool and an optional read pool ([`PostgresConfig::read_replica`]); a read goes to the
//! replica only once it has replayed every write acknowledged before the read, within a bounded
//! wait, else to the primary ([`replica`]). Change notices between instances travel over
//! `LISTEN/NOTIFY` ([`PgChangeFeed`]); compaction and partition creation take advisory locks, so
//! instances sharing the database take turns. A statement and lock timeout on every session. Every sqlx error is mapped into core's error: connection loss,
//! pool exhaustion, timeouts and lost deadlocks are transient; the rest permanent.
//!
//! # Figures
//!
//! `scripts/bench-postgres` (PostgreSQL 15 started by the script, durable: fsync and synchronous
//! commit on) runs `cargo bench -p analytics-postgres --bench postgres` for each size in `SIZES`
//! on this project's 2-core shared VM. `SETTINGS=sized` (the default) gives the server the usual
//! production sizing for the machine — shared_buffers a quarter of the 24 GB of RAM, max_wal_size
//! 4 GB — and `SETTINGS=stock` PostgreSQL's defaults (128 MB, 1 GB). Events are ingested in
//! 10,000-event batches in time order as a live service receives them (`ORDER=generator`
//! spreads every batch over all 90 days, the worst case). Each figure side by side with its
//! baseline in one run; summaries are criterion medians.
//!
//! On the generator's real-site shape (500 full-URL pages, 50,000 users, 8 event types, 90
//! days), 1M events, three runs of `SIZES=1000000 scripts/bench-postgres` on 2026-12-02, after
//! summaries began keeping decoded period rows (below):
//!
//! | sized server, time order, 1M events | three runs |
//! |---|---|
//! | cold 31-day summary, `PostgresStore` (`period_stats` + sketches) | 588–629 µs |
//! | the same, a store keeping no decoded rows (`period_cache_bytes(0)`; the first summary after a start), three `REUSE=1` runs later that day on a server sized alike (quieter: kept rows 501–511 µs, raw SQL 269–280 ms there) | 1.348–1.349 ms |
//! | the original systems' raw SQL over the same rows (6 queries, concurrent) | 356–362 ms |
//! | ratio | 575–606× |
//! | same summary with exact unique users (`COUNT(DISTINCT)` on raw rows) | 228–232 ms |
//! | ingest, batch API, 1 caller / 2 concurrent callers | 103,289–114,831 / 175,544–195,640 events/s |
//! | bare binary `COPY` of the same rows and batches, no ledger, no derived rows (the physical limit) | 305,286–326,150 / 492,245–534,104 events/s |
//! | batch API as a share of bare `COPY`, 1 / 2 callers | 33.8–35.4% / 34.2–37.5% |
//! | row-by-row `INSERT`, 1 / 2 connections (autocommit, 20,000 events) | 2,308–2,606 / 3,642–3,982 events/s |
//! | sketch vs exact unique users, 1 / 7 / 31 / 90 days | 0.00 / 0.14 / 0.65 / 0.22% |
//!
//! That morning, before the change, the cold summary took 1.78–1.85 ms (and 1.90–2.29 ms
//! server-side through `scripts/bench-server`, 4.97–6.20 ms for 90 days by hour). Profiled (`perf`
//! on the bench under a loop of cold summaries, and instrumented), a 31-day summary spent:
//! 1.06 ms fetching its 15 period rows — 500 KB of per-page counts and 16 KiB sketches, detoasted,
//! sent and copied — of which 0.69 ms was the payload (the same query without it: 0.38 ms);
//! 0.24 ms merging the counts (decoding every URL again); 0.22 ms uniting sketches (the sparse
//! ones decoded and merged through the crate every time); 0.16 ms assembling (validating and
//! ordering 500 pages to return 10); PostgreSQL re-planning both statements on every call. What
//! took it away, each measured on its own: keeping decoded rows by id (1.66 → 1.01 ms); the
//! sparse sketches' registers computed once per kept row (→ 0.84 ms); ranking pages as strings
//! and parsing the top ten (→ 0.74 ms); a period's entry rewritten only when it changed (→
//! 0.65 ms); generic plans (−0.09 ms). For 90 days by hour server-side: the series from an
//! index-only scan with unsorted arrays, planning that builds no error for each empty bucket
//! edge, a computed answer serialized once for its cache entry and its response, and a vacuum
//! after the startup sweep (2.7 → 1.8 ms on one server).
//!
//! At 10M events on the same shape, three runs of `SIZES=10000000 scripts/bench-postgres` on
//! 2026-12-02, before summaries kept decoded rows (server-side figures at 10M after it are in
//! the README's Performance section):
//!
//! | sized server, time order, 10M events | three runs |
//! |---|---|
//! | cold 31-day summary, `PostgresStore` | 2.57–2.75 ms |
//! | the original systems' raw SQL over the same rows | 4.03–5.17 s |
//! | ratio | 1,466–1,982× |
//! | same summary with exact unique users | 2.74–3.05 s |
//! | ingest, batch API, 1 caller / 2 concurrent callers | 64,996–72,207 / 94,354–101,999 events/s |
//! | bare binary `COPY` of the same rows and batches, 1 / 2 callers | 165,931–199,727 / 290,386–323,723 events/s |
//! | batch API as a share of bare `COPY`, 1 / 2 callers | 36.2–39.5% / 30.2–35.1% |
//! | row-by-row `INSERT`, 1 / 2 connections (autocommit, 20,000 events) | 1,928–2,251 / 3,411–3,471 events/s |
//! | sketch vs exact unique users, 1 / 7 / 31 / 90 days | 0.64 / 0.07 / 0.25 / 0.25% |
//!
//! The gap to `COPY` is what the batch API owes its promises: the idempotency ledger (one claim
//! per event id, a random insert into an index of all ids) and the period rows with their
//! sketches, written in the same transaction. Earlier, on the demo's data (20,000 users, short
//! page paths) and a quieter host:
//!
//! | sized server, time order, demo data | 1M events | 10M events |
//! |---|---|---|
//! | cold 31-day summary, `PostgresStore` (`period_stats` + sketches) | 2.40 ms | 3.19 ms |
//! | the original systems' raw SQL over the same rows (6 queries, concurrent) | 308.7 ms | 3.16 s |
//! | ratio | 128× | 991× |
//! | same summary with exact unique users (`COUNT(DISTINCT)` on raw rows) | 187.6 ms | 1.83 s |
//! | ingest, batch API, 1 caller | 138,631 events/s | 107,621 events/s |
//! | ingest, row-by-row `INSERT`, 1 connection (autocommit, 20,000 events) | 2,809 events/s | 2,717 events/s |
//! | ratio | 49.3× | 39.6× |
//! | ingest, batch API, 2 concurrent callers | 235,142 events/s | 173,835 events/s |
//! | ingest, row-by-row `INSERT`, 2 connections | 4,225 events/s | 4,355 events/s |
//! | ratio | 55.7× | 39.9× |
//! | sketch vs exact unique users, 1 / 7 / 31 / 90 days | 0.00 / 0.04 / 0.19 / 0.17% | 0.38 / 0.16 / 0.17 / 0.17% |
//!
//! Ingest at 10M events varies from run to run more than anything else here. Two callers, sized
//! server, four runs of `scripts/bench-postgres` since the client-work changes (see
//! [Ingestion](crate#ingestion)): 165,904 and 157,488 events/s after the first of them, 173,835
//! (the second table) and 152,896 after the second — every run above the 150k goal, before them 129,999.
//! What moves it is the idempotency ledger: the generator's ids are random in time order, so
//! every claim is a random insert into an index of all ids (measured in psql at 10M ids: 4.7 µs
//! per id, against 0.7 µs for ids in order; a hash index under an exclusion constraint was no
//! faster), and after each checkpoint the first change to each of its pages writes the whole
//! page to the WAL (the same inserts took up to twice as long), so where the run's checkpoints
//! fall shows in the figure. Ids that follow time (core's UUIDv7s for events sent without an
//! id) are claimed at the index's right edge instead.
//!
//! On the stock server (`SETTINGS=stock`, time order), two callers: 231,499 events/s at 1M and
//! 123,108 at 10M, where its 1 GB of WAL between checkpoints makes those page images the
//! bottleneck. In generator order (stock server, measured before the move-past compaction,
//! which does not apply to it): 143,899 and 65,348. The first version of this store ingested
//! 20,447 events/s at 1M and 11,080 at 10M; the changes and what each gained are in the
//! sections above.
mod compact;
mod config;
mod error;
mod events;
mod feed;
mod ingest;
mod owed;
mod partitions;
mod period_cache;
mod rebuild;
mod registry;
pub mod replica;
mod sketch;
mod stats;
mod store;
mod summary;

pub use config::PostgresConfig;
pub use feed::{CHANGES_CHANNEL, PgChangeFeed};
pub use replica::{ReplicaReads, ReplicaStats};
pub use store::PostgresStore;

/// The embedded schema migrations, for running them yourself (see the crate docs).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
