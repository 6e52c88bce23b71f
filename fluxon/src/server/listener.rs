//! The accept loop, the connection limit, and the running server's lifetime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedWrite;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::config::AsyncServer;
use super::connection;
use super::handle::{ServerHandle, Shared};
use super::logging::LogGuard;
use super::logins::Logins;
use super::mailbox::Mailbox;
use super::sessions::Sessions;
use super::ServerError;
use crate::admission::{full_message, slot, Bucket, Counters, PeerLimits, Peers, RefusalLog};
use crate::auth::SessionKey;
use crate::wire::{self, Budget, Capacity, Envelope, RefuseReason};

/// TLS connections being told "server full" at once (each needs a short TLS handshake); more are
/// closed without a word. A clear-text refusal is one non-blocking write, made at once.
const MAX_REFUSALS_AT_ONCE: usize = 64;

/// How often the throttling buckets forget quiet keys.
const THROTTLE_SWEEP: Duration = Duration::from_secs(10);

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
    ///
    /// # Errors
    /// [`ServerError`] when the address cannot be bound, a limit is invalid, TLS is asked for
    /// without a certificate, or the router, log directory or cloud endpoint cannot be set up.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is served until it returns.
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
        if self.cluster.is_some() && router.session_key().is_none() {
            return Err(ServerError::ClusterWithoutKey);
        }
        let key = match router.session_key() {
            Some(key) => key.clone(),
            None => SessionKey::random()?,
        };
        let grant_key = match router.grant_key() {
            Some(key) => key.clone(),
            None => crate::cloud::GrantKey::random()?,
        };
        let mailbox = match self.mailbox {
            Some(db) => Some(
                Mailbox::open(db, self.mailbox_limits)
                    .await
                    .map_err(ServerError::Mailbox)?,
            ),
            None => None,
        };
        let cloud = match &self.cloud {
            Some(config) => {
                // The cloud endpoint is secure whenever this server is.
                let main_tls = self.tls.as_ref().filter(|_| self.secure);
                Some(
                    config
                        .bind(&self.host, router.get_state(), main_tls)
                        .await?,
                )
            }
            None => None,
        };
        if tls.is_none() && !local_addr.ip().is_loopback() {
            tracing::warn!(
                addr = %local_addr,
                "serving in clear text on an address other hosts can reach: session tokens and \
                 passwords travel unencrypted; give the server a TLS identity (AsyncServer::tls)"
            );
        }
        let limits = self.limits;
        let (cluster, events) = match &self.cluster {
            Some(config) => {
                let (node, events) = crate::cluster::Node::join(config, limits.session_ttl).await?;
                (Some(node), Some(events))
            }
            None => (None, None),
        };
        if let Some(bytes) = limits.malloc_mmap_threshold {
            if super::malloc::fix_mmap_threshold(bytes) {
                tracing::debug!(bytes, "malloc's mmap threshold fixed");
            }
        }
        let peers = Peers::new(PeerLimits {
            connections: limits.max_connections,
            connections_per_peer: limits.max_connections_per_peer,
            handshakes: limits.max_handshakes,
            handshakes_per_peer: limits.max_handshakes_per_peer,
            ipv6_prefix: limits.ipv6_prefix,
        });
        let shared = Arc::new(Shared {
            sessions: {
                let sessions = Sessions::new(
                    key,
                    limits.max_sessions,
                    limits.session_ttl,
                    limits.session_lifetime,
                );
                match &cluster {
                    Some(node) => sessions.replicated(node.changes()),
                    None => sessions,
                }
            },
            router,
            shutdown: crate::armed::Stop::default(),
            peers,
            budget: Budget::new(limits.memory_budget),
            logins: Logins::new(&limits.logins),
            call_rate: limits
                .calls_per_session
                .and_then(|rate| Bucket::new(rate, Duration::from_secs(60))),
            counters: Arc::new(Counters::default()),
            local_addr,
            limits,
            mailbox,
            grant_key,
            cloud: cloud.as_ref().map(|bound| bound.cloud().clone()),
            tls,
            cluster,
            group_notices: self.group_notices,
            balancers: self.balancers,
        });
        let tracker = TaskTracker::new();
        let cloud_addr = cloud.and_then(|bound| {
            let handle = ServerHandle {
                shared: Arc::clone(&shared),
            };
            // What the endpoint may use of the server, and nothing more.
            let serving = crate::cloud::Serving {
                sessions: Arc::new(handle),
                grant_key: shared.grant_key.clone(),
                counters: Arc::clone(&shared.counters),
                shutdown: shared.shutdown.token().clone(),
                grace: shared.limits.shutdown_grace,
                balancers: shared.balancers.clone(),
            };
            bound.serve(serving, &tracker)
        });
        let span = tracing::info_span!("server", addr = %local_addr);
        let accept = tokio::spawn(
            accept_loop(listener, Arc::clone(&shared), tracker.clone()).instrument(span),
        );
        tokio::spawn(sweep_sessions(Arc::clone(&shared)));
        tokio::spawn(sweep_throttles(Arc::clone(&shared)));
        if let Some(events) = events {
            tokio::spawn(super::members::apply(Arc::downgrade(&shared), events));
        }
        if let Some(node) = &shared.cluster {
            tokio::spawn(super::replica::rejoin(
                Arc::downgrade(&shared),
                node.rejoined(),
            ));
            if let Some(mailbox) = &shared.mailbox {
                mailbox.join(Arc::clone(node));
            }
        }
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
    ///
    /// # Cancel safety
    /// Cancel safe: the shutdown is under way once this starts and finishes on its own.
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
        if let Some(node) = &self.handle.shared.cluster {
            node.leave(self.handle.limits().session_ttl).await;
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tracker: TaskTracker) {
    // Refusing over TLS costs a task and a handshake; past this many at once, a connection is just
    // closed.
    let refusals = Arc::new(Semaphore::new(MAX_REFUSALS_AT_ONCE));
    let refusal_log = Arc::new(RefusalLog::new());
    // Balancer connections waiting for their PROXY header: at most as many as handshakes.
    let headers = Arc::new(Semaphore::new(shared.limits.max_handshakes));
    while let Some((stream, peer)) = Peers::next(&listener, shared.shutdown.token()).await {
        if !shared.balancers.includes(peer.ip()) {
            let admitted = shared.peers.admit(peer.ip());
            let refused = (&refusals, refusal_log.as_ref());
            admit(stream, peer, admitted, &shared, &tracker, refused);
            continue;
        }
        let Ok(permit) = Arc::clone(&headers).try_acquire_owned() else {
            tracing::debug!(%peer, "too many balancer connections before their PROXY header; closed");
            continue;
        };
        let (shared, inner) = (Arc::clone(&shared), tracker.clone());
        let (refusals, refusal_log) = (Arc::clone(&refusals), Arc::clone(&refusal_log));
        tracker.spawn(async move {
            let mut stream = stream;
            let limit = shared.limits.handshake_timeout;
            match crate::admission::read_proxy_header(&mut stream, peer, limit).await {
                Ok(real) => {
                    drop(permit);
                    let admitted = shared.peers.admit(real.ip());
                    let refused = (&refusals, refusal_log.as_ref());
                    admit(stream, real, admitted, &shared, &inner, refused);
                }
                Err(err) => tracing::info!(balancer = %peer, %err, "connection closed"),
            }
        });
    }
    tracing::debug!("accept loop stopped");
}

/// Serves an accepted connection from `peer` that was admitted, or turns it away at the limit
/// in the way.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    admitted: Result<crate::admission::Admitted, Capacity>,
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    (refusals, refusal_log): (&Arc<Semaphore>, &RefusalLog),
) {
    match admitted {
        Ok(admitted) => {
            let shared = Arc::clone(shared);
            let span = tracing::info_span!("conn", %peer);
            tracker.spawn(super::logging::in_span(
                async move {
                    // One deadline for the TLS handshake and the Hello together.
                    let deadline = crate::timer::after(
                        tokio::time::Instant::now(),
                        shared.limits.handshake_timeout,
                    );
                    let limit = shared.limits.handshake_timeout;
                    if let Some(stream) =
                        crate::tls::accept(stream, shared.tls.as_ref(), limit).await
                    {
                        connection::serve(stream, peer, shared, admitted, deadline).await;
                    }
                },
                span,
            ));
        }
        Err(capacity) => {
            Counters::bump(&shared.counters.refused[slot(capacity)]);
            refusal_log.note(capacity, peer);
            refuse_full(stream, capacity, shared.tls.clone(), refusals, tracker);
        }
    }
}

/// Turns away a connection at a limit, at a bounded cost: a clear-text peer gets its `Refused` in
/// one non-blocking write (no task), a TLS peer after a short handshake in a task of its own (at
/// most [`MAX_REFUSALS_AT_ONCE`] at once; past that it is closed without a word).
fn refuse_full(
    stream: TcpStream,
    capacity: Capacity,
    tls: Option<tokio_rustls::TlsAcceptor>,
    refusals: &Arc<Semaphore>,
    tracker: &TaskTracker,
) {
    let reason = RefuseReason::ServerFull(capacity);
    let message = full_message(capacity);
    match tls {
        None => {
            let mut frame = bytes::BytesMut::new();
            if (Envelope::Refused { reason, message })
                .encode_frame_into(&mut frame)
                .is_ok()
            {
                let _ = stream.try_write(&frame);
            }
        }
        Some(tls) => {
            if let Ok(permit) = Arc::clone(refusals).try_acquire_owned() {
                tracker.spawn(async move {
                    // A TLS peer can only read a refusal inside TLS: a short handshake first.
                    let limit = Duration::from_secs(1);
                    if let Some(stream) = crate::tls::accept(stream, Some(&tls), limit).await {
                        refuse(stream, reason, message).await;
                    }
                    drop(permit);
                });
            }
        }
    }
}

/// Tells a peer why it is turned away, without waiting long for it to listen.
pub(super) async fn refuse(stream: wire::Stream, reason: RefuseReason, message: &str) {
    let mut writer = FramedWrite::new(stream.split().write, wire::codec(wire::DEFAULT_MAX_FRAME));
    if let Ok(body) = (Envelope::Refused { reason, message }).encode() {
        let _ = tokio::time::timeout(Duration::from_secs(1), writer.send(body)).await;
    }
}

/// Forgets quiet throttling keys every few seconds, and removes mailbox messages past their TTL
/// every minute.
async fn sweep_throttles(shared: Arc<Shared>) {
    for round in 0u64.. {
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = crate::timer::sleep(THROTTLE_SWEEP) => {
                shared.logins.sweep();
                if let Some(bucket) = &shared.call_rate {
                    bucket.sweep();
                }
                if round % 6 == 5 {
                    if let Some(mailbox) = &shared.mailbox {
                        if let Err(err) = mailbox.expire().await {
                            tracing::warn!(%err, "cannot remove expired mailbox messages");
                        }
                    }
                }
            }
        }
    }
}

async fn sweep_sessions(shared: Arc<Shared>) {
    let every = (shared.sessions.shortest_wait() / 4)
        .clamp(Duration::from_millis(100), Duration::from_secs(60));
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = crate::timer::sleep(every) => shared.sessions.sweep(),
        }
    }
}
