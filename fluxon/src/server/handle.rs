//! `ServerHandle`: the running server as views and background tasks see it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::config::Limits;
use super::sessions::Sessions;
use crate::routing::Router;

/// State shared by the accept loop, every connection and every handle.
pub(crate) struct Shared {
    pub router: Router,
    pub limits: Limits,
    pub sessions: Sessions,
    pub shutdown: CancellationToken,
    pub connections: AtomicUsize,
    pub local_addr: SocketAddr,
}

/// A cheap, cloneable handle on a running server: ask it to shut down, count its connections and
/// sessions. Views reach it through [`Request::server`](crate::Request::server).
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Starts a graceful shutdown: no new connections or calls; calls in flight may finish.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Whether a shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Completes when a shutdown has been asked for.
    pub async fn shutdown_requested(&self) {
        self.shared.shutdown.cancelled().await;
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Connections open now (handshake done or not).
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::Acquire)
    }

    /// Sessions remembered now, connected or waiting to be resumed.
    pub fn session_count(&self) -> usize {
        self.shared.sessions.len()
    }

    /// Every session the server remembers: its id, its user (if logged in), and how many
    /// connections it has open now (0: waiting to be resumed).
    pub fn sessions_list(&self) -> Vec<(crate::auth::SessionId, Option<super::UserId>, usize)> {
        self.shared.sessions.list()
    }

    /// The sessions `user_id` is logged in on now (one per device or client).
    pub fn user_sessions(&self, user_id: super::UserId) -> Vec<crate::auth::SessionId> {
        self.shared.sessions.of_user(user_id)
    }

    /// Closes every connection of a session, saying goodbye. The session itself (and its login) is
    /// kept, so its client may reconnect and resume it. `false` if no such session exists.
    pub fn disconnect_session(&self, session: crate::auth::SessionId) -> bool {
        self.shared.sessions.disconnect(&session)
    }

    /// The server's limits.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.shared.sessions
    }
}
