//! `ConnectionHandler`: calls over one multiplexed connection, replies matched by id, reconnects.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

use super::link::{self, Opened};
use super::pending::PendingCalls;
use super::reading::{ReadSide, Reply};
use super::reconnect;
use super::reverse::{Handlers, ReverseRequests};
use super::{CallError, ClientConfig, ConnectError};
use crate::armed::Stop;
use crate::routing::View;
use crate::wire::{Envelope, Outbox, SendError, SessionTokenBytes};

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
    addr: String,
    pub(super) config: ClientConfig,
    next_id: AtomicU64,
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
    pub(super) fn set_link(&self, state: LinkState) {
        self.link.send_replace(state);
    }

    pub(super) fn addr(&self) -> &str {
        &self.addr
    }

    pub(super) fn token(&self) -> Option<SessionTokenBytes> {
        *lock(&self.token)
    }

    pub(super) fn set_token(&self, token: SessionTokenBytes) {
        *lock(&self.token) = Some(token);
    }

    pub(super) fn opened(&self, opened: &Opened) {
        *lock(&self.token) = Some(opened.token);
        self.resumed.store(opened.resumed, Ordering::Release);
        self.connects.fetch_add(1, Ordering::AcqRel);
    }
}

/// Closes the connection when the last clone of a handler is dropped.
struct Owner {
    closed: Stop,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.closed.cancel();
    }
}

/// A client's connection to a fluxon server: one TCP connection carrying any number of concurrent
/// calls. Clone it freely; clones share the connection. It reconnects by itself (with backoff,
/// resuming its session) and closes when the last clone is dropped or [`close`](Self::close) is
/// called.
#[derive(Clone)]
pub struct ConnectionHandler {
    inner: Arc<Inner>,
    owner: Arc<Owner>,
    call_timeout: Duration,
}

impl std::fmt::Debug for ConnectionHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionHandler")
            .field("addr", &self.inner.addr)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// A reply that did not decode as an `R`.
fn decode_error<R>(source: crate::wire::DecodeError) -> CallError {
    CallError::Decode {
        expected: std::any::type_name::<R>(),
        source,
    }
}

/// Removes a call's waiter if the call gives up (timeout, or its future is dropped).
struct PendingGuard<'a> {
    pending: &'a PendingCalls,
    id: u64,
    armed: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.pending.remove(self.id);
        }
    }
}

impl ConnectionHandler {
    /// The token of this client's session (`None` before the first connection): what proves the
    /// session to the server, and to its cloud endpoint. Treat it like a password.
    pub fn session_token(&self) -> Option<crate::wire::SessionTokenBytes> {
        self.inner.token()
    }

    /// A connector for the server's cloud endpoint at `addr` (`host:port`) that presents this
    /// client's session with every grant (a grant works only for the session it was given to).
    pub fn cloud_connector(&self, addr: impl Into<String>) -> crate::cloud::CloudStorageConnector {
        let inner = Arc::clone(&self.inner);
        let tls = self.inner.config.tls.clone();
        crate::cloud::CloudStorageConnector::new(addr, Arc::new(move || inner.token()), tls)
    }

    /// Connects to a server with the default settings.
    pub async fn connect(addr: impl Into<String>) -> Result<Self, ConnectError> {
        Self::connect_with(addr, ClientConfig::default()).await
    }

    /// Connects to a server with these settings.
    pub async fn connect_with(
        addr: impl Into<String>,
        config: ClientConfig,
    ) -> Result<Self, ConnectError> {
        let addr = addr.into();
        if config.max_frame < crate::wire::MIN_MAX_FRAME {
            return Err(ConnectError::InvalidConfig(format!(
                "max_frame of {} bytes is below the minimum of {}",
                config.max_frame,
                crate::wire::MIN_MAX_FRAME
            )));
        }
        let opened = link::open(&addr, None, &config).await?;
        let call_timeout = config.call_timeout;
        let (link, _) = watch::channel(LinkState::Down);
        let inner = Arc::new(Inner {
            addr,
            config,
            next_id: AtomicU64::new(1),
            pending: Arc::new(PendingCalls::default()),
            handlers: Handlers::default(),
            link,
            token: Mutex::new(None),
            resumed: AtomicBool::new(false),
            connects: AtomicU64::new(0),
            closed: Stop::default(),
        });
        inner.opened(&opened);
        let owner = Arc::new(Owner {
            closed: inner.closed.clone(),
        });
        let started = link::start(&inner, opened);
        tokio::spawn(Arc::clone(&inner.pending).sweep(inner.closed.token().clone()));
        tokio::spawn(reconnect::supervise(Arc::clone(&inner), started));
        Ok(ConnectionHandler {
            inner,
            owner,
            call_timeout,
        })
    }

    /// A handle on the same connection whose calls wait `timeout` for their replies.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        ConnectionHandler {
            call_timeout: timeout,
            ..self.clone()
        }
    }

    /// Calls a view by name with any serializable payload, decoding the reply as `R`.
    pub async fn send_request<P, R>(&self, view: &str, payload: &P) -> Result<R, CallError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let payload = crate::wire::to_vec(payload).map_err(CallError::Encode)?;
        let reply = self.call_raw(view, &payload).await;
        crate::wire::recycle(payload);
        crate::wire::from_bytes_exact(&reply?).map_err(decode_error::<R>)
    }

    /// Calls a view through its item, so the payload and reply types are the view's own:
    /// `conn.call(signup, &form)` does not compile if `form` is not `signup`'s payload type.
    pub async fn call<V>(&self, _view: V, payload: &V::Payload) -> Result<V::Reply, CallError>
    where
        V: View,
        V::Payload: Serialize,
        V::Reply: DeserializeOwned,
    {
        // The view's own types are known here, so byte strings go whole (`send_request` takes
        // any payload, borrowed ones included, and so goes element by element).
        // Not through a shared helper with `send_request`: one more future layer costs ~45
        // instructions a call (callgrind).
        let payload = crate::wire::encode(payload).map_err(CallError::Encode)?;
        let reply = self.call_raw(V::NAME, &payload).await;
        crate::wire::recycle(payload);
        crate::wire::decode_owned(reply?).map_err(decode_error::<V::Reply>)
    }

    /// Calls a view with an already-encoded payload; returns the reply's bytes.
    pub async fn call_raw(&self, view: &str, payload: &[u8]) -> Result<Bytes, CallError> {
        let deadline = crate::timer::after(Instant::now(), self.call_timeout);
        let inner = &*self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let call = Envelope::Call { id, view, payload };
        let mut guard = PendingGuard {
            pending: &inner.pending,
            id,
            armed: false,
        };
        // The waiter is always in place before the call can go out, so no reply comes back first.
        // Its deadline is kept by the sweeper: no timer per call.
        let fast = {
            // Connected and room in the queue (the usual case): queued under a brief borrow of
            // the link, with no wait.
            let link = inner.link.borrow();
            match &*link {
                LinkState::Up {
                    outbox,
                    read,
                    max_frame,
                } => {
                    let alone = inner.pending.insert(id, deadline, self.call_timeout);
                    guard.armed = true;
                    // A lone call is written from here (no wake-up of the writer task); with
                    // others in flight it joins the queue, where calls share one write.
                    let sent = if alone {
                        outbox.try_send_direct(&call)
                    } else {
                        outbox.try_send(&call)
                    };
                    let retry = matches!(sent, Err(SendError::Full)).then(|| Arc::clone(outbox));
                    // A lone call reads its reply itself (see `reading`); with others in flight
                    // the link's task reads for all, as one reader serves a batch best.
                    let read = alone.then(|| Arc::clone(read));
                    Some((sent, read, retry, *max_frame))
                }
                _ => None,
            }
        };
        let read = match fast {
            Some((Ok(()), read, _, _)) => read,
            Some((Err(SendError::Full), read, Some(outbox), max)) => {
                self.send_waiting(&outbox, &call, max, deadline).await?;
                read
            }
            Some((Err(SendError::TooLarge(size)), _, _, max)) => {
                return Err(CallError::TooLarge { size, max })
            }
            Some(_) => return Err(CallError::Disconnected),
            None => {
                // Between connections: wait for the next one, within the call's time.
                let (outbox, max) = timeout_at(deadline, self.wait_for_link())
                    .await
                    .map_err(|_| CallError::Timeout(self.call_timeout))??;
                inner.pending.insert(id, deadline, self.call_timeout);
                guard.armed = true;
                self.send_waiting(&outbox, &call, max, deadline).await?;
                None
            }
        };
        let result = Reply::new(inner, id, read).await;
        // Taking the delivery removed the entry.
        guard.armed = false;
        result
    }

    /// Queues a call, waiting for room until the call's deadline.
    async fn send_waiting(
        &self,
        outbox: &Outbox,
        call: &Envelope<'_>,
        max: usize,
        deadline: Instant,
    ) -> Result<(), CallError> {
        match timeout_at(deadline, outbox.send(call)).await {
            Err(_) => Err(CallError::Timeout(self.call_timeout)),
            Ok(Ok(())) => Ok(()),
            Ok(Err(SendError::TooLarge(size))) => Err(CallError::TooLarge { size, max }),
            Ok(Err(_)) => Err(CallError::Disconnected),
        }
    }

    /// The current link's queue, waiting through a reconnect (callers bound the wait).
    async fn wait_for_link(&self) -> Result<(Arc<Outbox>, usize), CallError> {
        let mut state = self.inner.link.subscribe();
        loop {
            match &*state.borrow_and_update() {
                LinkState::Up {
                    outbox, max_frame, ..
                } => return Ok((Arc::clone(outbox), *max_frame)),
                LinkState::Closed => return Err(CallError::Closed),
                LinkState::Down => {}
            }
            if state.changed().await.is_err() {
                return Err(CallError::Closed);
            }
        }
    }

    /// Handles the server's reverse requests named `name` (the original's
    /// `reverse_request_mapping`): `handler` gets the decoded payload, and what it returns is the
    /// reply. Handlers run as tasks of their own, concurrently, never holding up the connection.
    ///
    /// ```no_run
    /// # async fn run(conn: fluxon::ConnectionHandler) {
    /// conn.on("receive_message", |(from, text): (String, String)| async move {
    ///     println!("{from}: {text}");
    ///     "seen"
    /// });
    /// # }
    /// ```
    pub fn on<P, R, F, Fut>(&self, name: impl Into<String>, handler: F) -> &Self
    where
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = R> + Send + 'static,
        P: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
    {
        self.inner.handlers.on(name.into(), handler);
        self
    }

    /// Reverse requests with no handler, queued (at most `capacity` waiting; past that the server
    /// gets an error) for a program to take and answer in its own time. A later call replaces the
    /// queue.
    pub fn reverse_requests(&self, capacity: usize) -> ReverseRequests {
        ReverseRequests {
            rx: self.inner.handlers.queue(capacity),
        }
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        matches!(&*self.inner.link.borrow(), LinkState::Up { .. })
    }

    /// Whether the last handshake resumed the session of the one before it.
    pub fn session_resumed(&self) -> bool {
        self.inner.resumed.load(Ordering::Acquire)
    }

    /// How many times a connection was established (1 plus the reconnects).
    pub fn connect_count(&self) -> u64 {
        self.inner.connects.load(Ordering::Acquire)
    }

    /// Waits until the connection is up, at most `timeout`; `false` if it is not.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.wait_for_link()).await,
            Ok(Ok(_))
        )
    }

    /// Says goodbye and closes the connection for every clone of this handler.
    pub async fn close(&self) {
        self.owner.closed.cancel();
        let mut state = self.inner.link.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            state.wait_for(|s| matches!(s, LinkState::Closed)),
        )
        .await;
    }
}
