//! Memos of the registry — API key → tenant, experiment → conversion event type — so a request
//! answered from the cache never needs the store, and a store outage does not lock callers out
//! of cached answers.
//!
//! # Behavior
//! - A key's tenant is remembered for [`MemoPolicy::api_key_ttl`] (default 30 s): a revoked or
//!   reassigned key keeps working on an instance that saw it for at most that long.
//! - An unknown key is remembered as unknown for [`MemoPolicy::unknown_key_ttl`], and look-ups
//!   of keys not known to the memo are limited to [`MemoPolicy::unknown_key_lookups`] per second
//!   per process (GCRA), so a client guessing keys cannot hammer the store: past the limit it
//!   gets [`Error::Overloaded`] without a look-up.
//! - An experiment's conversion event type is remembered for [`MemoPolicy::experiment_ttl`];
//!   an update through this facade takes effect here at once, on other instances within the TTL.
//! - While the store fails transiently, a key or experiment confirmed within
//!   [`MemoPolicy::outage_grace`] keeps its last known answer, so cached and stale answers are
//!   still served; the store is asked again only a TTL later, so an outage costs one failed
//!   look-up per key per TTL, not one per request.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Analytics;
use crate::clock::{delta, elapsed};
use crate::error::{Error, Result};
use crate::model::{ApiKey, ApiKeyHash, EventType, ExperimentId, TenantId};
use crate::query::Query;
use crate::resilience::rate_limit::gcra_decide;

/// The most entries each memo holds; a full memo is emptied and refills from the store.
const MEMO_ENTRIES: usize = 16_384;

/// How long registry answers are remembered: API key → tenant for [`Analytics::authenticate`],
/// experiment settings for summaries filtered on an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoPolicy {
    /// How long a key's tenant is used without asking the store (default 30 s): the longest a
    /// revoked key keeps working on an instance that has seen it.
    pub api_key_ttl: Duration,
    /// How long an unknown key is refused without asking the store (default 10 s).
    pub unknown_key_ttl: Duration,
    /// Look-ups per second of keys the memo does not know (default 20, burst as many).
    pub unknown_key_lookups: u32,
    /// How long an experiment's conversion event type is used without asking the store
    /// (default 30 s).
    pub experiment_ttl: Duration,
    /// While the store fails transiently, answers seen within this long are still used
    /// (default 1 h).
    pub outage_grace: Duration,
}

impl Default for MemoPolicy {
    fn default() -> Self {
        Self {
            api_key_ttl: Duration::from_secs(30),
            unknown_key_ttl: Duration::from_secs(10),
            unknown_key_lookups: 20,
            experiment_ttl: Duration::from_secs(30),
            outage_grace: Duration::from_secs(3600),
        }
    }
}

/// An answer, when the store last gave it, and when to ask the store again.
#[derive(Debug, Clone)]
struct Seen<T> {
    value: T,
    /// When the store last confirmed it (the outage grace counts from here).
    at: DateTime<Utc>,
    /// Until then the answer is used without asking: a TTL after a confirmation, and as long
    /// again after a failed look-up, so an outage costs one slow look-up per TTL, not one per
    /// request.
    until: DateTime<Utc>,
}

impl<T> Seen<T> {
    fn confirmed(value: T, now: DateTime<Utc>, ttl: Duration) -> Self {
        Self {
            value,
            at: now,
            until: now + delta(ttl),
        }
    }

    fn fresh(&self, now: DateTime<Utc>) -> bool {
        now < self.until
    }
}

#[derive(Debug)]
pub(super) struct RegistryMemo {
    policy: MemoPolicy,
    keys: papaya::HashMap<ApiKeyHash, Seen<TenantId>, crate::FastHash>,
    unknown_keys: papaya::HashMap<ApiKeyHash, DateTime<Utc>, crate::FastHash>,
    /// GCRA state of the look-ups of keys the memo does not know.
    unknown_lookups: Mutex<u64>,
    experiments: papaya::HashMap<(TenantId, ExperimentId), Seen<Option<EventType>>, crate::FastHash>,
}

impl RegistryMemo {
    pub(super) fn new(policy: MemoPolicy) -> Self {
        Self {
            policy,
            keys: papaya::HashMap::with_hasher(crate::FastHash::default()),
            unknown_keys: papaya::HashMap::with_hasher(crate::FastHash::default()),
            unknown_lookups: Mutex::new(0),
            experiments: papaya::HashMap::with_hasher(crate::FastHash::default()),
        }
    }

    fn remember_experiment(
        &self,
        tenant: &TenantId,
        id: &ExperimentId,
        conversion: Option<EventType>,
        now: DateTime<Utc>,
    ) {
        let experiments = self.experiments.pin();
        if experiments.len() >= MEMO_ENTRIES {
            experiments.clear();
        }
        let seen = Seen::confirmed(conversion, now, self.policy.experiment_ttl);
        experiments.insert((tenant.clone(), id.clone()), seen);
    }

    /// Whether a look-up of an unknown key may go to the store now.
    fn admit_unknown_lookup(&self, now: DateTime<Utc>) -> bool {
        let limit = self.policy.unknown_key_lookups.max(1);
        let mut state = self.unknown_lookups.lock().unwrap_or_else(PoisonError::into_inner);
        let step = gcra_decide(*state, now.timestamp_micros(), limit, Duration::from_secs(1), limit);
        *state = step.state;
        step.decision.allowed
    }
}

impl Analytics {
    /// The tenant an API key belongs to, from the memo when it is fresh (see [`MemoPolicy`]).
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for an unknown key; [`Error::Overloaded`] when look-ups of
    /// unknown keys are over their limit; store errors when the store cannot answer and the key
    /// was not seen within the outage grace.
    pub async fn authenticate(&self, key: &ApiKey) -> Result<TenantId> {
        let memo = &self.inner.memo;
        let policy = memo.policy;
        let hash = key.hash();
        let now = self.inner.clock.now();
        let known = memo.keys.pin().get(&hash).cloned();
        if let Some(seen) = &known
            && seen.fresh(now)
        {
            return Ok(seen.value.clone());
        }
        if known.is_none() {
            if let Some(at) = memo.unknown_keys.pin().get(&hash)
                && elapsed(*at, now) < policy.unknown_key_ttl
            {
                return Err(unknown_key());
            }
            if !memo.admit_unknown_lookup(now) {
                return Err(Error::Overloaded {
                    message: "too many look-ups of unknown API keys".into(),
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        match self.inner.store.tenant_for_api_key(&hash).await {
            Ok(Some(tenant)) => {
                let keys = memo.keys.pin();
                if keys.len() >= MEMO_ENTRIES {
                    keys.clear();
                }
                keys.insert(hash, Seen::confirmed(tenant.clone(), now, policy.api_key_ttl));
                memo.unknown_keys.pin().remove(&hash);
                Ok(tenant)
            }
            Ok(None) => {
                memo.keys.pin().remove(&hash);
                let unknown = memo.unknown_keys.pin();
                if unknown.len() >= MEMO_ENTRIES {
                    unknown.clear();
                }
                unknown.insert(hash, now);
                Err(unknown_key())
            }
            Err(error) if error.is_transient() => match known {
                Some(seen) if elapsed(seen.at, now) < policy.outage_grace => {
                    let retry = Seen {
                        until: now + delta(policy.api_key_ttl),
                        ..seen.clone()
                    };
                    memo.keys.pin().insert(hash, retry);
                    Ok(seen.value)
                }
                _ => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// Remembers `id`'s conversion event type (after a create or update through this facade).
    pub(super) fn remember_experiment(&self, tenant: &TenantId, id: &ExperimentId, conversion: EventType) {
        let now = self.inner.clock.now();
        self.inner.memo.remember_experiment(tenant, id, Some(conversion), now);
    }

    /// Sets the conversion event type of a filtered experiment from its definition (default
    /// `CONVERSION` for experiments not registered), from the memo when it is fresh.
    pub(super) async fn with_experiment_settings(&self, query: Query) -> Result<Query> {
        let Some(id) = query.filters().experiment_id.clone() else {
            return Ok(query);
        };
        let memo = &self.inner.memo;
        let now = self.inner.clock.now();
        let memo_key = (query.tenant().clone(), id.clone());
        let known = memo.experiments.pin().get(&memo_key).cloned();
        let conversion = match known {
            Some(seen) if seen.fresh(now) => seen.value,
            known => match self.inner.store.get_experiment(query.tenant(), &id).await {
                Ok(found) => {
                    let conversion = found.map(|e| e.conversion_event_type);
                    memo.remember_experiment(query.tenant(), &id, conversion.clone(), now);
                    conversion
                }
                Err(error) if error.is_transient() => match known {
                    Some(seen) if elapsed(seen.at, now) < memo.policy.outage_grace => {
                        let retry = Seen {
                            until: now + delta(memo.policy.experiment_ttl),
                            ..seen.clone()
                        };
                        memo.experiments.pin().insert(memo_key, retry);
                        seen.value
                    }
                    _ => return Err(error),
                },
                Err(error) => return Err(error),
            },
        };
        Ok(match conversion {
            Some(t) => query.with_conversion_event_type(t),
            None => query,
        })
    }
}

fn unknown_key() -> Error {
    Error::Unauthenticated("unknown API key".into())
}
