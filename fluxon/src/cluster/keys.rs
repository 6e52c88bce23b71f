//! The names of the cluster's keys and channels, all under one prefix (the table in the
//! module doc).

use crate::auth::{SessionId, UserId};

use super::NodeId;

/// Key and channel names under a prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// String: a random mark set once per data set, so a node that lost Redis for a while can
    /// tell a Redis that lost its data (a new mark) from one that did not.
    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.prefix)
    }

    /// Sorted set: node id -> last heartbeat (unix ms).
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// The channel every node listens on.
    pub fn bus(&self) -> String {
        format!("{}:bus", self.prefix)
    }

    /// The channel a node hears its replies on.
    pub fn node_channel(&self, node: &NodeId) -> String {
        format!("{}:to:{node}", self.prefix)
    }

    /// Hash: one session's record.
    pub fn session(&self, id: &SessionId) -> String {
        self.session_hex(&hex(id))
    }

    /// The record of the session whose id is `hex` (as sets hold it).
    pub fn session_hex(&self, hex: &str) -> String {
        format!("{}:s:{hex}", self.prefix)
    }

    /// Set: the sessions in a group (their ids in hex).
    pub fn group(&self, group: &str) -> String {
        format!("{}:g:{group}", self.prefix)
    }

    /// Set: the groups a session is in.
    pub fn session_groups(&self, hex: &str) -> String {
        format!("{}:sg:{hex}", self.prefix)
    }

    /// Hash: the state of one key of a shared throttling bucket.
    pub fn throttle(&self, bucket: &str, key: &str) -> String {
        format!("{}:lt:{bucket}:{key}", self.prefix)
    }

    /// String: which node delivers a user's mailbox now (a lease).
    pub fn mailbox(&self, user: UserId) -> String {
        format!("{}:mb:{user}", self.prefix)
    }

    /// Set: the sessions a user is logged in on (their ids' 16 bytes).
    pub fn user_sessions(&self, user: UserId) -> String {
        format!("{}:u:{user}", self.prefix)
    }

    /// Set: the sessions connected on a node (their ids' 16 bytes).
    pub fn node_sessions(&self, node: &NodeId) -> String {
        format!("{}:n:{node}:s", self.prefix)
    }
}

/// A session id in hex: how keys name it and sets hold it.
pub(crate) fn hex(id: &SessionId) -> String {
    id.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}
