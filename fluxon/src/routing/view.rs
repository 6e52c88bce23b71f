//! The `View` trait, implemented by `#[view]` on the unit struct that replaces the function.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Request;

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

/// A view's failure, as its client sees it: the code `ViewFailed` and this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ViewError {
    message: String,
}

impl ViewError {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ViewError {
            message: message.into(),
        }
    }

    /// The message the client will see.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// How `#[view]` turns a `Result`-returning function's output into the reply or an error.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "a view returning `{Self}` needs an error type that implements `Display`",
    note = "a view returns a serializable value, or `Result<T, E>` where `T: Serialize` and `E: Display`"
)]
pub trait IntoViewResult {
    /// The success type.
    type Reply;
    /// Splits into the reply or a [`ViewError`] carrying the error's `Display` text.
    fn into_view_result(self) -> Result<Self::Reply, ViewError>;
}

impl<T, E: Display> IntoViewResult for Result<T, E> {
    type Reply = T;

    fn into_view_result(self) -> Result<T, ViewError> {
        self.map_err(|e| ViewError::new(e.to_string()))
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
            Err(_) => Err(ViewError::new(
                "the view was cancelled: the server is shutting down",
            )),
        },
    }
}
