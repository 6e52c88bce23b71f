//! # Fluxon
//!
//! A declarative framework for client/server applications that are not tied to browsers. Annotate
//! functions with [`#[view]`](view), register them with [`views!`], serve them with
//! [`run_server`]; clients call them over one persistent connection with [`ConnectionHandler`].
//!
//! ```
//! use fluxon::{view, views, AsyncServer, ConnectionHandler, Request, Router};
//!
//! #[view]
//! async fn greet(req: Request, name: String) -> String {
//!     req.login(7);
//!     format!("hello, {name}")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let router = Router::new().mapping(views![greet])?;
//! let server = AsyncServer::new(0).router(router).start().await?;
//!
//! let conn = ConnectionHandler::connect(server.local_addr().to_string()).await?;
//! let reply = conn.call(greet, &"jack".to_owned()).await?; // typed: String in, String out
//! assert_eq!(reply, "hello, jack");
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Modules
//!
//! * [`wire`]: the frame codec and the postcard envelope; the protocol is specified there byte by
//!   byte.
//! * [`server`]: [`AsyncServer`], [`run_server`], connections, sessions, limits, shutdown.
//! * [`routing`]: the [`View`] trait, [`Router`], [`Request`].
//! * [`client`]: [`ConnectionHandler`], and [`blocking::ConnectionHandler`] for code without a
//!   runtime.
//! * [`auth`]: signed session tokens, bounded password hashing, secrets.
//! * [`db`]: models (`#[derive(Model)]`), typed queries, rows with their keys, aggregates,
//!   upserts, prefetching, streaming, raw SQL, validation; [`db::Database`] and
//!   [`db::AsyncDatabase`].
//! * [`migrate`]: migrations generated from the models, applied with refinery, drift checks.
//! * [`cli`]: an app's command line (`serve`, `makemigrations`, `migrate`, ...).
//! * [`cloud`]: the cloud storage endpoint, its grants and permissions, and the client's
//!   connector; its protocol is specified in [`cloud::protocol`].
//! * [`tls`]: certificates for the server and what a client trusts.
//! * [`blocking`]: the blocking client and connector, for programs with no async runtime.
//!
//! Conventions: settings are structs with defaults whose fields are read and set with consuming
//! methods of the same name (`Limits::default().max_connections(100)`); errors are typed enums,
//! `#[non_exhaustive]`; public async methods say under `# Errors` what they fail with and under
//! `# Cancel safety` what dropping them mid-way leaves.
#![deny(missing_docs)]

// The macros generate `::fluxon::...` paths; this lets them work inside the crate's own tests too.
extern crate self as fluxon;

/// The house style of configuration: a struct with defaults, its fields readable, each set with a
/// consuming method of the same name (`Limits::default().max_connections(100)`), as tokio's and
/// axum's builders are. `setters!(Limits { max_connections: usize, .. })` writes those methods;
/// the struct itself is `#[must_use]`, so a setting made and dropped is a warning.
macro_rules! setters {
    ($ty:ident { $($field:ident: $fty:ty),* $(,)? }) => {
        impl $ty {
            $(
                #[doc = concat!("Sets [`", stringify!($field), "`](Self::", stringify!($field), ").")]
                pub fn $field(mut self, value: $fty) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
}

mod admission;
mod armed;
pub mod auth;
pub mod cli;
pub mod client;
pub mod cloud;
pub mod cluster;
pub mod db;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod migrate;
mod panic;
pub mod routing;
pub mod server;
mod timer;
pub mod tls;
pub mod wire;

/// The blocking client, for programs with no async runtime.
pub mod blocking {
    pub use crate::client::blocking::ConnectionHandler;
    pub use crate::cloud::blocking::CloudStorageConnector;
}

pub use client::{CallError, ClientConfig, ConnectError, ConnectionHandler};
pub use cluster::{Cluster, ClusterError};
pub use routing::{
    NoViewError, OrUser, Request, Reverse, Router, RouterError, ToReverse, ToReverseCall, View,
    ViewError,
};
pub use server::{
    run_server, AsyncServer, GroupNotice, Limits, LoginError, LoginLimits, MailboxLimits, Rate,
    ReverseError, RunningServer, ServerError, ServerHandle, ServerStats, UserId,
};
pub use wire::ErrorCode;

/// Turns a function into a view the server can serve and clients can call.
///
/// ```
/// use fluxon::{ensure, view, Request, ViewError};
/// use serde::{Deserialize, Serialize};
///
/// /// Served as "signup"; clients call it with a `String` and get a `u64` or an error.
/// #[view]
/// async fn signup(req: Request, username: String) -> Result<u64, ViewError> {
///     ensure!(!username.is_empty(), "a username is required");
///     Ok(req.session_id().as_bytes()[0] as u64)
/// }
///
/// /// An error of the app's own type: the client gets it typed, as `CallError::View(..)`.
/// #[derive(Debug, Serialize, Deserialize)]
/// enum BookingError {
///     SeatTaken,
///     NoSuchSeat(u32),
/// }
///
/// #[view]
/// async fn book(_req: Request, seat: u32) -> Result<u32, BookingError> {
///     match seat {
///         0 => Err(BookingError::SeatTaken),
///         1..=40 => Ok(seat),
///         _ => Err(BookingError::NoSuchSeat(seat)),
///     }
/// }
///
/// /// A plain `fn` runs on the blocking thread pool; a view may take no payload.
/// #[view(name = "server_time")]
/// fn now(_req: Request) -> u64 {
///     0
/// }
/// ```
///
/// The function becomes a unit struct of the same name implementing [`View`]; the function itself
/// stays callable as `signup::handler(req, payload)`. The first parameter must be a [`Request`];
/// the second, if any, is the payload and must be an owned `DeserializeOwned` type. The return type
/// is a `Serialize` value, `Result<T, ViewError>` (any error converts into [`ViewError`] with `?`;
/// see there what the client is told), or `Result<T, E>` with `E: Serialize + DeserializeOwned`:
/// the client gets `E` typed, as [`CallError::View`], with the code [`ErrorCode::Rejected`].
/// Views cannot be generic.
pub use fluxon_macros::view;

/// Declares a reverse request (a function the server calls on its clients) once, in a crate
/// both sides share: `#[reverse] async fn receive_message(message: Message) -> Ack;` (no body).
/// It becomes a unit struct implementing [`Reverse`]; the server's `reverse_request`,
/// `reverse_call` and friends and the client's `on` take it in place of the name, and check the
/// payload and reply types against it. `#[reverse(name = "...")]` sends it under another name.
pub use fluxon_macros::reverse;

/// Lists views for [`Router::mapping`]: `views![signup, login]`. A name that is not a view in
/// scope is a compile error.
#[macro_export]
macro_rules! views {
    ($($view:expr),* $(,)?) => {
        ::std::vec![$($crate::routing::ViewEntry::of($view)),*]
    };
}

/// Lists models for [`cli::App::models`], `create_tables` and the migration commands, in any
/// order (referenced tables are put first where it matters): `models![User, Teacher, Course]`
/// is an array of their `SCHEMA`s, usable in a `const`. A name that is not a model is a compile
/// error.
#[macro_export]
macro_rules! models {
    ($($model:ty),* $(,)?) => {
        [$(<$model as $crate::db::Model>::SCHEMA),*]
    };
}

/// What the macros' generated code calls. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::routing::{run_blocking, BoxFuture, IntoViewResult};
    pub use rusqlite;
}
