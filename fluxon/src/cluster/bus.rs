//! [`Event`]: what nodes tell each other on the bus (a Redis pub/sub channel), encoded with
//! postcard. A node ignores what it sent itself and what it cannot read.

use serde::{Deserialize, Serialize};

use crate::auth::UserId;
use crate::wire::ErrorCode;

/// Whom a reverse request is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Target {
    /// Every connection of a user.
    User(UserId),
    /// Every connection of a session.
    Session([u8; 16]),
    /// Every connection of every session in a group.
    Group(String),
    /// Every connection.
    All,
}

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
    /// A session joined (`joined`) or left a group: the node serving it does the same.
    Group {
        from: [u8; 8],
        session: [u8; 16],
        group: String,
        joined: bool,
    },
    /// A node is leaving (shutting down).
    Goodbye { from: [u8; 8] },
    /// A reverse request for `target`: each node sends it to its own connections of `target`
    /// and, unless `id` is 0, answers [`Reply::Delivered`] with how many took it.
    Send {
        from: [u8; 8],
        id: u64,
        target: Target,
        name: String,
        payload: Vec<u8>,
    },
    /// An awaited reverse request for `target`: each node asks one of its connections of
    /// `target` (if it has one) and answers [`Reply::Answered`], within `wait_ms`.
    Call {
        from: [u8; 8],
        id: u64,
        target: Target,
        name: String,
        payload: Vec<u8>,
        wait_ms: u64,
    },
}

/// What a node answers the node that asked, on that node's own channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// How many connections of this node took a [`Event::Send`].
    Delivered { id: u64, count: u64 },
    /// How an [`Event::Call`] went on this node.
    Answered {
        id: u64,
        answer: Result<Vec<u8>, Refusal>,
    },
}

impl Reply {
    /// The request it answers.
    pub fn id(&self) -> u64 {
        match self {
            Reply::Delivered { id, .. } | Reply::Answered { id, .. } => *id,
        }
    }

    pub fn encode(&self) -> Option<Vec<u8>> {
        postcard::to_allocvec(self).ok()
    }

    pub fn decode(bytes: &[u8]) -> Option<Reply> {
        postcard::from_bytes(bytes).ok()
    }
}

/// Why a node has no reply to an awaited reverse request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Refusal {
    /// It has no connection of the target.
    Offline,
    /// Its client did not answer in time.
    Timeout,
    /// Its client answered with an error.
    Client { code: ErrorCode, message: String },
    /// Its client disconnected before answering.
    Disconnected,
    /// Its client's queue is full.
    Full,
}

impl Event {
    /// The node that sent it.
    pub fn from(&self) -> [u8; 8] {
        match self {
            Event::Login { from, .. }
            | Event::End { from, .. }
            | Event::EndUser { from, .. }
            | Event::Group { from, .. }
            | Event::Goodbye { from }
            | Event::Send { from, .. }
            | Event::Call { from, .. } => *from,
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
        let reply = Reply::Answered {
            id: 9,
            answer: Err(Refusal::Client {
                code: ErrorCode::UnknownView,
                message: "no".to_owned(),
            }),
        };
        assert_eq!(
            Reply::decode(&reply.encode().expect("encodes")),
            Some(reply)
        );
        assert_eq!(Reply::decode(&[0xff]), None);
    }
}
