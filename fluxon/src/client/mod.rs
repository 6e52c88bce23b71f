//! The client: [`ConnectionHandler`] keeps one connection to a server, multiplexes any number of
//! concurrent calls over it, matches replies by id, and reconnects with backoff (resuming its
//! session, so a login survives). [`blocking::ConnectionHandler`] is the same client for programs
//! without an async runtime.
//!
//! ```no_run
//! # use fluxon::{view, Request};
//! # #[view] async fn signup(_req: Request, name: String) -> String { name }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use fluxon::ConnectionHandler;
//!
//! let conn = ConnectionHandler::connect("127.0.0.1:8080").await?;
//! let typed: String = conn.call(signup, &"jack".to_owned()).await?; // checked against the view
//! let by_name: String = conn.send_request("signup", &"jill".to_owned()).await?;
//! # Ok(()) }
//! ```
//!
//! What this module does not own: the wire format (`wire`) and anything server-side.

pub mod blocking;
mod config;
mod connection;
mod error;
mod link;
mod pending;
mod reading;
mod reconnect;
mod reverse;
mod shared;

pub use config::{ClientConfig, Reconnect};
pub use connection::ConnectionHandler;
pub use error::{CallError, ConnectError};
pub use reverse::{Incoming, ReverseRequests};
