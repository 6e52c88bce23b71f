//! [`Event`]: what nodes tell each other on the bus (a Redis pub/sub channel), encoded with
//! postcard. A node ignores what it sent itself and what it cannot read.

use serde::{Deserialize, Serialize};

use crate::auth::UserId;

/// One message on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Event {
    /// A session logged in (`user: Some`) or out (`None`); `generation` is its new login
    /// generation. A node serving that session takes the new login: on a login it closes the
    /// session's connections (as one node does for the session's other connections), on a logout
    /// it sends them the new token.
    Login {
        from: [u8; 8],
        session: [u8; 16],
        user: Option<UserId>,
        generation: u64,
    },
    /// A session was ended: every node forgets it and closes its connections.
    End { from: [u8; 8], session: [u8; 16] },
    /// Every session of a user was ended.
    EndUser { from: [u8; 8], user: UserId },
    /// A node is leaving (shutting down).
    Goodbye { from: [u8; 8] },
}

impl Event {
    /// The node that sent it.
    pub fn from(&self) -> [u8; 8] {
        match self {
            Event::Login { from, .. }
            | Event::End { from, .. }
            | Event::EndUser { from, .. }
            | Event::Goodbye { from } => *from,
        }
    }

    pub fn encode(&self) -> Option<Vec<u8>> {
        postcard::to_allocvec(self).ok()
    }

    pub fn decode(bytes: &[u8]) -> Option<Event> {
        postcard::from_bytes(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_and_garbage_reads_as_nothing() {
        let event = Event::Login {
            from: [1; 8],
            session: [2; 16],
            user: Some(-7),
            generation: 3,
        };
        let bytes = event.encode().expect("encodes");
        assert_eq!(Event::decode(&bytes), Some(event));
        assert_eq!(Event::decode(&[0xff, 0xff, 0xff]), None);
        assert_eq!(Event::decode(&[]), None);
    }
}
