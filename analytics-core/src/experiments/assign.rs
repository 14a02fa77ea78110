//! Deterministic assignment of users to variants.

use sha2::{Digest, Sha256};

use crate::model::{Experiment, ExperimentId, UserId, VariantKey};

/// Where `user` falls in `experiment`, uniformly in [0, 1): the first 53 bits of SHA-256 of the
/// experiment id, a 0x1f separator and the user id.
///
/// A cryptographic hash rather than a fast one because the value must never change — across
/// processes, restarts, platforms and versions of this library — and must not correlate between
/// experiments; SHA-256 is specified byte for byte. Changing this function reshuffles every
/// running experiment.
pub fn bucket(experiment: &ExperimentId, user: &UserId) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(experiment.as_str().as_bytes());
    hasher.update([0x1f]);
    hasher.update(user.as_str().as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// The variant `user` sees in `experiment`: deterministic (the same user always gets the same
/// variant, on every instance) and proportional to the variants' weights.
///
/// The variants split [0, 1) into consecutive ranges as long as their shares of the total
/// weight, in definition order; the user gets the variant whose range holds [`bucket`]. So
/// changing one weight moves only the users near the boundaries it shifts.
pub fn assign<'a>(experiment: &'a Experiment, user: &UserId) -> &'a VariantKey {
    let point = bucket(&experiment.id, user);
    let total: f64 = experiment.variants.iter().map(|v| v.weight).sum();
    let mut upper = 0.0;
    for variant in &experiment.variants {
        upper += variant.weight / total;
        if point < upper {
            return &variant.key;
        }
    }
    // Rounding can leave the cumulative share a hair below 1.
    &experiment
        .variants
        .last()
        .expect("a validated experiment has variants")
        .key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_values_in_the_unit_interval() {
        let experiment = ExperimentId::parse("exp_checkout").unwrap();
        let user = UserId::parse("user-42").unwrap();
        let b = bucket(&experiment, &user);
        assert!((0.0..1.0).contains(&b));
        assert_eq!(b, bucket(&experiment, &user));
        let other = ExperimentId::parse("exp_other").unwrap();
        assert_ne!(b, bucket(&other, &user));
    }
}
