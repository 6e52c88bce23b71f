//! [`Record`]: a session as the cluster keeps it (the hash `{p}:s:{session}`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::UserId;

/// One session's shared state: enough for any node to resume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The user it is logged in as.
    pub user: Option<UserId>,
    /// Its login generation (the token names it).
    pub generation: u64,
    /// When it was made (unix ms).
    pub created: u64,
    /// The groups it is in.
    pub groups: Vec<String>,
}

impl Record {
    /// How old the session is now.
    pub fn age(&self) -> Duration {
        Duration::from_millis(unix_ms().saturating_sub(self.created))
    }
}

/// Now, in ms since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
