//! Tenants and their API keys. Keys are stored only as SHA-256 hashes: they are random 256-bit
//! secrets, so a fast hash is enough (a password hash would only slow every request down).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::event::rfc3339_micros;
use super::text::TenantId;
use crate::error::{Error, Result};

/// A tenant, as stores keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Display name (1–200 characters).
    pub name: String,
    /// When it was created.
    #[serde(with = "rfc3339_micros")]
    pub created_at: DateTime<Utc>,
}

impl Tenant {
    /// A validated tenant.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a blank or over-long name.
    pub fn new(id: TenantId, name: impl Into<String>, created_at: DateTime<Utc>) -> Result<Self> {
        let name = name.into();
        if name.trim().is_empty() || name.chars().count() > 200 {
            return Err(Error::invalid("name", "must be 1–200 characters and not blank"));
        }
        Ok(Self { id, name, created_at })
    }
}

/// A plaintext API key. Shown to its owner once; only its [`ApiKeyHash`] is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A fresh random key: `ak_` followed by 64 hex digits (256 bits from the OS).
    ///
    /// # Errors
    /// [`Error::Internal`] if the operating system cannot provide randomness.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        Ok(Self(format!("ak_{}", hex(&bytes))))
    }

    /// Wraps a key a client presented (8–256 printable ASCII characters).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] on field `apiKey`.
    pub fn parse(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        if !(8..=256).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::invalid("apiKey", "must be 8–256 printable ASCII characters"));
        }
        Ok(Self(key))
    }

    /// The plaintext, to hand to its owner.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash stores keep.
    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// SHA-256 of an API key. Equality is constant-time (`subtle`), so comparing a presented key's
/// hash with a stored one leaks nothing through timing.
#[derive(Clone, Copy)]
pub struct ApiKeyHash(pub [u8; 32]);

impl PartialEq for ApiKeyHash {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for ApiKeyHash {}

// Consistent with the constant-time equality: equal hashes hash equally.
impl std::hash::Hash for ApiKeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl ApiKeyHash {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({})", self.to_hex())
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // A table, not `write!`: cache keys hex-encode a digest on every request.
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]])
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_and_hash_stably() {
        let a = ApiKey::generate().unwrap();
        let b = ApiKey::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 67);
        assert_eq!(a.hash(), ApiKey::parse(a.expose()).unwrap().hash());
        assert_ne!(a.hash(), b.hash());
        assert!(!format!("{a:?}").contains(&a.expose()[3..]));
    }

    #[test]
    fn known_hash() {
        let key = ApiKey::parse("test-api-key-12345").unwrap();
        assert_eq!(key.hash().to_hex().len(), 64);
        assert!(ApiKey::parse("short").is_err());
    }
}
