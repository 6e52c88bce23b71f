//! What every clone of a client's handler shares with its link tasks: the link's state, the
//! session token, the calls in flight and the reverse-request handlers. The connection
//! (`connection.rs`), the link it runs (`link.rs`) and its reconnection (`reconnect.rs`) all
//! build on this, and none of them on each other's internals.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::pending::{PendingCalls, Up};
use super::reading::ReadSide;
use super::reverse::Handlers;
use super::ClientConfig;
use crate::armed::Stop;
use crate::wire::{Outbox, SessionTokenBytes};

/// The state of the connection, as callers see it.
#[derive(Clone)]
pub(super) enum LinkState {
    /// Connected: calls go into this queue.
    Up {
        outbox: Arc<Outbox>,
        read: Arc<ReadSide>,
        max_frame: usize,
    },
    /// Between connections.
    Down,
    /// Closed for good.
    Closed,
}

/// What every clone of a handler shares, and the link tasks too.
pub(super) struct Inner {
    /// The server's addresses (several: the nodes of a cluster), and which one the handler
    /// is on (or was last).
    addrs: Vec<String>,
    current: std::sync::atomic::AtomicUsize,
    pub(super) config: ClientConfig,
    pub(super) pending: Arc<PendingCalls>,
    pub(super) handlers: Handlers,
    link: watch::Sender<LinkState>,
    token: Mutex<Option<SessionTokenBytes>>,
    resumed: AtomicBool,
    connects: AtomicU64,
    pub(super) closed: Stop,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is one map or option operation: a poisoned lock holds consistent data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    /// The state of a handler for `addrs` (at least one), connected to `addrs[current]`.
    pub(super) fn new(addrs: Vec<String>, current: usize, config: ClientConfig) -> Self {
        let (link, _) = watch::channel(LinkState::Down);
        Inner {
            addrs,
            current: std::sync::atomic::AtomicUsize::new(current),
            config,
            pending: Arc::new(PendingCalls::default()),
            handlers: Handlers::default(),
            link,
            token: Mutex::new(None),
            resumed: AtomicBool::new(false),
            connects: AtomicU64::new(0),
            closed: Stop::default(),
        }
    }

    /// Publishes the link's new state, to the calls waiting on it and to watchers.
    pub(super) fn set_link(&self, state: LinkState) {
        let up = match &state {
            LinkState::Up {
                outbox,
                read,
                max_frame,
            } => Some(Up {
                outbox: Arc::clone(outbox),
                read: Arc::clone(read),
                max_frame: *max_frame,
            }),
            LinkState::Down | LinkState::Closed => None,
        };
        self.pending.set_link(up);
        self.link.send_replace(state);
    }

    /// The address the handler is on (or was last).
    pub(super) fn addr(&self) -> &str {
        let at = self.current.load(Ordering::Acquire);
        self.addrs.get(at).map_or("", String::as_str)
    }

    /// Every address, the current one first, then the ones after it in turn.
    pub(super) fn addrs_from_current(&self) -> impl Iterator<Item = (usize, &str)> {
        let at = self.current.load(Ordering::Acquire);
        let n = self.addrs.len();
        (0..n).map(move |k| {
            let i = (at + k) % n;
            (i, self.addrs[i].as_str())
        })
    }

    /// The handler is on `addrs[at]` now.
    pub(super) fn moved_to(&self, at: usize) {
        self.current.store(at, Ordering::Release);
    }

    pub(super) fn token(&self) -> Option<SessionTokenBytes> {
        *lock(&self.token)
    }

    pub(super) fn set_token(&self, token: SessionTokenBytes) {
        *lock(&self.token) = Some(token);
    }

    /// A connection was established with this token (`resumed`: its session was the one before).
    pub(super) fn opened(&self, token: SessionTokenBytes, resumed: bool) {
        *lock(&self.token) = Some(token);
        self.resumed.store(resumed, Ordering::Release);
        self.connects.fetch_add(1, Ordering::AcqRel);
    }

    /// The link's state, to watch.
    pub(super) fn subscribe(&self) -> watch::Receiver<LinkState> {
        self.link.subscribe()
    }

    /// Whether the link is up now.
    pub(super) fn is_up(&self) -> bool {
        matches!(&*self.link.borrow(), LinkState::Up { .. })
    }

    /// Whether the last handshake resumed the session of the one before.
    pub(super) fn resumed(&self) -> bool {
        self.resumed.load(Ordering::Acquire)
    }

    /// How many times a connection was established.
    pub(super) fn connects(&self) -> u64 {
        self.connects.load(Ordering::Acquire)
    }
}
