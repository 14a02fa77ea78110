//! [`ParsedSummaries`]: summary requests parsed once per tenant and query string.
//!
//! A dashboard asks the same few URLs over and over; parsing the query string, validating it
//! into a [`Query`] and hashing its cache key showed as a fifth of the cached summary's own work
//! in the profile. Parsing is a pure function of (tenant, query string), so its successful
//! results are kept and reused; failures are not (they are cheap to repeat and should stay
//! visible). The memo is bounded: when full it is emptied and refills.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use analytics_core::Comparison;
use analytics_core::model::TenantId;
use analytics_core::query::Query;
use papaya::Equivalent;

use crate::error::ApiError;
use crate::params::{self, SummaryParams};

/// The most parsed requests kept.
const ENTRIES: usize = 4096;

/// A parsed, validated summary request.
#[derive(Debug)]
pub(crate) struct ParsedSummary {
    /// The validated query (its cache key computed once, on first use).
    pub(crate) query: Query,
    /// `skipCache`.
    pub(crate) skip_cache: bool,
    /// `compare`.
    pub(crate) compare: Option<Comparison>,
}

/// Parsed summary requests by tenant and query string.
#[derive(Debug, Default)]
pub(crate) struct ParsedSummaries {
    /// foldhash rather than SipHash (which showed in the profile); seeded per process, and the
    /// map is bounded (emptied when full), so a caller choosing query strings gains nothing.
    parsed: papaya::HashMap<Key, Arc<ParsedSummary>, foldhash::fast::RandomState>,
}

/// A tenant and a query string. Hashed as its two texts so that [`Lookup`] finds it without
/// building one (an allocation and a copy per request).
#[derive(Debug, PartialEq, Eq)]
struct Key {
    tenant: TenantId,
    raw: String,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Lookup(self.tenant.as_str(), &self.raw).hash(state);
    }
}

/// A borrowed [`Key`].
#[derive(Hash)]
struct Lookup<'a>(&'a str, &'a str);

impl Equivalent<Key> for Lookup<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.0 == key.tenant.as_str() && self.1 == key.raw
    }
}

impl ParsedSummaries {
    /// The parsed form of `raw` (the query string) for `tenant`, from the memo or parsed now.
    ///
    /// # Errors
    /// 400 naming the parameter, as [`params::parse`] and [`Query::parse`] report it.
    pub(crate) fn get_or_parse(&self, tenant: &TenantId, raw: Option<&str>) -> Result<Arc<ParsedSummary>, ApiError> {
        let raw = raw.unwrap_or_default();
        let parsed = self.parsed.pin();
        if let Some(found) = parsed.get(&Lookup(tenant.as_str(), raw)) {
            return Ok(found.clone());
        }
        let params: SummaryParams = params::parse(Some(raw))?;
        let compare = params.compare;
        let request = params.request();
        let query = Query::parse(tenant, &request)?;
        // Hash the cache key and make the cache tags now, once: clones keep them, so no request
        // of this URL makes them again.
        query.cache_key();
        query.calendar_tags();
        let found = Arc::new(ParsedSummary {
            query,
            skip_cache: request.skip_cache,
            compare,
        });
        if parsed.len() >= ENTRIES {
            parsed.clear();
        }
        let key = Key {
            tenant: tenant.clone(),
            raw: raw.to_owned(),
        };
        parsed.insert(key, found.clone());
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_parsed_once_per_tenant_and_failures_are_not_kept() {
        let memo = ParsedSummaries::default();
        let acme = TenantId::parse("acme").unwrap();
        let beta = TenantId::parse("beta").unwrap();
        let raw = Some("startDate=2024-01-01&endDate=2024-01-31&compare=previous");
        let first = memo.get_or_parse(&acme, raw).unwrap();
        assert!(Arc::ptr_eq(&first, &memo.get_or_parse(&acme, raw).unwrap()));
        let other = memo.get_or_parse(&beta, raw).unwrap();
        assert_eq!(other.query.tenant(), &beta, "tenants never share a parsed query");
        assert_eq!(first.compare, Some(Comparison::Previous));
        let bad = Some("startDate=2024-01-01");
        assert_eq!(
            memo.get_or_parse(&acme, bad).unwrap_err().field.as_deref(),
            Some("endDate")
        );
        assert_eq!(memo.parsed.pin().len(), 2);
        // A parsed query carries its cache key, so a request that clones it never hashes.
        let kept = format!("{:?}", first.query.clone());
        assert!(kept.contains("cache_key: OnceLock(CacheKey(\"summary:"), "{kept}");
    }
}
