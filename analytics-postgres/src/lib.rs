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
//! # Compaction
//!
//! Each store counts the rows it appended per period and, in the `append` call that writes the
//! [`PostgresConfig::compact_after`]-th (default 16) — or, for a period with two rows or more,
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
//! A write pool and an optional read pool ([`PostgresConfig::read_replica`]); a statement and
//! lock timeout on every session. Every sqlx error is mapped into core's error: connection loss,
//! pool exhaustion, timeouts and lost deadlocks are transient; the rest permanent.
//!
//! # Figures
//!
//! `DATABASE_URL=… EVENTS=1000000 cargo bench -p analytics-postgres --bench postgres` (and
//! `EVENTS=10000000`) on this project's 2-core shared VM: PostgreSQL 15 with its stock settings
//! (fsync and synchronous commit on, 128 MB of shared buffers), the demo's generator (one tenant,
//! 20,000 users, 90 days, events in generator order — every 10,000-event batch spread over all
//! 90 days, the worst case for the per-period rows). Each figure side by side with its baseline
//! in one run; summaries are criterion medians.
//!
//! | | 1M events | 10M events |
//! |---|---|---|
//! | cold 31-day summary, `PostgresStore` (`period_stats` + sketches) | 3.03 ms | 3.57 ms |
//! | the seeds' raw SQL over the same rows (6 queries, concurrent) | 442 ms | 5.55 s |
//! | ratio | 146× | 1,555× |
//! | same summary with exact unique users (`COUNT(DISTINCT)` on raw rows) | 240 ms | 1.93 s |
//! | ingest, batch API, 1 caller | 92,638 events/s | 60,662 events/s |
//! | ingest, row-by-row `INSERT`, 1 connection (autocommit, 20,000 events) | 2,846 events/s | 2,892 events/s |
//! | ratio | 32.6× | 21.0× |
//! | ingest, batch API, 2 concurrent callers | 143,899 events/s | 65,348 events/s |
//! | ingest, row-by-row `INSERT`, 2 connections | 4,221 events/s | 4,108 events/s |
//! | ratio | 34.1× | 15.9× |
//! | sketch vs exact unique users, 1 / 7 / 31 / 90 days | 0.03 / 0.04 / 0.19 / 0.17% | 0.38 / 0.16 / 0.17 / 0.17% |
//!
//! The ingest goal (≥ 150k events/s) is not reached: 144k at 1M events with two callers, 93k
//! with one, 65k at 10M. What is left per 10,000-event batch at 1M is mostly index
//! maintenance the schema requires — about 17 ms to claim ids in the ledger and 40 ms to `COPY`
//! into `events` (two-thirds of it the `(tenant_id, ts)` btree, whether rows arrive sorted or
//! not), 6 ms for `period_stats`, 4 ms to commit — with PostgreSQL busy on both cores at two
//! callers (a third caller adds nothing). At 10M events the indexes outgrow the stock 128 MB of
//! shared buffers: with `shared_buffers = 2GB` (same run otherwise) two callers ingest 80,977
//! events/s instead of 65,348 and one caller the same 59,825; at 1M the setting changes nothing. The first version of this store ingested 20,447 events/s at 1M and 11,080 at
//! 10M; the changes and what each gained are in the sections above.
mod compact;
mod config;
mod error;
mod events;
mod ingest;
mod partitions;
mod rebuild;
mod registry;
mod sketch;
mod stats;
mod store;
mod summary;

pub use config::PostgresConfig;
pub use store::PostgresStore;

/// The embedded schema migrations, for running them yourself (see the crate docs).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
