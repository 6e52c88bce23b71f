//! `ConnectionHandler`: calls over one multiplexed connection, replies matched by id, reconnects.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::time::{timeout_at, Instant};

use super::link;
use super::pending::{PendingCalls, Started};
use super::reading::Reply;
use super::reconnect;
use super::reverse::ReverseRequests;
use super::shared::{Inner, LinkState};
use super::{CallError, ClientConfig, ConnectError};
use crate::armed::Stop;
use crate::routing::ToReverseCall;
use crate::routing::View;
use crate::wire::{Hot, Outbox, SendError};
use std::task::Poll;

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
            .field("addr", &self.inner.addr())
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// A reply that did not decode as an `R`.
fn decode_error<R, E>(source: crate::wire::DecodeError) -> CallError<E> {
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

impl PendingGuard<'_> {
    /// Call `id` is registered: removed if the call gives up from now on.
    fn arm(&mut self, id: u64) {
        self.id = id;
        self.armed = true;
    }
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
    ///
    /// # Errors
    /// As [`connect_with`](Self::connect_with).
    ///
    /// # Cancel safety
    /// Cancel safe: a connection dropped before it is returned is closed.
    pub async fn connect(addr: impl Into<String>) -> Result<Self, ConnectError> {
        Self::connect_with(addr, ClientConfig::default()).await
    }

    /// Connects to a server with these settings.
    ///
    /// # Errors
    /// [`ConnectError::Io`] when the server cannot be reached, `Tls` when its certificate is not
    /// trusted, `Refused` with the server's reason (full, another protocol version),
    /// `Handshake` or `Timeout` when it does not answer as a fluxon server, `InvalidConfig` for
    /// settings that cannot work.
    ///
    /// # Cancel safety
    /// Cancel safe: a connection dropped before it is returned is closed.
    pub async fn connect_with(
        addr: impl Into<String>,
        config: ClientConfig,
    ) -> Result<Self, ConnectError> {
        Self::connect_any_with([addr.into()], config).await
    }

    /// Connects to the first of `addrs` that takes the connection, tried in order (the nodes of
    /// a cluster, see [`Cluster`](crate::Cluster)); with the default settings. On losing its
    /// node the handler reconnects to the same address or, failing that, to the others in turn,
    /// resuming the session with its login on whichever takes it (a cluster's nodes share their
    /// sessions). Works the same with one address behind a TCP load balancer.
    ///
    /// # Errors
    /// As [`connect_with`](Self::connect_with), for the last address tried;
    /// [`ConnectError::InvalidConfig`] for no address at all.
    ///
    /// # Cancel safety
    /// Cancel safe: a connection dropped before it is returned is closed.
    pub async fn connect_any(
        addrs: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ConnectError> {
        Self::connect_any_with(addrs, ClientConfig::default()).await
    }

    /// [`connect_any`](Self::connect_any) with these settings.
    ///
    /// # Errors
    /// As [`connect_any`](Self::connect_any).
    ///
    /// # Cancel safety
    /// Cancel safe: a connection dropped before it is returned is closed.
    pub async fn connect_any_with(
        addrs: impl IntoIterator<Item = impl Into<String>>,
        config: ClientConfig,
    ) -> Result<Self, ConnectError> {
        let addrs: Vec<String> = addrs.into_iter().map(Into::into).collect();
        if config.max_frame < crate::wire::MIN_MAX_FRAME {
            return Err(ConnectError::InvalidConfig(format!(
                "max_frame of {} bytes is below the minimum of {}",
                config.max_frame,
                crate::wire::MIN_MAX_FRAME
            )));
        }
        let mut last = None;
        let mut first = None;
        for (at, addr) in addrs.iter().enumerate() {
            match link::open(addr, None, &config).await {
                Ok(opened) => {
                    first = Some((at, opened));
                    break;
                }
                Err(err) => last = Some(err),
            }
        }
        let (at, opened) = match (first, last) {
            (Some(first), _) => first,
            (None, Some(err)) => return Err(err),
            (None, None) => {
                return Err(ConnectError::InvalidConfig(
                    "no address to connect to".to_owned(),
                ))
            }
        };
        let call_timeout = config.call_timeout;
        let inner = Arc::new(Inner::new(addrs, at, config));
        inner.opened(opened.token, opened.resumed);
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

    /// This handle, its calls waiting `timeout` for their replies (the house's consuming style:
    /// `conn.clone().call_timeout(d)` for a second handle on the same connection).
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Calls a view by name with any serializable payload, decoding the reply as `R`.
    ///
    /// # Errors
    /// As [`call`](Self::call); the view's own error type comes as its bytes
    /// ([`CallError::decode_view`]).
    ///
    /// # Cancel safety
    /// Cancel safe for this handler: dropping the future forgets the call, and its reply is
    /// discarded when it comes. The call may still have run on the server.
    pub async fn send_request<P, R>(&self, view: &str, payload: &P) -> Result<R, CallError<Bytes>>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let payload = crate::wire::to_vec(payload).map_err(CallError::Encode)?;
        let reply = self.call_parts(view, [&payload, &[]]).await;
        crate::wire::recycle(payload);
        crate::wire::from_bytes_exact(&reply?).map_err(decode_error::<R, Bytes>)
    }

    /// Calls a view through its item, so the payload and reply types are the view's own:
    /// `conn.call(signup, &form)` does not compile if `form` is not `signup`'s payload type.
    ///
    /// # Errors
    /// [`CallError::View`] with the view's own error, `Remote` with the server's code (unknown
    /// view, bad payload, a message the view chose, an internal error or panic, throttled,
    /// shutting down), `Timeout`, `Disconnected` (the call may or may not have run), `Closed`,
    /// `TooLarge` (not sent), `Encode` / `Decode` for a payload or reply that does not convert.
    ///
    /// # Cancel safety
    /// Cancel safe for this handler: dropping the future forgets the call, and its reply is
    /// discarded when it comes. The call may still have run on the server.
    pub async fn call<V>(
        &self,
        _view: V,
        payload: &V::Payload,
    ) -> Result<V::Reply, CallError<V::Error>>
    where
        V: View,
        V::Payload: Serialize,
        V::Reply: DeserializeOwned,
    {
        // The view's own types are known here, so byte strings go whole (`send_request` takes
        // any payload, borrowed ones included, and so goes element by element).
        // Not through a shared helper with `send_request`: one more future layer costs ~45
        // instructions a call (callgrind).
        let payload = crate::wire::encode_ref(payload).map_err(CallError::Encode)?;
        let reply = self.call_parts(V::NAME, payload.parts()).await;
        payload.done();
        let reply = reply.map_err(CallError::decode_view::<V::Error>)?;
        crate::wire::decode_owned(reply).map_err(decode_error::<V::Reply, V::Error>)
    }

    /// Calls a view with an already-encoded payload; returns the reply's bytes.
    ///
    /// # Errors
    /// As [`call`](Self::call), the view's own error as its bytes.
    ///
    /// # Cancel safety
    /// As [`call`](Self::call).
    pub async fn call_raw(&self, view: &str, payload: &[u8]) -> Result<Bytes, CallError<Bytes>> {
        self.call_parts(view, [payload, &[]]).await
    }

    /// [`call_raw`](Self::call_raw) with the payload's bytes in two pieces, sent one after the
    /// other (a byte string's length, then its bytes: never copied together).
    async fn call_parts(&self, view: &str, payload: [&[u8]; 2]) -> Result<Bytes, CallError<Bytes>> {
        let deadline = crate::timer::after(Instant::now(), self.call_timeout);
        let inner = &*self.inner;
        let timeout = self.call_timeout;
        // Connected and room in the queue (the usual case): numbered, registered with this task's
        // waker and queued under one lock, with no wait. The deadline is kept by the sweeper: no
        // timer per call.
        let started = std::future::poll_fn(|cx| {
            Poll::Ready(
                inner
                    .pending
                    .start(cx.waker(), deadline, timeout, |id, outbox| {
                        outbox.try_send(&Hot::call(id, view, payload))
                    }),
            )
        })
        .await;
        let mut guard = PendingGuard {
            pending: &inner.pending,
            id: 0,
            armed: false,
        };
        // Registered in this same poll: the reply's first poll need not look at the table.
        let reply = match started {
            Started::Queued { id } => {
                guard.arm(id);
                Reply::registered(inner, id, None)
            }
            Started::Alone { id, link } => {
                guard.arm(id);
                // Written from here (no wake-up of the writer task), then read from here.
                let call = Hot::call(id, view, payload);
                match link.outbox.try_send_direct(&call) {
                    Ok(()) => Reply::registered(inner, id, Some(link.read)),
                    Err(why) => {
                        self.refused(why, &link.outbox, &call, link.max_frame, deadline)
                            .await?;
                        Reply::new(inner, id)
                    }
                }
            }
            Started::Refused {
                id,
                why,
                outbox,
                max,
            } => {
                guard.arm(id);
                let call = Hot::call(id, view, payload);
                self.refused(why, &outbox, &call, max, deadline).await?;
                Reply::new(inner, id)
            }
            Started::Down => {
                // Between connections: wait for the next one, within the call's time.
                let (outbox, max) = timeout_at(deadline, self.wait_for_link())
                    .await
                    .map_err(|_| CallError::Timeout(self.call_timeout))??;
                let id = inner.pending.insert(deadline, timeout);
                guard.arm(id);
                let call = Hot::call(id, view, payload);
                self.send_waiting(&outbox, &call, max, deadline).await?;
                Reply::new(inner, id)
            }
        };
        let result = reply.await;
        // Taking the delivery removed the entry.
        guard.armed = false;
        result
    }

    /// A call the queue refused: waits for room if it was full (until the call's deadline),
    /// otherwise says why it cannot go.
    async fn refused(
        &self,
        why: SendError,
        outbox: &Outbox,
        call: &Hot<'_>,
        max: usize,
        deadline: Instant,
    ) -> Result<(), CallError<Bytes>> {
        match why {
            SendError::Full => self.send_waiting(outbox, call, max, deadline).await,
            SendError::TooLarge(size) => Err(CallError::TooLarge { size, max }),
            SendError::Closed => Err(CallError::Disconnected),
        }
    }

    /// Queues a call, waiting for room until the call's deadline.
    async fn send_waiting(
        &self,
        outbox: &Outbox,
        call: &Hot<'_>,
        max: usize,
        deadline: Instant,
    ) -> Result<(), CallError<Bytes>> {
        match timeout_at(deadline, outbox.send(call)).await {
            Err(_) => Err(CallError::Timeout(self.call_timeout)),
            Ok(Ok(())) => Ok(()),
            Ok(Err(SendError::TooLarge(size))) => Err(CallError::TooLarge { size, max }),
            Ok(Err(_)) => Err(CallError::Disconnected),
        }
    }

    /// The current link's queue, waiting through a reconnect (callers bound the wait).
    async fn wait_for_link(&self) -> Result<(Arc<Outbox>, usize), CallError<Bytes>> {
        let mut state = self.inner.subscribe();
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
    pub fn on<P, R, F, Fut>(&self, name: impl ToReverseCall<P, R>, handler: F) -> &Self
    where
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = R> + Send + 'static,
        P: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
    {
        self.inner
            .handlers
            .on(name.reverse_name().to_owned(), handler);
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
        self.inner.is_up()
    }

    /// Whether the last handshake resumed the session of the one before it.
    pub fn session_resumed(&self) -> bool {
        self.inner.resumed()
    }

    /// How many times a connection was established (1 plus the reconnects).
    pub fn connect_count(&self) -> u64 {
        self.inner.connects()
    }

    /// Waits until the connection is up, at most `timeout`; `false` if it is not.
    ///
    /// # Cancel safety
    /// Cancel safe: it only watches the connection's state.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.wait_for_link()).await,
            Ok(Ok(_))
        )
    }

    /// Says goodbye and closes the connection for every clone of this handler.
    ///
    /// # Cancel safety
    /// Cancel safe: the handler is closed once this starts; dropping it early skips only the
    /// wait for the goodbye to be written.
    pub async fn close(&self) {
        self.owner.closed.cancel();
        let mut state = self.inner.subscribe();
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            state.wait_for(|s| matches!(s, LinkState::Closed)),
        )
        .await;
    }
}
