//! Throttling buckets kept in Redis, so that the nodes of a cluster share them: N nodes do not
//! give an attacker N times the login guesses. The same shape as one node's buckets
//! (`admission::Bucket`): a rate of `count` per `per` with a burst of `count` (GCRA), and, when
//! asked with back-off, a penalty of the bucket's own wait doubled for each penalty since the
//! key was last quiet or forgiven, up to a ceiling. One Lua script per question: atomic across
//! nodes, one round trip.

use std::time::Duration;

use super::node::millis;
use super::{ClusterError, Node};

/// KEYS[1]: the key's hash (`tat`, `until`, `strikes`). ARGV: now (ms), emission interval
/// (ms), period (ms), back-off (1: penalties), ceiling (ms). Returns 0 (go) or the wait (ms).
const TAKE: &str = "local now = tonumber(ARGV[1]) \
    local t = tonumber(ARGV[2]) \
    local per = tonumber(ARGV[3]) \
    local backoff = ARGV[4] == '1' \
    local ceiling = tonumber(ARGV[5]) \
    local h = redis.call('HMGET', KEYS[1], 'tat', 'until', 'strikes') \
    local tat = tonumber(h[1]) or now \
    local until_ = tonumber(h[2]) or 0 \
    local strikes = tonumber(h[3]) or 0 \
    if backoff and until_ > now then return until_ - now end \
    if tat < now then tat = now end \
    if tat <= now and until_ + ceiling <= now then strikes = 0 end \
    local next_tat = tat + t \
    if next_tat - now <= per then \
        redis.call('HSET', KEYS[1], 'tat', next_tat, 'strikes', strikes) \
        redis.call('PEXPIRE', KEYS[1], per + ceiling) \
        return 0 \
    end \
    local wait = next_tat - per - now \
    if wait < 1 then wait = 1 end \
    if not backoff then return wait end \
    local penalty = math.floor(wait * (2 ^ math.min(strikes, 20))) \
    if penalty > math.max(ceiling, wait) then penalty = math.max(ceiling, wait) end \
    redis.call('HSET', KEYS[1], 'tat', tat, 'until', now + penalty, 'strikes', strikes + 1) \
    redis.call('PEXPIRE', KEYS[1], per + penalty + ceiling) \
    return penalty";

/// A bucket shared by the cluster: `count` per `per`, penalties up to `ceiling`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SharedBucket {
    /// Between two takes at the steady rate.
    interval: Duration,
    per: Duration,
    ceiling: Duration,
}

impl SharedBucket {
    /// `count` per `per`; `None` when that allows nothing (as the local buckets).
    pub fn new(count: u32, per: Duration, ceiling: Duration) -> Option<SharedBucket> {
        if count == 0 || per.is_zero() {
            return None;
        }
        Some(SharedBucket {
            interval: per / count,
            per,
            ceiling,
        })
    }

    /// Takes one for `key` (under the bucket's `name`): `Ok` to go, `Err(wait)` when spent.
    /// With `backoff`, a spent key gets a growing penalty.
    ///
    /// # Errors
    /// The outer `Err` when Redis cannot be asked (the caller falls back to its own buckets).
    pub async fn take(
        &self,
        node: &Node,
        name: &str,
        key: &str,
        backoff: bool,
    ) -> Result<Result<(), Duration>, ClusterError> {
        let wait: u64 = node
            .eval(
                TAKE,
                &node.throttle_key(name, key),
                &[
                    super::unix_ms().to_string(),
                    millis(self.interval).to_string(),
                    millis(self.per).to_string(),
                    if backoff { "1" } else { "0" }.to_owned(),
                    millis(self.ceiling).to_string(),
                ],
            )
            .await?;
        Ok(if wait == 0 {
            Ok(())
        } else {
            Err(Duration::from_millis(wait))
        })
    }

    /// `key` behaved: its penalties start over.
    pub async fn forgive(&self, node: &Node, name: &str, key: &str) {
        node.forget(&node.throttle_key(name, key)).await;
    }
}
