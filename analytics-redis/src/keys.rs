//! Where everything lives in Redis.
//!
//! Every key of a tenant carries the hash tag `{t:<tenant>}`, so all of them — a cached entry,
//! the versions of its tags, the tenant's limiter state — map to one cluster slot, and each
//! script touches one slot only (Redis Cluster refuses scripts that span slots):
//!
//! - `<prefix>:{t:<tenant>}:e:<cache key>` — a cached entry (a hash: value, deadlines, and the
//!   version of each of its tags);
//! - `<prefix>:{t:<tenant>}:v:<tag>` — a tag's current version;
//! - `<prefix>:{t:<tenant>}:rl:<endpoint class>` — rate-limiter state;
//! - `<prefix>:invalidations` — the pub/sub channel of the two-tier cache.

use analytics_core::cache::{CacheKey, Tag};
use analytics_core::model::TenantId;
use analytics_core::resilience::EndpointClass;
use analytics_core::{Error, Result};

/// A validated key prefix, and the key names built on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Checks `prefix`: 1–64 characters, no braces (they would start a hash tag), no whitespace.
    pub(crate) fn new(prefix: &str) -> Result<Self> {
        let valid = !prefix.is_empty()
            && prefix.len() <= 64
            && prefix
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && c != '{' && c != '}');
        if !valid {
            return Err(Error::invalid(
                "prefix",
                "must be 1–64 characters without braces, whitespace or control characters",
            ));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    fn tenant(&self, tenant: &TenantId) -> String {
        format!("{}:{{t:{}}}", self.prefix, tenant.as_str())
    }

    /// The key of a cached entry.
    pub(crate) fn entry(&self, tenant: &TenantId, key: &CacheKey) -> String {
        format!("{}:e:{}", self.tenant(tenant), key.as_str())
    }

    /// What a tag's name is appended to for its version key (scripts build version keys of an
    /// entry's stored tags from it).
    pub(crate) fn version_prefix(&self, tenant: &TenantId) -> String {
        format!("{}:v:", self.tenant(tenant))
    }

    /// The key of a tag's version.
    pub(crate) fn version(&self, tenant: &TenantId, tag: &Tag) -> String {
        format!("{}{}", self.version_prefix(tenant), tag.as_str())
    }

    /// The key of a limiter's state.
    pub(crate) fn limiter(&self, tenant: &TenantId, class: EndpointClass) -> String {
        format!("{}:rl:{}", self.tenant(tenant), class.as_str())
    }

    /// The channel invalidations are broadcast on.
    pub(crate) fn channel(&self) -> String {
        format!("{}:invalidations", self.prefix)
    }

    /// The channel change notices travel on between instances.
    pub(crate) fn changes_channel(&self) -> String {
        format!("{}:changes", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_tenant_shares_its_hash_tag() {
        let keys = Keys::new("analytics").unwrap();
        let t = TenantId::parse("acme").unwrap();
        let tag = |k: String| k[k.find('{').unwrap()..=k.find('}').unwrap()].to_owned();
        let entry = keys.entry(&t, &CacheKey::from_text("summary:ab"));
        assert_eq!(entry, "analytics:{t:acme}:e:summary:ab");
        for key in [
            keys.version(&t, &Tag::tenant()),
            keys.limiter(&t, EndpointClass::Analytics),
        ] {
            assert_eq!(tag(key), tag(entry.clone()));
        }
        assert_eq!(keys.version(&t, &Tag::realtime()), "analytics:{t:acme}:v:realtime");
    }

    #[test]
    fn prefixes_cannot_start_a_hash_tag() {
        for bad in ["", "a{b", "a}b", "a b", &"x".repeat(65)] {
            assert!(
                matches!(Keys::new(bad), Err(Error::InvalidInput { ref field, .. }) if field == "prefix"),
                "{bad:?}"
            );
        }
    }
}
