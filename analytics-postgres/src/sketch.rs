//! The unique-user sketch stored per (tenant, hour) and (tenant, day).
//!
//! A HyperLogLog++ from [`hyperloglockless`]: maintained, tested for accuracy at scale, and with a
//! sparse representation, so a quiet hour with a few hundred users costs a few hundred bytes
//! instead of a full register array (most stored hours are quiet). The hasher has a fixed seed so
//! sketches written by any process, at any time, merge. Precision 14 gives a standard error of
//! about 0.8% once a sketch is dense; sparse sketches are far more accurate.
//!
//! Stored forms: a sparse sketch is encoded with `postcard` (the crate exposes serde, not a byte
//! format of its own); its first byte is postcard's `Some` tag, 1. A dense sketch is stored as
//! [`DENSE`] followed by its 2^14 registers, raw: `postcard` decodes a register array one byte
//! at a time through serde, which was a third of a cold month's summary (profiled), while the
//! raw form is a copy, and the union of many dense sketches a byte-wise maximum. (Dense sketches
//! written before this form start with postcard's `None` tag, 0, and still decode.)

use std::sync::OnceLock;

use analytics_core::Result;
use hyperloglockless::{DefaultHasher, HyperLogLog, HyperLogLogPlus};

use crate::error::corrupt;

/// Register-index bits: 2^14 registers, ~0.81% standard error when dense.
pub(crate) const PRECISION: u8 = 14;
/// Registers in a dense sketch.
const REGISTERS: usize = 1 << PRECISION;
/// The fixed hasher seed every sketch uses (changing it makes old sketches unmergeable).
const SEED: u128 = 0x0061_6e61_6c79_7469_6373_5f75_7365_7273;
/// First byte of the raw dense form (postcard's forms start with an `Option` tag, 0 or 1).
const DENSE: u8 = 2;

fn hasher() -> DefaultHasher {
    DefaultHasher::seeded(&SEED.to_be_bytes())
}

/// A mergeable estimate of distinct users.
#[derive(Debug, Clone)]
pub(crate) enum UserSketch {
    /// HyperLogLog++: sparse while small, dense once as large as the register array.
    Plus(HyperLogLogPlus),
    /// A plain register array (what a union of many sketches becomes).
    Dense(HyperLogLog),
}

impl Default for UserSketch {
    fn default() -> Self {
        Self::Plus(HyperLogLogPlus::seeded(PRECISION, SEED))
    }
}

impl UserSketch {
    /// Decodes a stored sketch.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        if let Some((&DENSE, registers)) = bytes.split_first() {
            return Ok(Self::Dense(dense_from(registers.into())?));
        }
        let inner: HyperLogLogPlus = postcard::from_bytes(bytes).map_err(|e| corrupt("user sketch", e))?;
        if inner.precision() != PRECISION {
            return Err(corrupt("user sketch", format!("precision {}", inner.precision())));
        }
        Ok(Self::Plus(inner))
    }

    /// The stored form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let registers = match self {
            Self::Plus(plus) if plus.is_sparse() => {
                return postcard::to_allocvec(plus).expect("a sketch always serializes");
            }
            Self::Plus(plus) => registers_of(plus),
            Self::Dense(dense) => dense.parts().0.to_vec(),
        };
        let mut bytes = Vec::with_capacity(1 + REGISTERS);
        bytes.push(DENSE);
        bytes.extend_from_slice(&registers);
        bytes
    }

    /// Adds a user.
    pub(crate) fn insert(&mut self, user: &str) {
        match self {
            Self::Plus(plus) => plus.insert(user),
            Self::Dense(dense) => dense.insert(user),
        }
    }

    /// The union of the stored sketches `encoded`.
    ///
    /// # Errors
    /// A backend error when one of them is not a sketch.
    pub(crate) fn union_of<B: AsRef<[u8]>>(encoded: &[B]) -> Result<Self> {
        let stored: Vec<StoredSketch> = encoded
            .iter()
            .map(|bytes| StoredSketch::new(bytes.as_ref().into()))
            .collect();
        Self::union_of_stored(stored.iter())
    }

    /// The union of `sketches`.
    ///
    /// When any input is stored dense, the union is dense: the register arrays' byte-wise
    /// maximum. Sparse inputs contribute the register array [`StoredSketch::kept`] computed for
    /// them, or else are merged together first and contribute one array (converting each to
    /// registers costs more than one merge, unless the conversion is kept for later unions).
    /// Without dense inputs the sparse ones are merged by the crate: merging sparse sketches
    /// into a sparse one rewrites the growing merged list on every merge (measured: 4 ms for
    /// the 31 daily sketches of a month at 1M events), so when they are together larger than a
    /// dense sketch they are merged into a dense one instead, one pass over each input. Small
    /// unions stay sparse, and as exact as sparse sketches are.
    pub(crate) fn union_of_stored<'a>(sketches: impl Iterator<Item = &'a StoredSketch> + Clone) -> Result<Self> {
        if !sketches.clone().any(StoredSketch::is_raw_dense) {
            return Ok(Self::Plus(merge_sparse(sketches)?));
        }
        let mut merged = vec![0; REGISTERS];
        let mut pending = Vec::new();
        for sketch in sketches {
            match sketch.known_registers()? {
                Some(registers) => max_into(&mut merged, registers),
                None => pending.push(sketch),
            }
        }
        if !pending.is_empty() {
            let plus = to_dense(merge_sparse(pending.into_iter())?);
            max_into(&mut merged, &registers_of(&plus));
        }
        Ok(Self::Dense(dense_from(merged.into_boxed_slice())?))
    }

    /// Adds every user another sketch has seen (the tests' reference for the unions; ingestion
    /// sketches each period's users at once instead).
    #[cfg(test)]
    pub(crate) fn merge(&mut self, other: &UserSketch) {
        match (&mut *self, other) {
            (Self::Plus(mine), Self::Plus(theirs)) => union(mine, theirs),
            (Self::Dense(mine), Self::Dense(theirs)) => {
                mine.union(theirs).expect("sketches share one precision");
            }
            (Self::Dense(mine), Self::Plus(theirs)) => {
                let theirs = dense_from(registers_of(&to_dense(theirs.clone())).into_boxed_slice())
                    .expect("a register array of the right size");
                mine.union(&theirs).expect("sketches share one precision");
            }
            (Self::Plus(mine), Self::Dense(theirs)) => {
                let mut dense = dense_from(registers_of(&to_dense(mine.clone())).into_boxed_slice())
                    .expect("a register array of the right size");
                dense.union(theirs).expect("sketches share one precision");
                *self = Self::Dense(dense);
            }
        }
    }

    /// The estimated number of distinct users.
    pub(crate) fn estimate(&mut self) -> u64 {
        // Rounded, not truncated: the estimator's `count` truncates, and its sparse estimate of
        // one user is 0.99999….
        match self {
            Self::Plus(plus) => plus.raw_count().round() as u64,
            Self::Dense(dense) => dense.raw_count().round() as u64,
        }
    }

    /// An empty sketch in the dense representation (for tests).
    #[cfg(test)]
    fn dense_empty() -> Self {
        Self::Plus(dense_plus())
    }
}

/// A sketch as stored, with its register array computed at most once, when a dense union first
/// needs it (a sparse sketch's is its entries folded into 2^14 registers).
#[derive(Debug)]
pub(crate) struct StoredSketch {
    encoded: Box<[u8]>,
    registers: OnceLock<Box<[u8]>>,
}

impl StoredSketch {
    /// A stored sketch's bytes (checked when first read).
    pub(crate) fn new(encoded: Box<[u8]>) -> Self {
        Self {
            encoded,
            registers: OnceLock::new(),
        }
    }

    /// A stored sketch kept for many unions: a sparse one's register array is computed now,
    /// once, so no later dense union converts it again.
    ///
    /// # Errors
    /// A backend error when the bytes are not a sketch.
    pub(crate) fn kept(encoded: Box<[u8]>) -> Result<Self> {
        let sketch = Self::new(encoded);
        if !sketch.is_raw_dense() {
            let registers = match UserSketch::decode(&sketch.encoded)? {
                UserSketch::Plus(plus) => registers_of(&to_dense(plus)).into_boxed_slice(),
                // Only the raw dense form (ruled out above) decodes to `Dense`.
                UserSketch::Dense(_) => return Err(corrupt("user sketch", "an unexpected dense form")),
            };
            let _ = sketch.registers.set(registers);
        }
        Ok(sketch)
    }

    /// About the bytes it holds.
    pub(crate) fn weight(&self) -> usize {
        self.encoded.len() + self.registers.get().map_or(0, |r| r.len())
    }

    fn is_raw_dense(&self) -> bool {
        self.encoded.first() == Some(&DENSE)
    }

    /// The dense register array, when stored raw or computed by [`kept`](Self::kept).
    fn known_registers(&self) -> Result<Option<&[u8]>> {
        if let Some((&DENSE, registers)) = self.encoded.split_first() {
            if registers.len() == REGISTERS {
                return Ok(Some(registers));
            }
            return Err(corrupt("user sketch", "a dense sketch of the wrong size"));
        }
        Ok(self.registers.get().map(|r| &r[..]))
    }
}

/// Merges sketches that are not stored raw dense: into a sparse sketch while the inputs are
/// together smaller than a register array, else into a dense HyperLogLog++.
fn merge_sparse<'a>(sketches: impl Iterator<Item = &'a StoredSketch> + Clone) -> Result<HyperLogLogPlus> {
    let sparse_total: usize = sketches.clone().map(|sketch| sketch.encoded.len()).sum();
    let mut plus = if sparse_total > REGISTERS {
        dense_plus()
    } else {
        HyperLogLogPlus::seeded(PRECISION, SEED)
    };
    for sketch in sketches {
        match UserSketch::decode(&sketch.encoded)? {
            UserSketch::Plus(other) => union(&mut plus, &other),
            // Only the raw dense form (kept out by the callers) decodes to `Dense`.
            UserSketch::Dense(_) => return Err(corrupt("user sketch", "an unexpected dense form")),
        }
    }
    Ok(plus)
}

/// Raises each register of `merged` to `other`'s.
fn max_into(merged: &mut [u8], other: &[u8]) {
    for (mine, theirs) in merged.iter_mut().zip(other) {
        *mine = (*mine).max(*theirs);
    }
}

fn union(mine: &mut HyperLogLogPlus, theirs: &HyperLogLogPlus) {
    mine.union(theirs)
        .expect("sketches share one precision (checked at decode)");
}

/// `plus` in its dense representation.
fn to_dense(plus: HyperLogLogPlus) -> HyperLogLogPlus {
    if plus.is_sparse() {
        let mut dense = dense_plus();
        union(&mut dense, &plus);
        dense
    } else {
        plus
    }
}

/// The serde form `HyperLogLogPlus` derives (its three fields in order), through which its
/// dense representation is built and read: the crate offers no constructor or accessor for it.
#[derive(serde::Serialize, serde::Deserialize)]
struct PlusForm<D> {
    /// Always `None` here, so its type is never read.
    sparse: Option<()>,
    dense: Option<D>,
    hasher: DefaultHasher,
}

/// An empty HyperLogLog++ in the dense representation.
fn dense_plus() -> HyperLogLogPlus {
    let form = PlusForm {
        sparse: None,
        dense: Some(HyperLogLog::seeded(PRECISION, SEED)),
        hasher: hasher(),
    };
    let bytes = postcard::to_allocvec(&form).expect("a sketch always serializes");
    postcard::from_bytes(&bytes).expect("the dense form decodes")
}

/// The registers of a dense HyperLogLog++ (read through its serde form).
fn registers_of(dense: &HyperLogLogPlus) -> Vec<u8> {
    let bytes = postcard::to_allocvec(dense).expect("a sketch always serializes");
    let form: PlusForm<HyperLogLog> = postcard::from_bytes(&bytes).expect("a dense sketch's form decodes");
    let dense = form.dense.expect("a dense sketch has registers");
    dense.parts().0.to_vec()
}

/// A dense sketch from its registers: the zero count and the harmonic sum the estimator keeps
/// are recomputed from them.
fn dense_from(registers: Box<[u8]>) -> Result<HyperLogLog> {
    if registers.len() != REGISTERS {
        return Err(corrupt("user sketch", format!("{} registers", registers.len())));
    }
    if let Some(bad) = registers.iter().find(|&&r| r > 64 - PRECISION + 1) {
        return Err(corrupt("user sketch", format!("register value {bad}")));
    }
    let zeros = registers.iter().filter(|&&r| r == 0).count();
    let inverse_powers: [f64; 64] = std::array::from_fn(|r| (-(r as f64)).exp2());
    let sum = registers.iter().map(|&r| inverse_powers[usize::from(r)]).sum();
    Ok(HyperLogLog::from_parts(registers, hasher(), zeros, sum))
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
    fn dense_sketches_are_stored_raw_and_mix_with_sparse_and_older_forms() {
        let mut big = UserSketch::default();
        for i in 0..20_000 {
            big.insert(&format!("user-{i}"));
        }
        let raw = big.encode();
        assert_eq!((raw[0], raw.len()), (DENSE, 1 + REGISTERS));
        let UserSketch::Plus(plus) = &big else {
            panic!("inserted into a Plus")
        };
        let older = postcard::to_allocvec(plus).unwrap();
        assert_eq!(older[0], 0, "postcard's None tag: an older dense sketch");
        let mut small = UserSketch::default();
        for i in 19_000..21_000 {
            small.insert(&format!("user-{i}"));
        }
        let sparse = small.encode();
        assert_eq!(sparse[0], 1);
        let expected = big.estimate();
        for inputs in [vec![raw.clone()], vec![older.clone()], vec![raw.clone(), older.clone()]] {
            assert_eq!(UserSketch::union_of(&inputs).unwrap().estimate(), expected);
        }
        let mut all = UserSketch::union_of(&[raw.clone(), sparse.clone(), older]).unwrap();
        let mut by_merge = UserSketch::decode(&raw).unwrap();
        by_merge.merge(&UserSketch::decode(&sparse).unwrap());
        let n = all.estimate() as f64;
        assert!((n - 21_000.0).abs() / 21_000.0 < 0.02, "{n}");
        assert_eq!(by_merge.estimate(), all.estimate());
        // Round trip of a union (what compaction writes).
        assert_eq!(UserSketch::decode(&all.encode()).unwrap().estimate(), all.estimate());
        let mut wrong = raw;
        wrong[1] = 99;
        assert!(UserSketch::decode(&wrong).is_err());
    }

    #[test]
    fn kept_sparse_sketches_union_as_the_others_do() {
        let sketch_of = |users: std::ops::Range<u32>| {
            let mut s = UserSketch::default();
            for u in users {
                s.insert(&format!("user-{u}"));
            }
            s.encode()
        };
        let dense = sketch_of(0..20_000);
        let sparse = [
            sketch_of(19_000..21_000),
            sketch_of(30_000..30_400),
            sketch_of(40_000..42_000),
        ];
        assert_eq!(dense[0], DENSE);
        assert!(sparse.iter().all(|s| s[0] == 1), "sparse forms");
        let plain: Vec<StoredSketch> = std::iter::once(&dense)
            .chain(&sparse)
            .map(|b| StoredSketch::new(b.clone().into()))
            .collect();
        let kept: Vec<StoredSketch> = std::iter::once(&dense)
            .chain(&sparse)
            .map(|b| StoredSketch::kept(b.clone().into()).unwrap())
            .collect();
        assert!(kept[1].weight() > REGISTERS, "a kept sparse sketch holds its registers");
        let mut mixed: Vec<&StoredSketch> = vec![&kept[0], &plain[1], &kept[2], &plain[3]];
        let want = UserSketch::union_of_stored(plain.iter()).unwrap().estimate();
        assert!((want as f64 - 23_400.0).abs() / 23_400.0 < 0.02, "{want}");
        assert_eq!(UserSketch::union_of_stored(kept.iter()).unwrap().estimate(), want);
        assert_eq!(
            UserSketch::union_of_stored(mixed.iter().copied()).unwrap().estimate(),
            want
        );
        mixed.reverse();
        assert_eq!(
            UserSketch::union_of_stored(mixed.iter().copied()).unwrap().estimate(),
            want
        );
        assert!(StoredSketch::kept(vec![1, 255, 255].into()).is_err());
    }

    #[test]
    fn garbage_is_a_backend_error() {
        assert!(UserSketch::decode(b"\xff\xff\xff").is_err());
    }
}
