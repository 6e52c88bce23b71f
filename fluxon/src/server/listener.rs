//! The accept loop, the connection limit, and the running server's lifetime.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedWrite;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::config::AsyncServer;
use super::connection;
use super::handle::{ServerHandle, Shared};
use super::logging::LogGuard;
use super::mailbox::Mailbox;
use super::sessions::Sessions;
use super::ServerError;
use crate::auth::SessionKey;
use crate::wire::{self, Envelope, RefuseReason};

/// Connections being told "server full" at once; more are closed without a word.
const MAX_REFUSALS_AT_ONCE: usize = 64;

/// A server that is accepting connections. Dropping it does not stop it; call
/// [`shutdown`](RunningServer::shutdown).
pub struct RunningServer {
    handle: ServerHandle,
    accept: JoinHandle<()>,
    tracker: TaskTracker,
    cloud_addr: Option<SocketAddr>,
    _log: Option<LogGuard>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("local_addr", &self.local_addr())
            .finish_non_exhaustive()
    }
}

impl AsyncServer {
    /// Binds and starts serving in the background; returns once the listener is bound.
    pub async fn start(self) -> Result<RunningServer, ServerError> {
        let tls = match (&self.tls, self.secure) {
            (Some(identity), true) => Some(identity.acceptor()?),
            (None, true) => return Err(ServerError::NoTlsIdentity),
            (_, false) => None,
        };
        self.limits.validate()?;
        let router = self.router.ok_or(ServerError::NoRouter)?;
        let log = match &self.log_dir {
            Some(dir) => Some(super::logging::init(dir)?),
            None => None,
        };
        let addr = format!("{}:{}", self.host, self.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let key = match router.session_key() {
            Some(key) => key.clone(),
            None => SessionKey::random()?,
        };
        let grant_key = match router.grant_key() {
            Some(key) => key.clone(),
            None => crate::cloud::GrantKey::random()?,
        };
        let mailbox = match self.mailbox {
            Some(db) => Some(Mailbox::open(db).await.map_err(ServerError::Mailbox)?),
            None => None,
        };
        let cloud = match &self.cloud {
            Some(config) => {
                let main_tls = self.tls.as_ref().filter(|_| self.secure);
                let bound = config
                    .bind(&self.host, router.get_state(), main_tls)
                    .await?;
                Some((config, bound))
            }
            None => None,
        };
        let limits = self.limits;
        let shared = Arc::new(Shared {
            sessions: Sessions::new(key, limits.max_sessions, limits.session_ttl),
            router,
            shutdown: CancellationToken::new(),
            connections: AtomicUsize::new(0),
            local_addr,
            limits,
            mailbox,
            grant_key,
            cloud: cloud.as_ref().map(|(_, (_, cloud, _))| cloud.clone()),
            tls,
        });
        let tracker = TaskTracker::new();
        let mut cloud_addr = None;
        if let Some((config, (listener, cloud, cloud_tls))) = cloud {
            cloud_addr = listener.local_addr().ok();
            let endpoint = Arc::new(crate::cloud::Endpoint {
                cloud,
                server: ServerHandle {
                    shared: Arc::clone(&shared),
                },
                idle: config.idle_timeout,
                partial_ttl: config.partial_ttl,
                shutdown: shared.shutdown.clone(),
                grace: shared.limits.shutdown_grace,
                tls: cloud_tls,
            });
            let span = tracing::info_span!("cloud", addr = ?cloud_addr);
            tokio::spawn(
                crate::cloud::accept_loop(
                    listener,
                    endpoint,
                    config.max_connections,
                    tracker.clone(),
                )
                .instrument(span),
            );
            tracing::info!(addr = ?cloud_addr, "fluxon cloud storage listening");
        }
        let span = tracing::info_span!("server", addr = %local_addr);
        let accept = tokio::spawn(
            accept_loop(listener, Arc::clone(&shared), tracker.clone()).instrument(span),
        );
        tokio::spawn(sweep_sessions(Arc::clone(&shared)));
        tracing::info!(addr = %local_addr, views = ?shared.router.view_names(), "fluxon server listening");
        Ok(RunningServer {
            handle: ServerHandle { shared },
            accept,
            tracker,
            cloud_addr,
            _log: log,
        })
    }
}

impl RunningServer {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.handle.local_addr()
    }

    /// The cloud endpoint's bound address, if the server has one.
    pub fn cloud_addr(&self) -> Option<SocketAddr> {
        self.cloud_addr
    }

    /// A handle for views, tasks and tests.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Shuts down gracefully and waits until every connection is closed: stops accepting, lets
    /// calls in flight finish within the grace period, sends goodbye, closes.
    pub async fn shutdown(self) {
        self.handle.shutdown();
        let _ = self.accept.await;
        self.tracker.close();
        // Connections give up on their calls after the grace period; this bound is a backstop.
        let backstop = self.handle.limits().shutdown_grace + Duration::from_secs(5);
        if tokio::time::timeout(backstop, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the shutdown grace period");
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tracker: TaskTracker) {
    let permits = Arc::new(Semaphore::new(shared.limits.max_connections));
    // Refusing costs a task and a write; past this many at once, a connection is just closed.
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_AT_ONCE));
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => {
                let shared = Arc::clone(&shared);
                let span = tracing::info_span!("conn", %peer);
                tracker.spawn(
                    async move {
                        let limit = shared.limits.handshake_timeout;
                        if let Some(stream) =
                            crate::tls::accept(stream, shared.tls.as_ref(), limit).await
                        {
                            connection::serve(stream, peer, shared).await;
                        }
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            Err(_) => {
                tracing::warn!(%peer, "connection refused: at max_connections");
                if let Ok(permit) = Arc::clone(&refusals).try_acquire_owned() {
                    let tls = shared.tls.clone();
                    tracker.spawn(async move {
                        // A TLS peer can only read a refusal inside TLS: a short handshake first.
                        let limit = Duration::from_secs(1);
                        if let Some(stream) = crate::tls::accept(stream, tls.as_ref(), limit).await
                        {
                            let message = "the server is at its connection limit";
                            refuse(stream, RefuseReason::ServerFull, message).await;
                        }
                        drop(permit);
                    });
                }
            }
        }
    }
    tracing::debug!("accept loop stopped");
}

/// Tells a peer why it is turned away, without waiting long for it to listen.
pub(super) async fn refuse(stream: wire::Stream, reason: RefuseReason, message: &str) {
    let mut writer = FramedWrite::new(stream.split().write, wire::codec(wire::DEFAULT_MAX_FRAME));
    if let Ok(body) = (Envelope::Refused { reason, message }).encode() {
        let _ = tokio::time::timeout(Duration::from_secs(1), writer.send(body)).await;
    }
}

async fn sweep_sessions(shared: Arc<Shared>) {
    let every =
        (shared.sessions.ttl() / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = tokio::time::sleep(every) => shared.sessions.sweep(),
        }
    }
}
