//! Random streams derived from the one seed of a run, one per subsystem, so that a new
//! draw in one subsystem does not change the draws of every other.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Returns the stream called `name` of the run with `seed`. The same seed and name always
/// give the same stream; different names give independent streams.
pub fn stream(seed: u64, name: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(fnv1a(name.as_bytes()));
    rng
}

/// FNV-1a, 64 bits: a fixed hash that does not change between runs or Rust versions.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn stream_repeats_for_same_name() {
        let draw = |name: &str| -> Vec<u64> {
            let mut rng = stream(7, name);
            (0..4).map(|_| rng.random()).collect()
        };
        assert_eq!(draw("nemesis"), draw("nemesis"));
        assert_ne!(draw("nemesis"), draw("workload"));
    }
}
