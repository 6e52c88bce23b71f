//! The `View` trait, implemented by `#[view]` on the unit struct that replaces the function.

use std::any::Any;
use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Request;
use crate::wire::ErrorCode;

/// A boxed, sendable future: what a view's [`View::call`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A function the server serves under a name.
///
/// Implemented by `#[view]`: the annotated function becomes a unit struct of the same name, so the
/// name is both the value the router and the client take (`views![signup]`, `conn.call(signup, ..)`)
/// and a type carrying the payload and reply types.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a view",
    label = "not a view",
    note = "annotate the function with `#[fluxon::view]`"
)]
pub trait View: Copy + Send + Sync + 'static {
    /// What the client sends.
    type Payload: DeserializeOwned + Send + 'static;
    /// What the client gets back on success.
    type Reply: Serialize + Send + 'static;
    /// The view's own error type, which its client decodes: `E` for a view returning
    /// `Result<T, E>` with `E: Serialize + DeserializeOwned` (the typed
    /// [`call`](crate::ConnectionHandler::call) gives it as [`CallError::View`](crate::CallError::View),
    /// to match on), [`NoViewError`] for any other view.
    type Error: DeserializeOwned + Send + 'static;
    /// The name the view is served under (the function's name unless renamed).
    const NAME: &'static str;

    /// Runs the view. (Not boxed: the router boxes each call once, with its decoding and
    /// encoding around it.)
    fn call(
        self,
        req: Request,
        payload: Self::Payload,
    ) -> impl Future<Output = Result<Self::Reply, ViewError>> + Send + 'static;

    /// Whether [`call_now`](View::call_now) runs the view (it never waits): the server then
    /// needs no slot among the connection's calls in flight for it.
    #[doc(hidden)]
    const NEVER_WAITS: bool = false;

    /// Runs the view to its end on this thread if it never waits (`#[view]` implements this for
    /// an `async fn` with no `.await` in its body, no macro that could hide one and no attribute
    /// but lints); otherwise gives the request and payload back, for [`call`](View::call). The
    /// server answers such a call with no future made for it.
    #[allow(clippy::type_complexity)]
    fn call_now(
        self,
        req: Request,
        payload: Self::Payload,
    ) -> Result<Result<Self::Reply, ViewError>, (Request, Self::Payload)> {
        Err((req, payload))
    }
}

/// Why a view failed: what its client is told, and for an internal error what the server logs.
///
/// A view returning `Result<T, ViewError>` uses `?` on any error: anything that implements
/// `std::error::Error + Send + Sync + 'static` converts into an *internal* error. Its client gets
/// [`ErrorCode::Internal`](crate::ErrorCode::Internal) and a generic message with an incident id;
/// the server's log has the id beside the whole error (its sources included), so a database path
/// or a query never reaches a client. A *deliberate* message, one meant for the client, is made
/// with [`ViewError::user`] (or [`bail!`](crate::bail), [`ensure!`](crate::ensure),
/// [`OrUser::or_user`]) and reaches it as it is, with [`ErrorCode::ViewFailed`](crate::ErrorCode::ViewFailed).
///
/// ```
/// use fluxon::{bail, view, OrUser, Request, ViewError};
///
/// #[view]
/// fn withdraw(req: Request, amount: u64) -> Result<u64, ViewError> {
///     let user = req.user_id().or_user("log in first")?;
///     if amount == 0 {
///         bail!("nothing to withdraw");
///     }
///     let balance: u64 = std::fs::read_to_string(format!("/nonexistent/{user}"))?.trim().parse()?;
///     Ok(balance.saturating_sub(amount))
/// }
/// ```
///
/// To give the client an error it can match on, return `Result<T, E>` with a serializable `E`
/// instead (see [`View::Error`]), or `Result<T, ViewError<E>>` to have both: `?` on any error
/// still makes an internal one, and [`ViewError::typed`] sends an `E` that the client decodes as
/// [`CallError::View`](crate::CallError::View):
///
/// ```
/// use fluxon::{view, Request, ViewError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// enum Refused {
///     Full { seats: u32 },
/// }
///
/// #[view]
/// fn enrol(_req: Request, course: String) -> Result<u32, ViewError<Refused>> {
///     let seats: u32 = std::fs::read_to_string(format!("/nonexistent/{course}"))?.trim().parse()?;
///     if seats == 0 {
///         return Err(ViewError::typed(Refused::Full { seats }));
///     }
///     Ok(seats - 1)
/// }
/// ```
///
/// `ViewError` deliberately does not implement `std::error::Error` (as `anyhow::Error` does not):
/// that is what lets every error convert into it with `?`.
pub struct ViewError<E = NoViewError> {
    repr: Repr<E>,
}

enum Repr<E> {
    /// A message for the client, sent as it is.
    User(Cow<'static, str>),
    /// A fault of the server: logged with an incident id, never sent.
    Internal(Box<dyn Error + Send + Sync + 'static>),
    /// The view's own error type, encoded (a view returning `Result<T, E: Serialize>`).
    Rejected {
        detail: Vec<u8>,
        type_name: &'static str,
    },
    /// The view's own error type, not yet encoded (a view returning `Result<T, ViewError<E>>`).
    Typed(E),
}

impl<E> ViewError<E> {
    /// A failure whose message the client sees as it is: write it for the client.
    pub fn user(message: impl Into<Cow<'static, str>>) -> Self {
        ViewError {
            repr: Repr::User(message.into()),
        }
    }

    /// An internal failure: the client gets a generic message with an incident id, the server's
    /// log the id and `error` with its sources. (What `?` does with any error.)
    pub fn internal(error: impl Into<Box<dyn Error + Send + Sync + 'static>>) -> Self {
        ViewError {
            repr: Repr::Internal(error.into()),
        }
    }

    /// The view's own error, which its client decodes as
    /// [`CallError::View`](crate::CallError::View) (a view returning `Result<T, ViewError<E>>`).
    pub fn typed(error: E) -> Self {
        ViewError {
            repr: Repr::Typed(error),
        }
    }

    /// The view's own error inside, when this is a [`typed`](Self::typed) one.
    pub fn typed_error(&self) -> Option<&E> {
        match &self.repr {
            Repr::Typed(error) => Some(error),
            _ => None,
        }
    }

    /// The message for the client, when this is a [`user`](Self::user) error.
    pub fn user_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::User(message) => Some(message),
            _ => None,
        }
    }

    /// The internal error inside, when this is one.
    pub fn internal_error(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        match &self.repr {
            Repr::Internal(error) => Some(&**error),
            _ => None,
        }
    }

    /// The same failure with the view's own error encoded, for the router ([`View::Error`]).
    fn erase(self) -> ViewError
    where
        E: Serialize,
    {
        let repr = match self.repr {
            Repr::User(message) => Repr::User(message),
            Repr::Internal(error) => Repr::Internal(error),
            Repr::Rejected { detail, type_name } => Repr::Rejected { detail, type_name },
            Repr::Typed(error) => return ViewError::rejected(&error),
        };
        ViewError { repr }
    }
}

impl ViewError {
    /// A view's own error type, encoded for its client ([`View::Error`]). An error that does not
    /// encode becomes an internal one.
    pub(crate) fn rejected<E: Serialize>(error: &E) -> Self {
        match postcard::to_allocvec(error) {
            Ok(detail) => ViewError {
                repr: Repr::Rejected {
                    detail,
                    type_name: std::any::type_name::<E>(),
                },
            },
            Err(err) => ViewError::internal(format!(
                "the view's error of type `{}` does not encode: {err}",
                std::any::type_name::<E>()
            )),
        }
    }

    /// What the client gets for this failure of view `view`: a code, a message and (for the
    /// view's own error type) its bytes. An internal error is logged here, with its incident id.
    pub(crate) fn into_reply(self, view: &str) -> Failure {
        match self.repr {
            Repr::User(message) => Failure::new(ErrorCode::ViewFailed, message.into_owned()),
            Repr::Internal(error) => {
                let id = crate::panic::incident_id();
                tracing::error!(
                    view = %view,
                    incident = %id,
                    error = %Chain(&*error),
                    "view failed"
                );
                Failure::new(
                    ErrorCode::Internal,
                    format!(
                        "view `{view}` failed (incident {id}; the server's log has the details)"
                    ),
                )
            }
            Repr::Rejected { detail, type_name } => Failure {
                code: ErrorCode::Rejected,
                message: format!("view `{view}` rejected the call with a `{type_name}`"),
                detail,
            },
            Repr::Typed(never) => match never {},
        }
    }
}

/// An error and its sources, `: `-separated, for the log.
struct Chain<'a>(&'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        // Bounded: a cyclic chain (a bug elsewhere) must not hang the log.
        for _ in 0..32 {
            let Some(error) = source else { break };
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

impl<E: fmt::Debug> fmt::Debug for ViewError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::User(message) => f.debug_tuple("User").field(message).finish(),
            Repr::Internal(error) => f.debug_tuple("Internal").field(error).finish(),
            Repr::Rejected { type_name, .. } => f.debug_tuple("Rejected").field(type_name).finish(),
            Repr::Typed(error) => f.debug_tuple("Typed").field(error).finish(),
        }
    }
}

impl<E: fmt::Debug> fmt::Display for ViewError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::User(message) => f.write_str(message),
            Repr::Internal(error) => Chain(&**error).fmt(f),
            Repr::Rejected { type_name, .. } => write!(f, "rejected with a `{type_name}`"),
            Repr::Typed(error) => write!(f, "rejected with {error:?}"),
        }
    }
}

impl<V, E: Error + Send + Sync + 'static> From<E> for ViewError<V> {
    fn from(error: E) -> Self {
        match for_the_client(&error) {
            Some(message) => ViewError::user(message),
            None => ViewError::internal(error),
        }
    }
}

/// The message of fluxon's own errors that are written for the caller, not the operator: a
/// failed login says so (a generic "incident" would hide why), a throttled one says when to
/// retry, a refused cloud permission or path says which, a row that failed validation says
/// which fields and why. Everything else (a database or disk fault) is internal.
fn for_the_client(error: &(dyn Any + 'static)) -> Option<String> {
    use crate::cloud::{CloudError, GrantError, PathError};
    use crate::db::DbError;
    use crate::server::LoginError;
    if let Some(e) = error.downcast_ref::<LoginError>() {
        let said = matches!(
            e,
            LoginError::BadCredentials | LoginError::Throttled { .. } | LoginError::Busy
        );
        return said.then(|| e.to_string());
    }
    if let Some(e) = error.downcast_ref::<DbError>() {
        // A validation failure is written for the client: each field and what is wrong with it.
        return matches!(e, DbError::BadCredentials | DbError::Invalid(_)).then(|| e.to_string());
    }
    if let Some(e) = error.downcast_ref::<CloudError>() {
        let said = matches!(
            e,
            CloudError::Grant(_)
                | CloudError::Path(_)
                | CloudError::Forbidden { .. }
                | CloudError::NoSuchOwner(_)
                | CloudError::NotFound(_)
                | CloudError::AlreadyExists(_)
                | CloudError::OverQuota { .. }
                | CloudError::TooLarge { .. }
                | CloudError::TooManyItems { .. }
        );
        return said.then(|| e.to_string());
    }
    if let Some(e) = error.downcast_ref::<GrantError>() {
        return Some(e.to_string());
    }
    error.downcast_ref::<PathError>().map(ToString::to_string)
}

/// A view's failure as it goes on the wire.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The code the client matches on.
    pub code: ErrorCode,
    /// The message for people.
    pub message: String,
    /// postcard bytes of the view's error type, for [`ErrorCode::Rejected`].
    pub detail: Vec<u8>,
}

impl Failure {
    /// A failure with no detail.
    pub fn new(code: ErrorCode, message: String) -> Self {
        Failure {
            code,
            message,
            detail: Vec::new(),
        }
    }
}

/// Turns an `Option` or a `Result` into a [`ViewError::user`] with a message for the client:
/// `req.user_id().or_user("log in first")?`.
pub trait OrUser<T> {
    /// `Some(v)` / `Ok(v)` as `Ok(v)`; otherwise a user error with this message (a `Result`'s
    /// error is dropped: it is not for the client).
    fn or_user<V>(self, message: impl Into<Cow<'static, str>>) -> Result<T, ViewError<V>>;
}

impl<T> OrUser<T> for Option<T> {
    fn or_user<V>(self, message: impl Into<Cow<'static, str>>) -> Result<T, ViewError<V>> {
        self.ok_or_else(|| ViewError::user(message))
    }
}

impl<T, E> OrUser<T> for Result<T, E> {
    fn or_user<V>(self, message: impl Into<Cow<'static, str>>) -> Result<T, ViewError<V>> {
        self.map_err(|_| ViewError::user(message))
    }
}

/// Returns early from a view with a [`ViewError::user`] message, formatted like `format!`:
/// `bail!("course {id} is full")`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::ViewError::user(::std::format!($($arg)+)))
    };
}

/// Returns early from a view with a [`ViewError::user`] message unless the condition holds:
/// `ensure!(seats > 0, "course {id} is full")`.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::bail!($($arg)+);
        }
    };
}

/// The error type of a view with no error of its own type (one returning a plain value or
/// `Result<T, ViewError>`): it has no values, so `CallError::View` never holds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum NoViewError {}

impl fmt::Display for NoViewError {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

/// How `#[view]` turns a `Result`-returning function's output into the reply or an error.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a view cannot return `{Self}`",
    label = "the error type must be `fluxon::ViewError` (or `ViewError<E>`), or `Serialize + DeserializeOwned`",
    note = "return `Result<T, fluxon::ViewError>` (any error converts into it with `?`; the client gets a generic message, the log the error), or `Result<T, E>` with `E: Serialize + DeserializeOwned` (the client gets `E` typed, as `CallError::View`)"
)]
pub trait IntoViewResult {
    /// The success type.
    type Reply;
    /// The error type the client decodes ([`View::Error`]).
    type Error;
    /// Splits into the reply or a [`ViewError`].
    fn into_view_result(self) -> Result<Self::Reply, ViewError>;
}

impl<T, E: Serialize + DeserializeOwned> IntoViewResult for Result<T, ViewError<E>> {
    type Reply = T;
    type Error = E;

    fn into_view_result(self) -> Result<T, ViewError> {
        self.map_err(ViewError::erase)
    }
}

impl<T, E: Serialize + DeserializeOwned> IntoViewResult for Result<T, E> {
    type Reply = T;
    type Error = E;

    fn into_view_result(self) -> Result<T, ViewError> {
        self.map_err(|error| ViewError::rejected(&error))
    }
}

/// Runs a plain-`fn` view on tokio's blocking pool, so it never stalls the runtime's workers.
///
/// A panic inside resumes here, where the dispatcher catches it and answers `Panicked`.
#[doc(hidden)]
pub async fn run_blocking<F, T>(f: F) -> Result<T, ViewError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Ok(value),
        Err(err) => match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(ViewError::user(
                "the view was cancelled: the server is shutting down",
            )),
        },
    }
}
