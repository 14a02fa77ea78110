//! The summary path: validate → degrade → cache → (single flight) store → assemble, with stale
//! serving when the store cannot answer.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Analytics;
use super::summary_json::{SharedJson, SummaryJson};
use super::tenant_stats::Answered;
use crate::cache::{CacheEntry, CacheHit, CacheKey, Freshness, TagVersions};
use crate::clock::{delta, elapsed};
use crate::error::{Error, Result};
use crate::model::TenantId;
use crate::query::{Query, QueryPlan, Summary, SummaryBody, SummaryMetadata, SummaryRequest};
use crate::resilience::{Degradation, Priority};

/// How many decoded cached answers [`Analytics`] keeps (see `decoded`).
const DECODED_MEMO_ENTRIES: usize = 4096;

/// What a summary entry in the cache holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CachedSummary {
    body: SummaryBody,
    unique_users_approximate: bool,
    /// The JSON of `body`, rendered on first use and kept with the memoized decode, so a cached
    /// answer is serialized once, not on every hit (see [`Analytics::summary_json_with`]).
    #[serde(skip)]
    body_json: OnceLock<Arc<[u8]>>,
}

impl CachedSummary {
    fn new(body: SummaryBody, unique_users_approximate: bool) -> Self {
        Self {
            body,
            unique_users_approximate,
            body_json: OnceLock::new(),
        }
    }

    /// `body` as a JSON object.
    fn body_json(&self) -> Result<&Arc<[u8]>> {
        if let Some(json) = self.body_json.get() {
            return Ok(json);
        }
        let json: Arc<[u8]> = serde_json::to_vec(&self.body)
            .map_err(|e| Error::Internal(format!("serializing a summary: {e}")))?
            .into();
        Ok(self.body_json.get_or_init(|| json))
    }

    /// What `serde_json::to_vec(self)` gives, built around [`body_json`](Self::body_json): a
    /// computed answer's body is serialized once, for its cache entry and its response alike.
    fn entry_json(&self) -> Result<Vec<u8>> {
        let body = self.body_json()?;
        let approximate: &[u8] = if self.unique_users_approximate {
            b",\"uniqueUsersApproximate\":true}"
        } else {
            b",\"uniqueUsersApproximate\":false}"
        };
        let mut json = Vec::with_capacity(body.len() + 40);
        json.extend_from_slice(b"{\"body\":");
        json.extend_from_slice(body);
        json.extend_from_slice(approximate);
        Ok(json)
    }
}

/// Per-request options of a summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SummaryOptions {
    /// Bypass the cache read (ignored under load, when cached answers are preferred).
    pub skip_cache: bool,
    /// The request's priority for load shedding.
    pub priority: Priority,
}

/// An answer and how it was obtained, before it is shaped into a response.
struct Answer {
    query: Query,
    served: Served,
    /// When answering started, in microseconds since the Unix epoch (timing the answer needs no
    /// calendar arithmetic).
    started_micros: i64,
    plan: Degradation,
    degraded: Vec<String>,
}

/// How an answer was obtained, for its metadata.
struct Served {
    cached: Arc<CachedSummary>,
    age: Option<Duration>,
    stale: bool,
}

impl Analytics {
    /// Validates `request` for `tenant` and answers it at the default priority.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the bad field; [`Error::Overloaded`] when shed;
    /// [`Error::Unavailable`] with a retry hint when the store cannot answer and nothing is
    /// cached.
    pub async fn summary(&self, tenant: &TenantId, request: &SummaryRequest) -> Result<Summary> {
        let query = Query::parse(tenant, request)?;
        self.summary_with(
            query,
            SummaryOptions {
                skip_cache: request.skip_cache,
                priority: Priority::DEFAULT,
            },
        )
        .await
    }

    /// Answers a validated query.
    ///
    /// # Behavior
    /// Under load the answer may be degraded (coarser granularity, no top pages or device
    /// stats, served stale from the cache); `_metadata.degraded` lists what was. When the store
    /// fails transiently or its breaker is open, a stale or invalidated cached answer is served
    /// with `stale: true` and its age.
    ///
    /// # Errors
    /// As [`summary`](Self::summary).
    pub async fn summary_with(&self, query: Query, options: SummaryOptions) -> Result<Summary> {
        let answer = self.answer(query, options).await?;
        let metadata = self.metadata(&answer);
        Ok(Summary {
            body: answer.served.cached.body.clone(),
            metadata,
        })
    }

    /// [`summary_with`](Self::summary_with)'s answer as JSON, for servers: the bytes
    /// `serde_json::to_vec(&summary)` would give, in two pieces ([`SummaryJson`]). The body of a
    /// cached answer is serialized once and shared, not copied, by every later hit; only
    /// `_metadata` is serialized per call.
    ///
    /// # Errors
    /// As [`summary`](Self::summary).
    pub async fn summary_json_with(&self, query: Query, options: SummaryOptions) -> Result<SummaryJson> {
        let answer = self.answer(query, options).await?;
        let metadata = self.metadata(&answer);
        let body = answer.served.cached.body_json()?;
        // `body` is a non-empty JSON object (`totalEvents` is always there): reopen it before its
        // closing brace and add `_metadata` as its last member, as `Summary`'s flatten would.
        let open = body
            .strip_suffix(b"}")
            .filter(|open| open.len() > 1)
            .ok_or_else(|| Error::Internal("a summary body is not a non-empty JSON object".into()))?;
        let mut tail = Vec::with_capacity(256);
        tail.extend_from_slice(b",\"_metadata\":");
        metadata.write_json(&mut tail);
        tail.push(b'}');
        Ok(SummaryJson {
            head: SharedJson {
                len: open.len(),
                bytes: Arc::clone(body),
            },
            tail,
        })
    }

    /// Validates, degrades, and answers from the cache or the store.
    async fn answer(&self, query: Query, options: SummaryOptions) -> Result<Answer> {
        let inner = &self.inner;
        let started_micros = inner.clock.now_micros();
        let started = DateTime::from_timestamp_micros(started_micros).unwrap_or_else(|| inner.clock.now());
        let guard = inner.load.admit(options.priority)?;
        let plan = guard.degradation();
        let mut degraded = Vec::new();
        let mut query = self.with_experiment_settings(query).await?;
        if plan.coarsen
            && let Some(coarser) = query.granularity().coarser()
        {
            degraded.push(format!("granularity:{}->{coarser}", query.granularity()));
            query = query.with_granularity(coarser)?;
        }
        if plan.drop_breakdowns && query.breakdowns() {
            degraded.push("breakdowns".to_owned());
            query = query.with_breakdowns(false);
        }

        // Borrowed: only a recomputation needs its own copy (a hit is most requests).
        let key = query.cache_key();
        let tags = inner.ttl.query_tags_of(&query, started);
        // A cache failure must not fail the query: without a lookup we answer from the store and
        // do not cache (we could not prove which tag versions the answer was computed under).
        // While invalidations are owed the cache may hold answers older than acknowledged writes:
        // neither read nor fill it (see `owed`).
        self.ensure_settling();
        let lookup = if inner.fence.cache_trusted() {
            inner.cache.get(query.tenant(), key, &tags, started).await.ok()
        } else {
            None
        };
        let (hit, versions) = match lookup {
            Some(l) => (l.hit, Some(l.tag_versions)),
            None => (None, None),
        };
        let hit = hit.filter(|_| !options.skip_cache || plan.prefer_cache);
        let cached = hit.as_ref().and_then(|h| self.decoded(key, h).map(|c| (h, c)));

        let served = match cached {
            Some((hit, cached)) if hit.freshness == Freshness::Fresh => Served {
                cached,
                age: Some(age(hit, started)),
                stale: false,
            },
            Some((hit, cached))
                if hit.freshness == Freshness::Stale && (plan.prefer_cache || inner.serving.stale_while_revalidate) =>
            {
                if plan.prefer_cache {
                    degraded.push("cache-preferred".to_owned());
                } else if let Some(versions) = versions {
                    self.refresh_in_background(query.clone(), key.clone(), versions);
                }
                Served {
                    cached,
                    age: Some(age(hit, started)),
                    stale: true,
                }
            }
            Some((hit, cached)) if plan.cache_only => {
                degraded.push("cache-only".to_owned());
                Served {
                    cached,
                    age: Some(age(hit, started)),
                    stale: hit.freshness != Freshness::Fresh,
                }
            }
            None if plan.cache_only => {
                return Err(Error::Overloaded {
                    message: "at CRITICAL load only cached answers are served at this priority".into(),
                    retry_after: Duration::from_secs(5),
                });
            }
            // Boxed: the computation's state is kilobytes; inlined, it would make every
            // request's future that large, hits included (allocated and copied per request).
            fallback => match Box::pin(self.compute_shared(&query, key.clone(), versions, false)).await {
                Ok(cached) => Served {
                    cached,
                    age: None,
                    stale: false,
                },
                Err(error) if error.is_transient() => match fallback {
                    Some((hit, cached)) if inner.serving.serve_stale_on_error => {
                        degraded.push("store-unavailable".to_owned());
                        Served {
                            cached,
                            age: Some(age(hit, started)),
                            stale: true,
                        }
                    }
                    _ => {
                        return Err(Error::Unavailable {
                            message: format!("no answer can be computed or served from cache: {error}"),
                            retry_after: Some(error.retry_after().unwrap_or(inner.serving.unavailable_retry_after)),
                        });
                    }
                },
                Err(error) => return Err(error),
            },
        };
        drop(guard);
        let answered = match (served.age.is_some(), served.stale) {
            (true, false) => Answered::Hit,
            (true, true) => Answered::StaleHit,
            (false, _) => Answered::Miss,
        };
        inner.tenant_counts.record(query.tenant(), answered);
        Ok(Answer {
            query,
            served,
            started_micros,
            plan,
            degraded,
        })
    }

    /// Computes through the single flight (when the cache answered) and caches the result.
    /// With `recheck`, the flight first looks at the cache again and uses a fresh entry if one
    /// has appeared (a refresh that lost the race to another one).
    async fn compute_shared(
        &self,
        query: &Query,
        key: CacheKey,
        versions: Option<TagVersions>,
        recheck: bool,
    ) -> Result<Arc<CachedSummary>> {
        let Some(versions) = versions else {
            return self.compute(query).await.map(|(cached, _)| Arc::new(cached));
        };
        let (this, owned) = (self.clone(), query.clone());
        // Keyed by the tag versions too: a reader that arrives after a write (which bumped a
        // version) never joins a computation that started before it.
        let flight_key = (key.clone(), versions.clone());
        let work = async move {
            if recheck && let Some(fresh) = this.fresh_entry(&owned, &key).await {
                return Ok(Arc::new(fresh));
            }
            this.compute_and_cache(owned, key, versions).await
        };
        self.inner.flights.run(flight_key, work).await
    }

    /// The decoded answer of a cache hit. A hit whose bytes are those of the last decode of the
    /// same key (the same allocation, which the memo keeps alive so its address cannot be
    /// reused, or equal content for backends that return copies) reuses that decode: a cached
    /// answer is parsed once, not on every hit. Keys hash the tenant in; and since a decode
    /// depends only on the bytes compared, even colliding keys could not mix tenants' answers.
    fn decoded(&self, key: &CacheKey, hit: &CacheHit) -> Option<Arc<CachedSummary>> {
        let memo = self.inner.decoded.pin();
        if let Some((bytes, cached)) = memo.get(key)
            && (Arc::ptr_eq(bytes, &hit.entry.value) || **bytes == *hit.entry.value)
        {
            return Some(cached.clone());
        }
        let cached = Arc::new(decode(hit)?);
        if memo.len() >= DECODED_MEMO_ENTRIES {
            // Crude but bounded: the next hits decode again and refill it.
            memo.clear();
        }
        memo.insert(key.clone(), (hit.entry.value.clone(), cached.clone()));
        Some(cached)
    }

    async fn fresh_entry(&self, query: &Query, key: &CacheKey) -> Option<CachedSummary> {
        let lookup = self
            .inner
            .cache
            .get(query.tenant(), key, &[], self.inner.clock.now())
            .await
            .ok()?;
        lookup
            .hit
            .filter(|h| h.freshness == Freshness::Fresh)
            .as_ref()
            .and_then(decode)
    }

    fn refresh_in_background(&self, query: Query, key: CacheKey, versions: TagVersions) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            // Failures are fine: the stale entry stays until a refresh succeeds.
            let _ = this.compute_shared(&query, key, Some(versions), true).await;
        });
    }

    async fn compute(&self, query: &Query) -> Result<(CachedSummary, DateTime<Utc>)> {
        let computed_at = self.inner.clock.now();
        let aggregates = self.inner.store.summary(&QueryPlan::new(query.clone())).await?;
        let cached = CachedSummary::new(
            SummaryBody::assemble(&aggregates, query),
            aggregates.unique_users_approximate,
        );
        Ok((cached, computed_at))
    }

    async fn compute_and_cache(
        &self,
        query: Query,
        key: CacheKey,
        versions: TagVersions,
    ) -> Result<Arc<CachedSummary>> {
        let (cached, computed_at) = self.compute(&query).await?;
        let inner = &self.inner;
        let ttl = inner.ttl.ttl(inner.ttl.tier(query.range().end(), computed_at));
        let fresh_until = computed_at + delta(ttl);
        let entry = CacheEntry {
            value: cached.entry_json()?.into(),
            created_at: computed_at,
            fresh_until,
            stale_until: fresh_until + delta(inner.ttl.stale_window),
            tags: versions,
        };
        // The answer is good even if caching it fails; the next request recomputes.
        let _ = inner.cache.set(query.tenant(), &key, entry, inner.clock.now()).await;
        Ok(Arc::new(cached))
    }

    fn metadata(&self, answer: &Answer) -> SummaryMetadata {
        let Answer {
            query,
            served,
            started_micros,
            plan,
            degraded,
        } = answer;
        // Zero if the clock stepped back meanwhile.
        let taken = Duration::from_micros(u64::try_from(self.inner.clock.now_micros() - started_micros).unwrap_or(0));
        SummaryMetadata {
            load_level: plan.level,
            cached: served.age.is_some(),
            stale: served.stale,
            age_ms: served.age.map(|a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX)),
            response_time: taken.as_secs_f64() * 1000.0,
            granularity: query.granularity(),
            timezone: query.timezone().name().to_owned(),
            degraded: degraded.clone(),
            unique_users_approximate: served.cached.unique_users_approximate,
        }
    }
}

fn decode(hit: &CacheHit) -> Option<CachedSummary> {
    serde_json::from_slice(&hit.entry.value).ok()
}

fn age(hit: &CacheHit, now: DateTime<Utc>) -> Duration {
    elapsed(hit.entry.created_at, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventType, Page, TenantId};
    use crate::query::{Aggregates, Granularity};

    #[test]
    fn a_cache_entry_built_around_the_body_is_what_serde_writes_and_reads() {
        let request = SummaryRequest::new("2024-06-01", "2024-06-03").group_by(Granularity::Day);
        let query = Query::parse(&TenantId::parse("acme").unwrap(), &request).unwrap();
        let aggregates = Aggregates {
            total_events: 5,
            unique_users: 2,
            unique_users_approximate: true,
            events_by_type: vec![(EventType::parse("click").unwrap(), 5)],
            time_series: vec![2, 3],
            top_pages: vec![(Page::parse("/a \"quoted\"").unwrap(), 5)],
            devices: Vec::new(),
            browsers: Vec::new(),
            countries: Vec::new(),
            variants: None,
        };
        for approximate in [true, false] {
            let cached = CachedSummary::new(SummaryBody::assemble(&aggregates, &query), approximate);
            let built = cached.entry_json().unwrap();
            assert_eq!(built, serde_json::to_vec(&cached).unwrap());
            let read: CachedSummary = serde_json::from_slice(&built).unwrap();
            assert_eq!(read.unique_users_approximate, approximate);
            assert_eq!(read.body_json().unwrap(), cached.body_json().unwrap());
        }
    }
}
