//! What the server has turned away and what it holds: counters kept as attacks happen, and a
//! snapshot of them ([`ServerStats`], from [`ServerHandle::stats`](super::ServerHandle::stats))
//! for operators, tests and the abuse benchmark.

use std::sync::atomic::AtomicU64;

use crate::admission::Counters;

fn read(counter: &AtomicU64) -> u64 {
    Counters::read(counter)
}

/// Connections refused, by the limit that refused them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusals {
    /// At the server-wide connection limit.
    pub connections: u64,
    /// At one peer address's connection limit.
    pub peer_connections: u64,
    /// At the server-wide handshake limit.
    pub handshakes: u64,
    /// At one peer address's handshake limit.
    pub peer_handshakes: u64,
}

impl Refusals {
    fn of(counters: &[AtomicU64; 4]) -> Refusals {
        Refusals {
            connections: read(&counters[0]),
            peer_connections: read(&counters[1]),
            handshakes: read(&counters[2]),
            peer_handshakes: read(&counters[3]),
        }
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.connections + self.peer_connections + self.handshakes + self.peer_handshakes
    }
}

/// A snapshot of what a server holds now and what it has turned away since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerStats {
    /// Connections open now (handshake done or not).
    pub connections: usize,
    /// Of those, still in their handshake.
    pub handshaking: usize,
    /// Distinct peer addresses connected now.
    pub peers: usize,
    /// Sessions remembered now.
    pub sessions: usize,
    /// Bytes of the memory budget in use now.
    pub budget_in_use: usize,
    /// How many large frames or replies have had to wait for the budget.
    pub budget_waits: u64,
    /// Password hashes running now.
    pub hashes_running: usize,
    /// Keys the login buckets remember now (addresses, usernames, both).
    pub login_keys: usize,
    /// Password logins that succeeded.
    pub logins_succeeded: u64,
    /// Password logins with a wrong username or password.
    pub logins_failed: u64,
    /// Password logins refused by a bucket before anything was checked.
    pub logins_throttled: u64,
    /// Password logins that found every hashing slot busy.
    pub logins_busy: u64,
    /// Calls answered `Throttled` (the session's call rate).
    pub calls_throttled: u64,
    /// Main-port connections refused.
    pub refused: Refusals,
    /// Cloud-port connections refused.
    pub cloud_refused: Refusals,
    /// Cloud requests whose grant or session token did not verify (nothing was written for them).
    pub cloud_grants_refused: u64,
    /// Cloud transfers cut for going slower than the minimum rate.
    pub cloud_transfers_too_slow: u64,
}

impl ServerStats {
    /// The counters' part of a snapshot (the caller fills in what it holds now).
    pub(crate) fn counted(c: &Counters) -> ServerStats {
        ServerStats {
            logins_succeeded: read(&c.logins_succeeded),
            logins_failed: read(&c.logins_failed),
            logins_throttled: read(&c.logins_throttled),
            logins_busy: read(&c.logins_busy),
            calls_throttled: read(&c.calls_throttled),
            refused: Refusals::of(&c.refused),
            cloud_refused: Refusals::of(&c.cloud_refused),
            cloud_grants_refused: read(&c.cloud_grants_refused),
            cloud_transfers_too_slow: read(&c.cloud_transfers_too_slow),
            ..ServerStats::default()
        }
    }
}
