//! [`ParsedSummaries`]: summary requests parsed once per tenant and query string.
//!
//! A dashboard asks the same few URLs over and over; parsing the query string, validating it
//! into a [`Query`] and hashing its cache key showed as a fifth of the cached summary's own work
//! in the profile. Parsing is a pure function of (tenant, query string), so its successful
//! results are kept and reused; failures are not (they are cheap to repeat and should stay
//! visible). The memo is bounded: when full it is emptied and refills.

use std::sync::Arc;

use analytics_core::Comparison;
use analytics_core::model::TenantId;
use analytics_core::query::Query;

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
    parsed: papaya::HashMap<String, Arc<ParsedSummary>>,
}

impl ParsedSummaries {
    /// The parsed form of `raw` (the query string) for `tenant`, from the memo or parsed now.
    ///
    /// # Errors
    /// 400 naming the parameter, as [`params::parse`] and [`Query::parse`] report it.
    pub(crate) fn get_or_parse(&self, tenant: &TenantId, raw: Option<&str>) -> Result<Arc<ParsedSummary>, ApiError> {
        // The separator cannot occur in a tenant id, so distinct pairs never share a key.
        let key = format!("{}\u{1f}{}", tenant.as_str(), raw.unwrap_or_default());
        let parsed = self.parsed.pin();
        if let Some(found) = parsed.get(&key) {
            return Ok(found.clone());
        }
        let params: SummaryParams = params::parse(raw)?;
        let compare = params.compare;
        let request = params.request();
        let query = Query::parse(tenant, &request)?;
        // Hash the cache key now, once: clones keep it, so no request of this URL hashes it again.
        query.cache_key();
        let found = Arc::new(ParsedSummary {
            query,
            skip_cache: request.skip_cache,
            compare,
        });
        if parsed.len() >= ENTRIES {
            parsed.clear();
        }
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
