//! What a part of the server that serves requests of its own (the cloud endpoint) may ask about
//! sessions, and nothing more: whose session a presented token is, and whether a session is
//! still logged in as it was when something (a grant) was signed for it. The server implements
//! it; such a part holds this, not the whole server.

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
}
