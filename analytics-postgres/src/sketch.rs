//! The unique-user sketch stored per (tenant, hour) and (tenant, day).
//!
//! A HyperLogLog++ from [`hyperloglockless`]: maintained, tested for accuracy at scale, and with a
//! sparse representation, so a quiet hour with a few hundred users costs a few hundred bytes
//! instead of a full register array (most stored hours are quiet). The hasher has a fixed seed so
//! sketches written by any process, at any time, merge. Precision 14 gives a standard error of
//! about 0.8% once a sketch is dense; sparse sketches are far more accurate. Sketches are
//! encoded with `postcard` (compact, stable serde format) because the crate exposes serde, not a
//! byte format of its own.

use analytics_core::Result;
use hyperloglockless::{DefaultHasher, HyperLogLog, HyperLogLogPlus};

use crate::error::corrupt;

/// Register-index bits: 2^14 registers, ~0.81% standard error when dense.
pub(crate) const PRECISION: u8 = 14;
/// The fixed hasher seed every sketch uses (changing it makes old sketches unmergeable).
const SEED: u128 = 0x0061_6e61_6c79_7469_6373_5f75_7365_7273;

/// A mergeable estimate of distinct users.
#[derive(Debug, Clone)]
pub(crate) struct UserSketch(HyperLogLogPlus);

impl Default for UserSketch {
    fn default() -> Self {
        Self(HyperLogLogPlus::seeded(PRECISION, SEED))
    }
}

impl UserSketch {
    /// Decodes a stored sketch.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let inner: HyperLogLogPlus = postcard::from_bytes(bytes).map_err(|e| corrupt("user sketch", e))?;
        if inner.precision() != PRECISION {
            return Err(corrupt("user sketch", format!("precision {}", inner.precision())));
        }
        Ok(Self(inner))
    }

    /// The stored form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(&self.0).expect("a sketch always serializes")
    }

    /// Adds a user.
    pub(crate) fn insert(&mut self, user: &str) {
        self.0.insert(user);
    }

    /// The union of the stored sketches `encoded`.
    ///
    /// Merging sparse sketches into a sparse one rewrites the growing merged list on every merge
    /// (measured: 4 ms for the 31 daily sketches of a month at 1M events); when the inputs
    /// together are larger than a dense sketch, they are merged into a dense one instead, one
    /// pass over each input. Small unions stay sparse, and as exact as sparse sketches are.
    pub(crate) fn union_of(encoded: &[Vec<u8>]) -> Result<Self> {
        let total: usize = encoded.iter().map(Vec::len).sum();
        let mut merged = if total > 1 << PRECISION {
            Self::dense_empty()
        } else {
            Self::default()
        };
        for bytes in encoded {
            merged.merge(&Self::decode(bytes)?);
        }
        Ok(merged)
    }

    /// An empty sketch in the dense representation. The crate offers no constructor for it, so
    /// it is built through the serde form `HyperLogLogPlus` derives (its three fields in order),
    /// which `decode` already depends on.
    fn dense_empty() -> Self {
        #[derive(serde::Serialize)]
        struct DenseForm<'a> {
            sparse: Option<()>,
            dense: Option<&'a HyperLogLog>,
            hasher: &'a DefaultHasher,
        }
        let form = DenseForm {
            sparse: None,
            dense: Some(&HyperLogLog::seeded(PRECISION, SEED)),
            hasher: &DefaultHasher::seeded(&SEED.to_be_bytes()),
        };
        let bytes = postcard::to_allocvec(&form).expect("a sketch always serializes");
        Self::decode(&bytes).expect("the dense form decodes")
    }

    /// Adds every user another sketch has seen.
    pub(crate) fn merge(&mut self, other: &UserSketch) {
        self.0
            .union(&other.0)
            .expect("sketches share one precision (checked at decode)");
    }

    /// The estimated number of distinct users.
    pub(crate) fn estimate(&mut self) -> u64 {
        // Rounded, not truncated: the estimator's `count` truncates, and its sparse estimate of
        // one user is 0.99999….
        self.0.raw_count().round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_merges_and_estimates_within_one_percent() {
        let mut a = UserSketch::default();
        let mut b = UserSketch::default();
        for i in 0..60_000 {
            a.insert(&format!("user-{i}"));
        }
        for i in 40_000..100_000 {
            b.insert(&format!("user-{i}"));
        }
        let mut merged = UserSketch::decode(&a.encode()).unwrap();
        merged.merge(&UserSketch::decode(&b.encode()).unwrap());
        let estimate = merged.estimate() as f64;
        assert!((estimate - 100_000.0).abs() / 100_000.0 < 0.01, "{estimate}");
    }

    #[test]
    fn small_sketches_are_small_and_exact() {
        let mut s = UserSketch::default();
        for i in 0..300 {
            s.insert(&format!("u{i}"));
        }
        assert!(s.encode().len() < 3_000, "{}", s.encode().len());
        assert_eq!(s.estimate(), 300);
    }

    #[test]
    fn tiny_sketches_count_exactly_after_a_round_trip_and_merge() {
        let mut a = UserSketch::default();
        a.insert("u1");
        let mut merged = UserSketch::default();
        merged.merge(&UserSketch::decode(&a.encode()).unwrap());
        assert_eq!((a.estimate(), merged.estimate()), (1, 1));
    }

    #[test]
    fn large_unions_go_dense_and_agree_with_sparse_ones() {
        let days: Vec<UserSketch> = (0..31)
            .map(|d| {
                let mut s = UserSketch::default();
                for u in 0..2_000 {
                    s.insert(&format!("user-{}", (d * 700 + u) % 30_000));
                }
                s
            })
            .collect();
        let encoded: Vec<Vec<u8>> = days.iter().map(UserSketch::encode).collect();
        assert!(encoded.iter().map(Vec::len).sum::<usize>() > 1 << PRECISION);
        let mut dense = UserSketch::union_of(&encoded).unwrap();
        let mut sparse = UserSketch::default();
        for day in &days {
            sparse.merge(day);
        }
        let (d, s) = (dense.estimate() as f64, sparse.estimate() as f64);
        assert!((d - 23_000.0).abs() / 23_000.0 < 0.02, "{d}");
        assert!((d - s).abs() / s < 0.02, "{d} vs {s}");
        let mut empty = UserSketch::dense_empty();
        assert_eq!(empty.estimate(), 0);
    }

    #[test]
    fn garbage_is_a_backend_error() {
        assert!(UserSketch::decode(b"\xff\xff\xff").is_err());
    }
}
