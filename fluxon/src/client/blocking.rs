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

use super::{CallError, ClientConfig, ConnectError};
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
        let addr = addr.into();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fluxon-client")
            .enable_all()
            .build()
            .map_err(|source| ConnectError::Io {
                addr: addr.clone(),
                source,
            })?;
        let conn = runtime.block_on(super::ConnectionHandler::connect_with(addr, config))?;
        Ok(ConnectionHandler {
            conn,
            runtime: Arc::new(runtime),
        })
    }

    /// Calls a view by name; see [`super::ConnectionHandler::send_request`].
    pub fn send_request<P, R>(&self, view: &str, payload: &P) -> Result<R, CallError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        self.runtime.block_on(self.conn.send_request(view, payload))
    }

    /// Calls a view through its item; see [`super::ConnectionHandler::call`].
    pub fn call<V>(&self, view: V, payload: &V::Payload) -> Result<V::Reply, CallError>
    where
        V: View,
        V::Payload: Serialize,
        V::Reply: DeserializeOwned,
    {
        self.runtime.block_on(self.conn.call(view, payload))
    }

    /// A handle on the same connection whose calls wait `timeout` for their replies.
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        ConnectionHandler {
            conn: self.conn.with_timeout(timeout),
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
