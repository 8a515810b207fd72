//! Delays between reconnect attempts: exponential from a minimum to a maximum, with jitter so that
//! many clients cut off together do not come back in lock-step and flatten the broker.
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    random: RandomState,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
            random: RandomState::new(),
        }
    }

    /// The next delay: a uniformly random point in the upper half of min·2^attempt (capped at max),
    /// so it never falls below half the nominal delay nor exceeds the maximum.
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self
            .min
            .saturating_mul(1u32.checked_shl(self.attempt).unwrap_or(u32::MAX))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = nominal / 2;
        let spread = (nominal - half).as_nanos() as u64;
        let r = self.random.hash_one((self.attempt, std::time::Instant::now()));
        half + Duration::from_nanos(if spread == 0 { 0 } else { r % (spread + 1) })
    }

    /// After a successful connection the next loss starts again from the minimum.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_within_jitter_and_stop_at_the_maximum() {
        let min = Duration::from_millis(100);
        let max = Duration::from_millis(1000);
        let mut b = Backoff::new(min, max);
        for nominal in [100u64, 200, 400, 800, 1000, 1000, 1000] {
            let d = b.next_delay();
            let nominal = Duration::from_millis(nominal);
            assert!(
                d >= nominal / 2 && d <= nominal,
                "{d:?} not in [{:?}, {nominal:?}]",
                nominal / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= min);
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let mut delays = std::collections::HashSet::new();
        for _ in 0..20 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
            delays.insert(b.next_delay());
        }
        assert!(
            delays.len() > 10,
            "20 clients drew only {} distinct delays",
            delays.len()
        );
    }

    #[test]
    fn many_attempts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_secs(60));
        for _ in 0..200 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
    }
}
