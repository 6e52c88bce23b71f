//! `AsyncServer`: the builder for a server's address, router and limits.

use std::path::PathBuf;
use std::time::Duration;

use crate::routing::Router;
use crate::wire::DEFAULT_MAX_FRAME;

/// Every bound on what a peer can make the server spend. All have defaults; all can be set.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections served at once; past it, new connections are refused with `ServerFull`.
    pub max_connections: usize,
    /// Calls running at once on one connection; past it, the server stops reading that connection.
    pub max_in_flight: usize,
    /// The largest frame body accepted or sent.
    pub max_frame: usize,
    /// Time a new connection has to complete its handshake.
    pub handshake_timeout: Duration,
    /// A connection silent this long is closed; after half of it the server sends a ping.
    pub idle_timeout: Duration,
    /// Bytes queued for one connection's writer before call tasks wait (a frame is accepted while
    /// the queue is under it, so the queue peaks at this plus one frame).
    pub outgoing_buffer: usize,
    /// How long a shutdown waits for calls in flight.
    pub shutdown_grace: Duration,
    /// Sessions remembered; past it, the longest-disconnected one is forgotten.
    pub max_sessions: usize,
    /// How long a session with no connection is kept for its client to resume it.
    pub session_ttl: Duration,
    /// How long a cloud grant made by `Request::grant_access` stays valid.
    pub grant_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_in_flight: 64,
            max_frame: DEFAULT_MAX_FRAME,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            outgoing_buffer: 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            max_sessions: 100_000,
            session_ttl: Duration::from_secs(24 * 60 * 60),
            grant_ttl: Duration::from_secs(60),
        }
    }
}

impl Limits {
    pub(crate) fn validate(&self) -> Result<(), super::ServerError> {
        use super::ServerError::InvalidLimit;
        let checks = [
            (
                self.max_connections == 0,
                "max_connections must be at least 1",
            ),
            (self.max_in_flight == 0, "max_in_flight must be at least 1"),
            (
                self.max_frame < crate::wire::MIN_MAX_FRAME,
                "max_frame must be at least 64 bytes",
            ),
            (
                self.max_frame > u32::MAX as usize,
                "max_frame must fit in u32",
            ),
            (
                self.outgoing_buffer == 0,
                "outgoing_buffer must be at least 1",
            ),
            (self.max_sessions == 0, "max_sessions must be at least 1"),
            (
                self.idle_timeout < Duration::from_millis(10),
                "idle_timeout must be at least 10 ms",
            ),
        ];
        match checks.into_iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err(InvalidLimit(why)),
            None => Ok(()),
        }
    }
}

/// A server being configured: `AsyncServer::new(port).router(router)`, then [`run_server`] or
/// [`AsyncServer::start`].
///
/// [`run_server`]: super::run_server
#[derive(Debug, Clone)]
pub struct AsyncServer {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) router: Option<Router>,
    pub(crate) secure: bool,
    pub(crate) tls: Option<crate::tls::TlsIdentity>,
    pub(crate) limits: Limits,
    pub(crate) log_dir: Option<PathBuf>,
    pub(crate) mailbox: Option<crate::db::AsyncDatabase>,
    pub(crate) cloud: Option<crate::cloud::CloudStorageServer>,
}

impl AsyncServer {
    /// A server on `127.0.0.1:port` (port 0 picks a free port; see [`RunningServer::local_addr`]).
    ///
    /// [`RunningServer::local_addr`]: super::RunningServer::local_addr
    pub fn new(port: u16) -> Self {
        AsyncServer {
            host: "127.0.0.1".to_owned(),
            port,
            router: None,
            secure: false,
            tls: None,
            limits: Limits::default(),
            log_dir: None,
            mailbox: None,
            cloud: None,
        }
    }

    /// Runs a cloud storage endpoint beside the server, on its own port (see
    /// [`CloudStorageServer`](crate::cloud::CloudStorageServer)); views make grants for it with
    /// [`Request::grant_access`](crate::Request::grant_access).
    pub fn cloud_storage(mut self, cloud: crate::cloud::CloudStorageServer) -> Self {
        self.cloud = Some(cloud);
        self
    }

    /// Keeps reverse requests for offline users in a table of `db` (see
    /// [`ServerHandle::reverse_request_or_keep`](super::ServerHandle::reverse_request_or_keep)),
    /// delivered when the user next logs in or reconnects: in order, at least once, each removed
    /// once the client's handler answered it.
    pub fn mailbox(mut self, db: crate::db::AsyncDatabase) -> Self {
        self.mailbox = Some(db);
        self
    }

    /// The address to listen on (default `127.0.0.1`; `0.0.0.0` for every interface).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The views to serve.
    pub fn router(mut self, router: Router) -> Self {
        self.router = Some(router);
        self
    }

    /// Serves TLS only (the original's `secure=True`), presenting the identity given with
    /// [`tls`](Self::tls); without one, starting fails with
    /// [`ServerError::NoTlsIdentity`](super::ServerError::NoTlsIdentity) rather than serve in
    /// clear text.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Serves TLS with this certificate and key (implies [`secure(true)`](Self::secure)); the
    /// cloud endpoint presents it too unless given its own.
    pub fn tls(mut self, identity: crate::tls::TlsIdentity) -> Self {
        self.tls = Some(identity);
        self.secure = true;
        self
    }

    /// Replaces every limit at once.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Connections served at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.limits.max_connections = n;
        self
    }

    /// Calls running at once on one connection.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.limits.max_in_flight = n;
        self
    }

    /// The largest frame body accepted.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.limits.max_frame = bytes;
        self
    }

    /// Time a new connection has to complete its handshake.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.limits.handshake_timeout = timeout;
        self
    }

    /// A connection silent this long is closed (a ping is sent after half of it).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle_timeout = timeout;
        self
    }

    /// Bytes queued for one connection before call replies wait and reverse requests to it fail
    /// (a client that does not read cannot make the server's memory grow past this, plus one
    /// frame, per connection).
    pub fn outgoing_buffer(mut self, bytes: usize) -> Self {
        self.limits.outgoing_buffer = bytes;
        self
    }

    /// How long a shutdown waits for calls in flight.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.limits.shutdown_grace = grace;
        self
    }

    /// Also write logs to a file per day in `dir` (`fluxon.log.YYYY-MM-DD`), as the original Fluxon
    /// did. Installs a global `tracing` subscriber when the server starts, unless one is set already.
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }
}
