//! UUID v7 ids taken from the injected clock, strictly increasing within one engine.

use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU64, Ordering};
use uuid::Uuid;

const COUNTER_BITS: u32 = 22;

/// Packs (milliseconds, counter) into one atomic so ids from all threads are strictly
/// increasing, even when the clock stands still or steps back.
#[derive(Debug)]
pub(crate) struct IdGen {
    state: AtomicU64,
    seed: u64,
}

impl IdGen {
    pub(crate) fn new() -> Self {
        let seed = Uuid::new_v4().as_u64_pair().0;
        IdGen { state: AtomicU64::new(0), seed }
    }

    pub(crate) fn next(&self, now: DateTime<Utc>) -> Uuid {
        let ms = u64::try_from(now.timestamp_millis()).unwrap_or(0) & ((1 << (64 - COUNTER_BITS)) - 1);
        let mut current = self.state.load(Ordering::Relaxed);
        let next = loop {
            let candidate = if ms > current >> COUNTER_BITS { ms << COUNTER_BITS } else { current + 1 };
            match self.state.compare_exchange_weak(current, candidate, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break candidate,
                Err(seen) => current = seen,
            }
        };
        let millis = next >> COUNTER_BITS;
        let counter = next & ((1 << COUNTER_BITS) - 1);
        let noise = splitmix(self.seed ^ next);
        // 48 bits time | version 7 | 12 bits counter high | variant | 10 bits counter low | 52 bits noise
        let hi = (millis << 16) | (0x7 << 12) | (counter >> 10);
        let lo = (0b10 << 62) | ((counter & 0x3ff) << 52) | (noise & ((1 << 52) - 1));
        Uuid::from_u64_pair(hi, lo)
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_even_when_the_clock_stands_still_or_steps_back() {
        let ids = IdGen::new();
        let t = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let a = ids.next(t);
        let b = ids.next(t);
        let c = ids.next(t - chrono::Duration::seconds(5));
        assert!(a < b && b < c);
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
    }
}
