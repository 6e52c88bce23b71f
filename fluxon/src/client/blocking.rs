//! The blocking client: the async [`ConnectionHandler`](super::ConnectionHandler) driven by a
//! runtime of its own, for scripts and GUI programs that have no async runtime.
//!
//! ```no_run
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = fluxon::blocking::ConnectionHandler::connect("127.0.0.1:8080")?;
//! let reply: String = conn.send_request("echo", &"hi".to_owned())?;
//! # Ok(()) }
//! ```
//!
//! Do not use it from inside an async runtime (blocking there would stall that runtime's thread;
//! tokio refuses it with a panic): use the async client there.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::runtime::Runtime;

use bytes::Bytes;

use super::{CallError, ClientConfig, ConnectError};
use crate::routing::ToReverseCall;
use crate::routing::View;

/// A blocking connection to a fluxon server. Every method waits for its answer.
///
/// It owns a one-thread runtime that keeps the connection alive between calls (answering pings,
/// reconnecting), so an idle blocking client stays connected.
#[derive(Clone, Debug)]
pub struct ConnectionHandler {
    conn: super::ConnectionHandler,
    runtime: Arc<Runtime>,
}

impl ConnectionHandler {
    /// Connects with the default settings.
    pub fn connect(addr: impl Into<String>) -> Result<Self, ConnectError> {
        Self::connect_with(addr, ClientConfig::default())
    }

    /// Connects with these settings.
    pub fn connect_with(
        addr: impl Into<String>,
        config: ClientConfig,
    ) -> Result<Self, ConnectError> {
        Self::connect_any_with([addr.into()], config)
    }

    /// Connects to the first of `addrs` that takes the connection, and fails over between them
    /// (see [`super::ConnectionHandler::connect_any`]).
    pub fn connect_any(
        addrs: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, ConnectError> {
        Self::connect_any_with(addrs, ClientConfig::default())
    }

    /// [`connect_any`](Self::connect_any) with these settings.
    pub fn connect_any_with(
        addrs: impl IntoIterator<Item = impl Into<String>>,
        config: ClientConfig,
    ) -> Result<Self, ConnectError> {
        let addrs: Vec<String> = addrs.into_iter().map(Into::into).collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fluxon-client")
            .enable_all()
            .build()
            .map_err(|source| ConnectError::Io {
                addr: addrs.first().cloned().unwrap_or_default(),
                source,
            })?;
        let conn = runtime.block_on(super::ConnectionHandler::connect_any_with(addrs, config))?;
        Ok(ConnectionHandler {
            conn,
            runtime: Arc::new(runtime),
        })
    }

    /// A blocking connector for the server's cloud endpoint at `addr`, presenting this client's
    /// session (see [`super::ConnectionHandler::cloud_connector`]).
    pub fn cloud_connector(
        &self,
        addr: impl Into<String>,
    ) -> crate::cloud::blocking::CloudStorageConnector {
        crate::cloud::blocking::CloudStorageConnector::new(
            self.conn.cloud_connector(addr),
            Arc::clone(&self.runtime),
        )
    }

    /// Calls a view by name; see [`super::ConnectionHandler::send_request`].
    pub fn send_request<P, R>(&self, view: &str, payload: &P) -> Result<R, CallError<Bytes>>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.runtime.block_on(self.conn.send_request(view, payload))
    }

    /// Calls a view through its item; see [`super::ConnectionHandler::call`].
    pub fn call<V>(&self, view: V, payload: &V::Payload) -> Result<V::Reply, CallError<V::Error>>
    where
        V: View,
        V::Payload: Serialize,
        V::Reply: DeserializeOwned,
    {
        self.runtime.block_on(self.conn.call(view, payload))
    }

    /// This handle, its calls waiting `timeout` for their replies; see
    /// [`super::ConnectionHandler::call_timeout`].
    #[must_use]
    pub fn call_timeout(self, timeout: Duration) -> Self {
        ConnectionHandler {
            conn: self.conn.call_timeout(timeout),
            runtime: self.runtime,
        }
    }

    /// Handles the server's reverse requests named `name` with a plain function, run on a thread
    /// of the client's blocking pool (so it may block); what it returns is the reply.
    pub fn on<P, R, F>(&self, name: impl ToReverseCall<P, R>, handler: F) -> &Self
    where
        F: Fn(P) -> R + Send + Sync + 'static,
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.conn
            .on(name.reverse_name().to_owned(), move |payload: P| {
                let handler = Arc::clone(&handler);
                async move {
                    match tokio::task::spawn_blocking(move || handler(payload)).await {
                        Ok(reply) => reply,
                        // The handler panicked: let the async side report it as a panic.
                        Err(err) => std::panic::resume_unwind(err.into_panic()),
                    }
                }
            });
        self
    }

    /// Reverse requests with no handler, for a thread of the program's own (a GUI main loop) to
    /// take and answer: an iterator that blocks for the next one.
    pub fn reverse_requests(&self, capacity: usize) -> ReverseRequests {
        ReverseRequests {
            queue: self.conn.reverse_requests(capacity),
            runtime: Arc::clone(&self.runtime),
        }
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        self.conn.is_connected()
    }

    /// Says goodbye and closes the connection.
    pub fn close(&self) {
        self.runtime.block_on(self.conn.close());
    }
}

/// Reverse requests taken one at a time by a thread of the program's own.
#[derive(Debug)]
pub struct ReverseRequests {
    queue: super::ReverseRequests,
    runtime: Arc<Runtime>,
}

impl ReverseRequests {
    /// The next reverse request, waiting at most `timeout`; `None` if none came.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Incoming> {
        let runtime = Arc::clone(&self.runtime);
        // The timer is made inside the runtime: it needs one.
        let next =
            runtime.block_on(async { tokio::time::timeout(timeout, self.queue.next()).await });
        next.ok().flatten().map(|incoming| Incoming {
            incoming,
            runtime: Arc::clone(&self.runtime),
        })
    }
}

impl Iterator for ReverseRequests {
    type Item = Incoming;

    /// Blocks for the next reverse request; `None` once the connection is closed.
    fn next(&mut self) -> Option<Incoming> {
        let runtime = Arc::clone(&self.runtime);
        runtime
            .block_on(self.queue.next())
            .map(|incoming| Incoming {
                incoming,
                runtime: Arc::clone(&self.runtime),
            })
    }
}

/// One reverse request, answered from a plain thread.
#[derive(Debug)]
pub struct Incoming {
    incoming: super::Incoming,
    runtime: Arc<Runtime>,
}

impl Incoming {
    /// The handler name the server asked for.
    pub fn name(&self) -> &str {
        self.incoming.name()
    }

    /// The payload, decoded.
    pub fn payload<P: DeserializeOwned>(&self) -> Result<P, CallError> {
        self.incoming.payload()
    }

    /// Answers with `reply`.
    pub fn reply<R: Serialize + ?Sized>(self, reply: &R) -> Result<(), CallError> {
        self.runtime.block_on(self.incoming.reply(reply))
    }

    /// Answers with an error.
    pub fn reject(self, message: &str) -> Result<(), CallError> {
        self.runtime.block_on(self.incoming.reject(message))
    }
}
