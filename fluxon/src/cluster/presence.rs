//! [`Presence`]: who is online in a group, across the cluster.

use crate::auth::{SessionId, UserId};

/// The sessions of a group connected now (on any node of a cluster), each with the user it is
/// logged in as: what [`ServerHandle::presence`](crate::ServerHandle::presence) answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Presence {
    /// Each session online in the group, and its user (`None`: not logged in).
    pub sessions: Vec<(SessionId, Option<UserId>)>,
}

impl Presence {
    /// The users online in the group, each once, in ascending order.
    pub fn users(&self) -> Vec<UserId> {
        let mut users: Vec<UserId> = self.sessions.iter().filter_map(|(_, u)| *u).collect();
        users.sort_unstable();
        users.dedup();
        users
    }
}
