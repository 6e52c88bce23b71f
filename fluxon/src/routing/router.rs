//! The `Router`: view names to type-erased handlers, and the dispatch of one call.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;

use super::view::{BoxFuture, Failure};
use super::{Request, View, ViewError};
use crate::auth::{AuthError, SessionKey};
use crate::wire::ErrorCode;

/// A call's outcome before it is put on the wire: reply bytes, or what the client is told.
pub(crate) type Outcome = Result<crate::wire::Encoded<Vec<u8>>, Failure>;

/// What running a call gave.
pub(crate) enum Dispatched {
    /// The view ran to its end (it never waits), or the call failed before it ran: the outcome.
    Done(Outcome),
    /// The view waits: its future, which yields the outcome.
    Later(BoxFuture<Outcome>),
}

/// A view with its types erased: payload bytes in, reply bytes out.
trait ErasedView: Send + Sync + 'static {
    fn handle(&self, req: Request, payload: &[u8]) -> Dispatched;
}

impl<V: View> Typed<V> {
    fn routed(view: V) -> RoutedView {
        RoutedView {
            name: V::NAME,
            never_waits: V::NEVER_WAITS,
            handler: Arc::new(Typed(view)),
        }
    }
}

struct Typed<V>(V);

impl<V: View> ErasedView for Typed<V> {
    fn handle(&self, req: Request, payload: &[u8]) -> Dispatched {
        let decoded = crate::wire::decode::<V::Payload>(payload);
        let payload: V::Payload = match decoded {
            Ok(payload) => payload,
            Err(err) => {
                let message = format!(
                    "payload for view `{}` does not decode as `{}`: {err}",
                    V::NAME,
                    std::any::type_name::<V::Payload>()
                );
                return Dispatched::Done(Err(Failure::new(ErrorCode::BadPayload, message)));
            }
        };
        let view = self.0;
        match view.call_now(req, payload) {
            // A view that never waits ran here: no future, and its panics are caught around this.
            Ok(result) => Dispatched::Done(outcome::<V>(result)),
            // One box per call that waits: the view's future, its panics caught, its reply encoded.
            Err((req, payload)) => Dispatched::Later(Box::pin(async move {
                let called = AssertUnwindSafe(view.call(req, payload))
                    .catch_unwind()
                    .await;
                match called {
                    Ok(result) => outcome::<V>(result),
                    Err(panic) => Err(panicked(V::NAME, panic.as_ref())),
                }
            })),
        }
    }
}

/// A view's result as its reply's bytes, or the error its client gets.
fn outcome<V: View>(result: Result<V::Reply, ViewError>) -> Outcome {
    match result {
        Ok(reply) => crate::wire::encode_owned(reply).map_err(|err| {
            let message = format!("could not encode the reply of `{}`: {err}", V::NAME);
            Failure::new(ErrorCode::Internal, message)
        }),
        Err(err) => Err(err.into_reply(V::NAME)),
    }
}

/// A view's panic as its client sees it. The panic's text may hold anything the view had (a
/// path, a query, a secret): the client gets an id to quote, the log gets the id and the text.
fn panicked(view: &str, panic: &(dyn Any + Send)) -> Failure {
    let text = crate::panic::panic_text(panic);
    let id = crate::panic::incident_id();
    tracing::error!(view = %view, incident = %id, panic = %text, "view panicked");
    Failure::new(
        ErrorCode::Panicked,
        format!(
            "view `{view}` failed unexpectedly (incident {id}; the server's log has the details)"
        ),
    )
}

/// One view, ready to be registered; made by [`views!`](crate::views).
pub struct ViewEntry {
    view: RoutedView,
}

impl ViewEntry {
    /// Wraps a view item (the unit struct `#[view]` made).
    pub fn of<V: View>(view: V) -> Self {
        ViewEntry {
            view: Typed::routed(view),
        }
    }

    /// The name the view will be served under.
    pub fn name(&self) -> &'static str {
        self.view.name
    }
}

impl std::fmt::Debug for ViewEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewEntry")
            .field("name", &self.view.name)
            .finish()
    }
}

/// Why a router could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// Two views share a name.
    #[error(
        "two views are registered under the name `{0}`; rename one with #[view(name = \"...\")]"
    )]
    DuplicateView(&'static str),
    /// The private key was refused.
    #[error(transparent)]
    Key(#[from] AuthError),
}

/// Maps view names to views, and holds the private key that signs session tokens.
///
/// ```
/// # use fluxon::{view, views, Request, Router};
/// # #[view] async fn signup(_req: Request, _name: String) {}
/// # #[view] async fn login(_req: Request, _name: String) {}
/// let router = Router::new()
///     .private_key([7u8; 32])?
///     .mapping(views![signup, login])?;
/// # Ok::<(), fluxon::RouterError>(())
/// ```
#[derive(Clone, Default)]
pub struct Router {
    /// Keyed by the names' bytes, so a call's name is looked up as it came off the wire (a name
    /// that matches is UTF-8). Fixed-seed hashing: the keys are the app's own names (a peer only
    /// looks up), and SipHash would cost more than the rest of a lookup.
    views: HashMap<&'static [u8], RoutedView, foldhash::fast::FixedState>,
    key: Option<SessionKey>,
    grant_key: Option<crate::cloud::GrantKey>,
    state: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("views", &self.view_names())
            .finish_non_exhaustive()
    }
}

impl Router {
    /// An empty router with no private key (a random one is drawn when the server starts, so
    /// sessions do not survive a restart).
    pub fn new() -> Self {
        Router::default()
    }

    /// Registers views. A name registered twice, here or by an earlier `mapping`, is an error.
    pub fn mapping(
        mut self,
        views: impl IntoIterator<Item = ViewEntry>,
    ) -> Result<Self, RouterError> {
        for entry in views {
            let name = entry.view.name;
            if self.views.insert(name.as_bytes(), entry.view).is_some() {
                return Err(RouterError::DuplicateView(name));
            }
        }
        Ok(self)
    }

    /// Sets the private key that signs session tokens (at least 32 bytes), so tokens stay valid
    /// across restarts of a server with the same key.
    pub fn private_key(mut self, key: impl AsRef<[u8]>) -> Result<Self, RouterError> {
        self.key = Some(SessionKey::from_private_key(key.as_ref())?);
        self.grant_key = Some(crate::cloud::GrantKey::from_private_key(key.as_ref()));
        Ok(self)
    }

    /// Shares a value with every view, which reads it with [`Request::state`]. One value per type;
    /// a second value of the same type replaces the first.
    ///
    /// ```
    /// # use fluxon::Router;
    /// use std::sync::atomic::AtomicU64;
    /// let router = Router::new().state(AtomicU64::new(0));
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(TypeId::of::<T>(), Arc::new(value));
        self
    }

    pub(crate) fn get_state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.state.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// The registered names, sorted.
    pub fn view_names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.views.values().map(|view| view.name).collect();
        names.sort_unstable();
        names
    }

    pub(crate) fn grant_key(&self) -> Option<&crate::cloud::GrantKey> {
        self.grant_key.as_ref()
    }

    pub(crate) fn session_key(&self) -> Option<&SessionKey> {
        self.key.as_ref()
    }
}

/// A registered view, as calls find it.
#[derive(Clone)]
pub(crate) struct RoutedView {
    name: &'static str,
    /// The view runs where it is dispatched, never waiting (see [`View::NEVER_WAITS`]).
    never_waits: bool,
    handler: Arc<dyn ErasedView>,
}

impl RoutedView {
    /// The name it is served under.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// Whether a call of it is answered where it is dispatched (it never waits).
    pub(crate) fn never_waits(&self) -> bool {
        self.never_waits
    }

    /// Runs one call, catching panics in decoding, in the view (when it runs here) and in encoding
    /// its reply; a panic in a view that waits is caught inside its future.
    pub(crate) fn dispatch(&self, req: Request, payload: &[u8]) -> Dispatched {
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.handler.handle(req, payload))) {
            Ok(dispatched) => dispatched,
            Err(panic) => Dispatched::Done(Err(panicked(self.name, panic.as_ref()))),
        }
    }
}

impl Router {
    /// The view served under `name` (the bytes of a call's name, as they came), if any.
    pub(crate) fn view(&self, name: &[u8]) -> Option<&RoutedView> {
        self.views.get(name)
    }
}
