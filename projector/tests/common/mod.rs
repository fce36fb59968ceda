//! Test support shared by the projector's integration tests: literal ids, arbitrary actor
//! states, and random legal histories published per region and partition.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod arbitrary;
pub mod world;

use domain::{ModelId, ProviderId, RegionId};
use projector::ActorId;

pub fn region(raw: &str) -> RegionId {
    RegionId::parse(raw).unwrap()
}

pub fn model(raw: &str) -> ModelId {
    ModelId::parse(raw).unwrap()
}

pub fn provider(raw: &str) -> ProviderId {
    ProviderId::parse(raw).unwrap()
}

pub fn actor(raw_region: &str, partition: i32) -> ActorId {
    ActorId::new(region(raw_region), partition)
}

/// A tiny deterministic PRNG (splitmix64) for shuffles driven by a proptest-chosen seed.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.next().is_multiple_of(one_in)
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}
