//! [`Cluster`]: how a node joins a cluster (the Redis URL, the key prefix, the heartbeat).

use std::time::Duration;

/// A cluster to join through Redis: give it to
/// [`AsyncServer::cluster`](crate::AsyncServer::cluster). Every node of one cluster needs the
/// same URL, prefix and private key ([`Router::private_key`](crate::Router::private_key)).
#[derive(Debug, Clone)]
#[must_use = "a cluster does nothing until a server is given it"]
pub struct Cluster {
    pub(crate) url: String,
    pub(crate) prefix: String,
    pub(crate) heartbeat: Duration,
    pub(crate) timeout: Duration,
}

impl Cluster {
    /// The cluster whose nodes meet in the Redis at `url` (`redis://host:port/`, with
    /// `redis://user:password@host:port/db` for ACLs). Keys are under the prefix `fluxon`, a node
    /// heartbeats every second and is taken for dead after two missed heartbeats; a Redis command
    /// waits at most a second.
    pub fn redis(url: impl Into<String>) -> Self {
        Cluster {
            url: url.into(),
            prefix: "fluxon".to_owned(),
            heartbeat: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        }
    }

    /// Puts every key and channel under `prefix` (`{prefix}:...`), so several apps (or several
    /// clusters) share one Redis.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How often a node says it is alive (at least 50 ms). The others take a node for dead when
    /// it has not said so for two heartbeats, and then let its sessions expire as idle ones do.
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// How long one Redis command (or making the connection) may take before it fails with
    /// [`ClusterError`](super::ClusterError) (at least 10 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Why this configuration cannot work, if it cannot.
    pub(crate) fn invalid(&self) -> Option<&'static str> {
        if self.prefix.is_empty() || self.prefix.contains(char::is_whitespace) {
            Some("the cluster prefix must be non-empty, without spaces")
        } else if self.heartbeat < Duration::from_millis(50) {
            Some("the cluster heartbeat must be at least 50 ms")
        } else if self.timeout < Duration::from_millis(10) {
            Some("the cluster timeout must be at least 10 ms")
        } else {
            None
        }
    }
}
