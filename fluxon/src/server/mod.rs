//! The server runtime: [`AsyncServer`] (a builder), [`run_server`], the accept loop, one reader task
//! and one writer task per connection, the session registry, and graceful shutdown.
//!
//! ```no_run
//! use fluxon::{run_server, view, views, AsyncServer, Request, Router};
//!
//! #[view]
//! async fn echo(_req: Request, text: String) -> String {
//!     text
//! }
//!
//! # async fn main_() -> Result<(), Box<dyn std::error::Error>> {
//! let router = Router::new().mapping(views![echo])?;
//! run_server(AsyncServer::new(8080).router(router)).await?; // until Ctrl-C
//! # Ok(()) }
//! ```
//!
//! Each accepted connection gets a permit from the connection limit, must finish its handshake within
//! the handshake timeout, and then has a reader task that decodes frames and spawns one task per call
//! (at most `max_in_flight` at once; past that the reader stops reading, which pushes back on the
//! client), and a writer task that drains a bounded channel of encoded replies into the socket,
//! flushing once per batch. What this module does not own: view lookup and panics (`routing`), the
//! bytes on the wire (`wire`), token cryptography (`auth`).

mod config;
mod connection;
mod error;
mod handle;
mod handshake;
mod in_flight;
mod listener;
mod logging;
pub(crate) mod logins;
mod mailbox;
mod malloc;
mod members;
mod replica;
mod reverse;
mod sessions;
mod stats;

pub use config::{AsyncServer, Limits, LoginLimits};
pub use error::ServerError;
pub use handle::ServerHandle;
pub use listener::RunningServer;
pub use logins::LoginError;
pub use mailbox::MailboxLimits;
pub use reverse::ReverseError;

/// What a group's members are told when a session joins or leaves it (see
/// [`AsyncServer::group_notices`]); postcard-encoded as `(String, Option<i64>, bool)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupNotice {
    /// The group.
    pub group: String,
    /// The user the session is logged in as, if any.
    pub user: Option<UserId>,
    /// Joined (`true`) or left.
    pub joined: bool,
}
pub use sessions::UserId;
pub use stats::{Refusals, ServerStats};

pub use crate::admission::{PeerKey, Rate};

pub(crate) use handshake::{check_hello, refusal_message, HelloOk};
pub(crate) use sessions::Session;

/// Runs a server until Ctrl-C or [`ServerHandle::shutdown`], then shuts it down gracefully: stops
/// accepting, lets calls in flight finish (within [`Limits::shutdown_grace`]), says goodbye to every
/// client and returns.
///
/// # Errors
/// As [`AsyncServer::start`].
///
/// # Cancel safety
/// Dropping the future shuts the server down (without waiting for it).
pub async fn run_server(server: AsyncServer) -> Result<(), ServerError> {
    let running = server.start().await?;
    let handle = running.handle();
    tokio::select! {
        signal = tokio::signal::ctrl_c() => {
            match signal {
                Ok(()) => tracing::info!("Ctrl-C received, shutting down"),
                Err(err) => tracing::warn!(%err, "cannot listen for Ctrl-C; shutting down"),
            }
        }
        () = handle.shutdown_requested() => tracing::info!("shutdown requested"),
    }
    running.shutdown().await;
    Ok(())
}
