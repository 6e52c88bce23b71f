//! What a part of the server that serves requests of its own (the cloud endpoint) may ask about
//! sessions, and nothing more: whose session a presented token is, and whether a session is
//! still logged in as it was when something (a grant) was signed for it. The server implements
//! it; such a part holds this, not the whole server.

use std::future::Future;
use std::pin::Pin;

use super::{SessionId, SessionToken};

/// A user's id: what `Request::login` binds a session to, and what the database's user model
/// keys rows by.
pub type UserId = i64;

/// A session's login state: the user (if logged in) and its login generation, which changes at
/// every login and logout.
pub type LoginState = (Option<UserId>, u64);

/// Facts about the server's sessions.
pub(crate) trait SessionVerifier: Send + Sync + 'static {
    /// The session `token` names, if the server signed it and it is current.
    fn session_of(&self, token: &SessionToken) -> Option<SessionId>;
    /// The session's login state now, if the session exists.
    fn login_of(&self, session: &SessionId) -> Option<LoginState>;
    /// Makes sure the session `token` names is known here if it exists anywhere (a cluster node
    /// looks up a session made on another node), before the two questions above are asked.
    fn look_up<'a>(
        &'a self,
        token: &'a SessionToken,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}
