//! The node's counters of what it has turned away and let through, bumped where things happen (a
//! relaxed atomic add: no lock on any path). `server` reads them into its
//! [`ServerStats`](crate::server::ServerStats) snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::wire::Capacity;

/// Counters, bumped where things happen.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub logins_succeeded: AtomicU64,
    pub logins_failed: AtomicU64,
    pub logins_throttled: AtomicU64,
    pub logins_busy: AtomicU64,
    pub calls_throttled: AtomicU64,
    /// Main-port refusals, by [`slot`].
    pub refused: [AtomicU64; 4],
    /// Cloud-port refusals, by [`slot`].
    pub cloud_refused: [AtomicU64; 4],
    pub cloud_grants_refused: AtomicU64,
    pub cloud_transfers_too_slow: AtomicU64,
}

/// The slot of a [`Capacity`] in the refusal counters.
pub(crate) fn slot(capacity: Capacity) -> usize {
    match capacity {
        Capacity::Connections => 0,
        Capacity::PeerConnections => 1,
        Capacity::Handshakes => 2,
        Capacity::PeerHandshakes => 3,
    }
}

impl Counters {
    /// Adds one.
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads one.
    pub fn read(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
