//! Reads from a replica that are never older than the writes acknowledged before them.
//!
//! Before a summary or an event-log page is read from the replica, the primary's current WAL
//! position is read (`pg_current_wal_lsn()`: at or past the commit of every write acknowledged
//! so far, by any instance) and the replica's replayed position (`pg_last_wal_replay_lsn()`)
//! compared with it. A replica that has replayed that far answers; one that has not is asked
//! again every [`POLL`] up to the configured wait, and then the primary answers. So a read
//! sees every write acknowledged before it started — read-your-writes across instances — and
//! an answer the cache stores after it is never one a lagging replica computed: the cache's tag
//! versions were read before the position, so any write they reflect is included.
//!
//! The check costs one round trip to the primary and one to the replica per read that reaches
//! the store (cached answers reach neither). The primary's position moves with every tenant's
//! writes, so a replica behind by more than the wait under steady writes sends reads to the
//! primary. [`ReplicaReads::Lagging`] skips the check (the replica's lag is served as is).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use analytics_core::Result;
use sqlx::PgPool;

use crate::error;

/// How often a lagging replica is asked again while a read waits for it.
pub const POLL: Duration = Duration::from_millis(5);

/// What a read does about a replica's lag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaReads {
    /// Read the replica once it has replayed every write acknowledged before the read, waiting
    /// up to `wait` for it, else read the primary (the default, with 100 ms).
    Consistent {
        /// The longest a read waits for the replica before it reads the primary.
        wait: Duration,
    },
    /// Read the replica as it is: a summary may miss writes acknowledged a moment ago, and the
    /// cache may keep such an answer until its TTL.
    Lagging,
}

impl Default for ReplicaReads {
    fn default() -> Self {
        Self::Consistent {
            wait: Duration::from_millis(100),
        }
    }
}

/// How reads were served, for health reports and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplicaStats {
    /// Reads the replica answered (it had caught up, at once or within the wait).
    pub replica: u64,
    /// Reads the primary answered because the replica had not caught up within the wait.
    pub primary: u64,
}

/// The pools a read may use, and the policy choosing between them.
#[derive(Debug)]
pub(crate) struct Readers {
    write: PgPool,
    /// The replica, when one is configured.
    replica: Option<PgPool>,
    policy: ReplicaReads,
    served_by_replica: AtomicU64,
    served_by_primary: AtomicU64,
}

impl Readers {
    pub(crate) fn new(write: PgPool, replica: Option<PgPool>, policy: ReplicaReads) -> Self {
        Self {
            write,
            replica,
            policy,
            served_by_replica: AtomicU64::new(0),
            served_by_primary: AtomicU64::new(0),
        }
    }

    /// The pool a read should use now.
    ///
    /// # Errors
    /// Transient errors when the primary cannot say its position.
    pub(crate) async fn pool(&self) -> Result<&PgPool> {
        let Some(replica) = &self.replica else {
            return Ok(&self.write);
        };
        let ReplicaReads::Consistent { wait } = self.policy else {
            return Ok(replica);
        };
        let target: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&self.write)
            .await
            .map_err(|e| error::map("read the primary's WAL position", e))?;
        let started = Instant::now();
        loop {
            // A server not in recovery (no replay position) is as fresh as itself.
            let caught_up: std::result::Result<bool, _> =
                sqlx::query_scalar("SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, true)")
                    .bind(&target)
                    .fetch_one(replica)
                    .await;
            match caught_up {
                Ok(true) => {
                    self.served_by_replica.fetch_add(1, Ordering::Relaxed);
                    return Ok(replica);
                }
                // Behind (or unreachable): ask again until the wait is spent.
                _ if started.elapsed() + POLL <= wait => tokio::time::sleep(POLL).await,
                _ => {
                    self.served_by_primary.fetch_add(1, Ordering::Relaxed);
                    return Ok(&self.write);
                }
            }
        }
    }

    pub(crate) fn stats(&self) -> ReplicaStats {
        ReplicaStats {
            replica: self.served_by_replica.load(Ordering::Relaxed),
            primary: self.served_by_primary.load(Ordering::Relaxed),
        }
    }

    /// The replica pool, if any (for health details).
    pub(crate) fn replica(&self) -> Option<&PgPool> {
        self.replica.as_ref()
    }
}
