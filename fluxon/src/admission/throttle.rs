//! Rate limits kept per key (a peer address, a username and address, a session), with back-off:
//! the one limiter behind throttled logins and calls per session.
//!
//! The buckets themselves are governor's (GCRA, one state per key). On top of them: a key whose
//! bucket is spent gets a penalty, and each further refusal after a penalty ran out doubles it,
//! up to a ceiling. A key in its penalty is refused without touching its bucket, so a flood against
//! a spent key costs a map lookup. Keys that have been quiet for a while are swept.

use std::collections::HashMap;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

/// How often something may happen: `count` times per `per`, in bursts of up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many.
    pub count: u32,
    /// In how long.
    pub per: Duration,
}

impl Rate {
    /// `count` per minute.
    pub const fn per_minute(count: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(60),
        }
    }

    /// `count` per second.
    pub const fn per_second(count: u32) -> Rate {
        Rate {
            count,
            per: Duration::from_secs(1),
        }
    }

    /// governor's quota for it; `None` if it allows nothing or everything at once.
    fn quota(&self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.count)?;
        let each = self.per.checked_div(self.count)?;
        Some(Quota::with_period(each)?.allow_burst(burst))
    }

    /// Whether it can be built (at least one, over a non-zero time).
    pub(crate) fn is_valid(&self) -> bool {
        self.quota().is_some()
    }
}

/// Lets a log line through at most once a second, and counts the ones held back, so a flood of
/// refusals cannot become a flood of log lines.
pub(crate) struct LogEvery {
    limiter: governor::DefaultDirectRateLimiter,
    held_back: std::sync::atomic::AtomicU64,
}

impl LogEvery {
    pub fn second() -> LogEvery {
        LogEvery {
            limiter: governor::DefaultDirectRateLimiter::direct(Quota::per_second(NonZeroU32::MIN)),
            held_back: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// `Some(lines held back since the last one)` when a line may go out now.
    pub fn allow(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        if self.limiter.check().is_ok() {
            Some(self.held_back.swap(0, Ordering::Relaxed))
        } else {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

struct Penalty {
    until: Instant,
    strikes: u32,
}

/// A rate limit per key, with back-off.
pub(crate) struct Bucket<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    penalties: Mutex<HashMap<K, Penalty>>,
    max_backoff: Duration,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is one map operation: a poisoned lock holds consistent data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<K: Hash + Eq + Clone> Bucket<K> {
    /// A bucket of `rate` per key whose penalties grow up to `max_backoff`; `None` if `rate`
    /// cannot be built.
    pub fn new(rate: Rate, max_backoff: Duration) -> Option<Self> {
        Some(Bucket {
            limiter: DefaultKeyedRateLimiter::keyed(rate.quota()?),
            penalties: Mutex::new(HashMap::new()),
            max_backoff,
        })
    }

    /// Takes one from `key`'s bucket without back-off: `Err` is how long until one is there.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.limiter
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Takes one from `key`'s bucket, with back-off: `Err` is how long the key must wait. A key in
    /// its penalty is refused at once; a key whose bucket is spent starts a penalty of the
    /// bucket's own wait, doubled for every penalty it has had since it was last quiet or
    /// forgiven, up to the ceiling.
    pub fn admit(&self, key: &K) -> Result<(), Duration> {
        let now = Instant::now();
        if let Some(penalty) = lock(&self.penalties).get(key) {
            if penalty.until > now {
                return Err(penalty.until - now);
            }
        }
        let wait = match self.check(key) {
            Ok(()) => return Ok(()),
            Err(wait) => wait.max(Duration::from_millis(1)),
        };
        let mut penalties = lock(&self.penalties);
        let penalty = penalties.entry(key.clone()).or_insert(Penalty {
            until: now,
            strikes: 0,
        });
        let doubled = wait.saturating_mul(1u32 << penalty.strikes.min(20));
        let backoff = doubled.min(self.max_backoff.max(wait));
        penalty.strikes = penalty.strikes.saturating_add(1);
        penalty.until = now + backoff;
        Err(backoff)
    }

    /// `key` behaved (a login succeeded): its back-off starts over.
    pub fn forgive(&self, key: &K) {
        lock(&self.penalties).remove(key);
    }

    /// Forgets keys that have been quiet: full buckets, and penalties over for longer than the
    /// ceiling.
    pub fn sweep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let now = Instant::now();
        let keep = self.max_backoff;
        lock(&self.penalties).retain(|_, p| p.until + keep > now);
    }

    /// Keys held now (buckets and penalties).
    pub fn len(&self) -> usize {
        self.limiter.len() + lock(&self.penalties).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_key_waits_and_others_do_not() {
        let bucket: Bucket<u32> =
            Bucket::new(Rate::per_minute(3), Duration::from_secs(600)).unwrap();
        for _ in 0..3 {
            bucket.admit(&1).unwrap();
        }
        let wait = bucket.admit(&1).unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}: one per 20 s"
        );
        // In its penalty: refused at once, for what is left of it.
        assert!(bucket.admit(&1).unwrap_err() <= wait);
        bucket.admit(&2).unwrap();
    }

    #[test]
    fn penalties_double_up_to_the_ceiling_and_forgiving_starts_over() {
        let bucket: Bucket<u32> =
            Bucket::new(Rate::per_second(1000), Duration::from_millis(40)).unwrap();
        let first = loop {
            if let Err(wait) = bucket.admit(&7) {
                break wait;
            }
        };
        assert!(first <= Duration::from_millis(2), "{first:?}");
        // Wait the penalty out each time: the next refusal's penalty is twice the last.
        let mut last = first;
        let mut grew = false;
        for _ in 0..12 {
            std::thread::sleep(last + Duration::from_millis(1));
            // Spend the refilled bucket, then look at the penalty given.
            let wait = loop {
                if let Err(wait) = bucket.admit(&7) {
                    break wait;
                }
            };
            grew |= wait > last;
            assert!(
                wait <= Duration::from_millis(40),
                "{wait:?} over the ceiling"
            );
            last = wait;
        }
        assert!(grew, "penalties never grew");
        assert!(
            last >= Duration::from_millis(30),
            "{last:?}: ceiling not reached"
        );
        bucket.forgive(&7);
        std::thread::sleep(Duration::from_millis(5));
        let after = loop {
            if let Err(wait) = bucket.admit(&7) {
                break wait;
            }
        };
        assert!(
            after <= Duration::from_millis(2),
            "{after:?}: forgiven starts small"
        );
    }

    #[test]
    fn quiet_keys_are_swept() {
        let bucket: Bucket<u32> =
            Bucket::new(Rate::per_second(1000), Duration::from_millis(1)).unwrap();
        for key in 0..100 {
            bucket.admit(&key).unwrap();
        }
        assert!(bucket.len() >= 100);
        std::thread::sleep(Duration::from_millis(20));
        bucket.sweep();
        assert_eq!(bucket.len(), 0);
    }

    #[test]
    fn rates_that_cannot_work_are_refused() {
        assert!(!Rate::per_minute(0).is_valid());
        assert!(!Rate {
            count: 1,
            per: Duration::ZERO
        }
        .is_valid());
        assert!(Rate::per_second(1).is_valid());
    }
}
