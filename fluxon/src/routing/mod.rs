//! Routing: the [`View`] trait that `#[view]` implements, the [`Router`] that maps names to views,
//! and the [`Request`] every view receives.
//!
//! A view is registered by its item, never by a string the compiler cannot check:
//!
//! ```
//! use fluxon::{view, views, OrUser, Request, Router, ViewError};
//!
//! #[view]
//! async fn hello(req: Request, name: String) -> String {
//!     format!("hello {name}, from session {}", req.session_id())
//! }
//!
//! #[view]
//! fn add(_req: Request, (a, b): (i64, i64)) -> Result<i64, ViewError> {
//!     a.checked_add(b).or_user("overflow")
//! }
//!
//! let router = Router::new().mapping(views![hello, add]).unwrap();
//! assert_eq!(router.view_names(), ["add", "hello"]);
//! ```
//!
//! What this module does not own: the connection that carries calls (`server`), and the wire
//! encoding of payloads and replies (`wire`).

mod request;
mod reverse;
mod router;
mod view;

pub(crate) use request::Connection;
pub use request::Request;
pub use reverse::{Reverse, ToReverse, ToReverseCall};
pub(crate) use router::{Dispatched, Outcome, RoutedView};
pub use router::{Router, RouterError, ViewEntry};
pub(crate) use view::Failure;
pub use view::{BoxFuture, NoViewError, OrUser, View, ViewError};

#[doc(hidden)]
pub use view::{run_blocking, IntoViewResult};
