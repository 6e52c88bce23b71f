//! Password logins under attack: the buckets that throttle attempts, and what a login reports.
//!
//! [`Request::login_with_password`](crate::Request::login_with_password) asks [`Logins::admit`]
//! before it looks at the database or hashes anything, so a throttled attempt costs a few map
//! lookups. The buckets and the bounds are described on [`LoginLimits`](super::LoginLimits).

use std::time::Duration;

use super::config::LoginLimits;
use crate::admission::{Bucket, LogEvery, PeerKey, Rate};
use crate::auth::{HashError, PasswordHasher};
use crate::cluster::{Node, SharedBucket};
use crate::db::DbError;

/// Why a password login did not log the session in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// No such user, or the wrong password (the two are not told apart).
    #[error("wrong username or password")]
    BadCredentials,
    /// Too many attempts for this username from this address, or from this address: the attempt
    /// was not looked at.
    #[error("too many login attempts; retry in {} s", retry_after.as_secs().max(1))]
    Throttled {
        /// When an attempt may be made again (it grows while attempts keep coming).
        retry_after: Duration,
    },
    /// Every password-hashing slot stayed busy for the whole wait; try again shortly.
    #[error("the server is busy checking passwords; try again in a moment")]
    Busy,
    /// The password check itself failed.
    #[error(transparent)]
    Hash(HashError),
    /// The user could not be looked up.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl LoginError {
    /// When to retry, for a throttled attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LoginError::Throttled { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A username as the buckets key it: a fixed-size digest, whatever its length.
pub(crate) type UserKey = [u8; 16];

/// The key of `username`.
pub(crate) fn user_key(username: &str) -> UserKey {
    let digest = blake3::hash(username.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest.as_bytes()[..16]);
    key
}

/// A username's key in hex (how the shared buckets name it).
fn hex(user: &UserKey) -> String {
    user.iter().map(|b| format!("{b:02x}")).collect()
}

/// A username as it appears in the log: escaped (a peer chose it) and cut to 64 characters.
pub(crate) fn shown(username: &str) -> String {
    let mut shown: String = username
        .chars()
        .take(64)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if username.chars().nth(64).is_some() {
        shown.push('…');
    }
    shown
}

/// The login side of a server: the hasher and the three buckets (and, for a cluster node, the
/// same three kept in Redis, shared by every node).
pub(crate) struct Logins {
    pub hasher: PasswordHasher,
    per_user_and_peer: Option<Bucket<(UserKey, PeerKey)>>,
    per_peer: Option<Bucket<PeerKey>>,
    per_user: Option<Bucket<UserKey>>,
    shared: [Option<SharedBucket>; 3],
    max_delay: Duration,
    /// Throttled attempts are logged at most once a second, with how many were not.
    pub throttled_log: LogEvery,
}

/// Whether an attempt may go ahead.
pub(crate) enum Admission {
    /// Yes, after waiting this long (the per-username slow-down; zero when not slowed).
    Go(Duration),
    /// No: throttled for this long.
    Throttled(Duration),
}

impl Logins {
    pub fn new(limits: &LoginLimits) -> Logins {
        let backoff = limits.max_backoff;
        Logins {
            hasher: PasswordHasher::new(
                limits.max_concurrent_hashes,
                limits.max_concurrent_hashes_per_peer,
                limits.hash_wait,
            ),
            per_user_and_peer: limits
                .per_user_and_peer
                .and_then(|rate| Bucket::new(rate, backoff)),
            per_peer: limits.per_peer.and_then(|rate| Bucket::new(rate, backoff)),
            per_user: limits.per_user.and_then(|rate| Bucket::new(rate, backoff)),
            shared: [limits.per_peer, limits.per_user_and_peer, limits.per_user].map(|rate| {
                rate.filter(Rate::is_valid)
                    .and_then(|rate| SharedBucket::new(rate.count, rate.per, backoff))
            }),
            max_delay: limits.per_user_max_delay,
            throttled_log: LogEvery::second(),
        }
    }

    /// Asks the buckets about one attempt for `user` from `peer`: the address's first, then the
    /// username's and address's (both refuse), then the username's alone (it only slows).
    pub fn admit(&self, peer: PeerKey, user: UserKey) -> Admission {
        if let Some(Err(wait)) = self.per_peer.as_ref().map(|b| b.admit(&peer)) {
            return Admission::Throttled(wait);
        }
        if let Some(Err(wait)) = self
            .per_user_and_peer
            .as_ref()
            .map(|b| b.admit(&(user, peer)))
        {
            return Admission::Throttled(wait);
        }
        let delay = match self.per_user.as_ref().map(|b| b.check(&user)) {
            Some(Err(wait)) => wait.min(self.max_delay),
            _ => Duration::ZERO,
        };
        Admission::Go(delay)
    }

    /// [`admit`](Self::admit) on a cluster node: the buckets every node shares, in Redis, so
    /// that N nodes do not give N times the guesses. Redis unreachable: this node's own buckets
    /// answer (throttled as on one node, never unthrottled).
    pub async fn admit_shared(&self, node: &Node, peer: PeerKey, user: UserKey) -> Admission {
        match self.ask_shared(node, peer, user).await {
            Ok(admission) => admission,
            Err(err) => {
                tracing::warn!(%err, "login throttling falls back to this node's buckets");
                self.admit(peer, user)
            }
        }
    }

    async fn ask_shared(
        &self,
        node: &Node,
        peer: PeerKey,
        user: UserKey,
    ) -> Result<Admission, crate::cluster::ClusterError> {
        let [per_peer, per_user_and_peer, per_user] = &self.shared;
        let (peer_key, user_key) = (peer.to_string(), hex(&user));
        if let Some(bucket) = per_peer {
            if let Err(wait) = bucket.take(node, "p", &peer_key, true).await? {
                return Ok(Admission::Throttled(wait));
            }
        }
        if let Some(bucket) = per_user_and_peer {
            let pair = format!("{user_key}@{peer_key}");
            if let Err(wait) = bucket.take(node, "up", &pair, true).await? {
                return Ok(Admission::Throttled(wait));
            }
        }
        let delay = match per_user {
            Some(bucket) => match bucket.take(node, "u", &user_key, false).await? {
                Err(wait) => wait.min(self.max_delay),
                Ok(()) => Duration::ZERO,
            },
            None => Duration::ZERO,
        };
        Ok(Admission::Go(delay))
    }

    /// `user` logged in from `peer`: that pair's back-off starts over (on every node).
    pub async fn succeeded(&self, node: Option<&Node>, peer: PeerKey, user: UserKey) {
        if let Some(bucket) = &self.per_user_and_peer {
            bucket.forgive(&(user, peer));
        }
        if let (Some(node), Some(bucket)) = (node, &self.shared[1]) {
            let pair = format!("{}@{peer}", hex(&user));
            bucket.forgive(node, "up", &pair).await;
        }
    }

    /// Forgets quiet keys.
    pub fn sweep(&self) {
        if let Some(b) = &self.per_user_and_peer {
            b.sweep();
        }
        if let Some(b) = &self.per_peer {
            b.sweep();
        }
        if let Some(b) = &self.per_user {
            b.sweep();
        }
    }

    /// Keys the buckets hold now.
    pub fn keys(&self) -> usize {
        self.per_user_and_peer.as_ref().map_or(0, Bucket::len)
            + self.per_peer.as_ref().map_or(0, Bucket::len)
            + self.per_user.as_ref().map_or(0, Bucket::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::Rate;

    fn peer(last: u8) -> PeerKey {
        PeerKey::new(std::net::IpAddr::from([127, 0, 0, last]), 64)
    }

    fn limits() -> LoginLimits {
        LoginLimits {
            per_user_and_peer: Some(Rate::per_minute(3)),
            per_peer: Some(Rate::per_minute(10)),
            per_user: Some(Rate::per_minute(5)),
            ..LoginLimits::default()
        }
    }

    #[test]
    fn a_flood_against_one_user_from_elsewhere_never_throttles_the_user_at_home() {
        let logins = Logins::new(&limits());
        let jack = user_key("jack");
        // From one address: a few tries, then throttled.
        let mut throttled = 0;
        for _ in 0..50 {
            if let Admission::Throttled(_) = logins.admit(peer(2), jack) {
                throttled += 1;
            }
        }
        assert_eq!(
            throttled, 47,
            "3 tries for jack from 127.0.0.2, then throttled"
        );
        // From many addresses: each gets its few, and jack's username bucket is spent.
        for last in 3..=20 {
            for _ in 0..10 {
                let _ = logins.admit(peer(last), jack);
            }
        }
        // Jack from his own address: slowed at most, never refused.
        match logins.admit(peer(1), jack) {
            Admission::Go(delay) => assert!(delay <= Duration::from_secs(1), "{delay:?}"),
            Admission::Throttled(wait) => panic!("jack locked out for {wait:?}"),
        }
    }

    #[test]
    fn spraying_many_usernames_from_one_address_is_throttled_by_address() {
        let logins = Logins::new(&limits());
        let admitted = (0..100)
            .filter(|n| {
                matches!(
                    logins.admit(peer(9), user_key(&format!("user{n}"))),
                    Admission::Go(_)
                )
            })
            .count();
        assert_eq!(admitted, 10);
        assert!(matches!(
            logins.admit(peer(10), user_key("user1")),
            Admission::Go(_)
        ));
    }
}
