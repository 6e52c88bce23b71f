//! What a peer turned away at a limit reads, and the log line an operator sees for it.

use std::net::SocketAddr;

use super::throttle::LogEvery;
use crate::wire::Capacity;

/// The words a refused peer reads for each limit (each fits the smallest frame a client may
/// announce).
pub(crate) fn full_message(capacity: Capacity) -> &'static str {
    match capacity {
        Capacity::Connections => "the server is at its connection limit",
        Capacity::PeerConnections => "too many connections from your address",
        Capacity::Handshakes => "too many connections are in their handshake",
        Capacity::PeerHandshakes => "too many handshakes from your address",
    }
}

/// Logs refusals at most once a second (with how many there were), so a flood of connections
/// cannot become a flood of log lines.
pub(crate) struct RefusalLog(LogEvery);

impl RefusalLog {
    pub(crate) fn new() -> Self {
        RefusalLog(LogEvery::second())
    }

    pub(crate) fn note(&self, capacity: Capacity, peer: SocketAddr) {
        if let Some(also) = self.0.allow() {
            tracing::warn!(%peer, reason = full_message(capacity), also_refused = also, "connection refused");
        }
    }
}
