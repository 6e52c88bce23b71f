//! `Request`: what a view knows about the call it is answering.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::auth::SessionId;
use crate::server::{ServerHandle, Session, UserId};

/// The context of one call: who is calling, over which session, and the server it arrived at.
///
/// Cheap to clone; a view may move it into tasks it spawns.
#[derive(Clone)]
pub struct Request {
    peer: SocketAddr,
    session: Arc<Session>,
    server: ServerHandle,
    received: Instant,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("peer", &self.peer)
            .field("session", &self.session.id())
            .field("user", &self.session.user_id())
            .finish_non_exhaustive()
    }
}

impl Request {
    pub(crate) fn new(
        peer: SocketAddr,
        session: Arc<Session>,
        server: ServerHandle,
        received: tokio::time::Instant,
    ) -> Self {
        Request {
            peer,
            session,
            server,
            received: received.into_std(),
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// The session this call belongs to. It outlives the connection: a client that reconnects with
    /// its token keeps it.
    pub fn session_id(&self) -> SessionId {
        self.session.id()
    }

    /// The user this session is logged in as, if any.
    pub fn user_id(&self) -> Option<UserId> {
        self.session.user_id()
    }

    /// Binds this session to a user (the original's `request.login(user_id)`). Every connection of
    /// the session, now and after reconnects, is that user's. One user may be logged in on many
    /// sessions at once.
    pub fn login(&self, user_id: UserId) {
        self.server.sessions().login(&self.session, user_id);
        // Anything kept for this user while they were away goes out now.
        self.server.deliver_mailbox(user_id);
    }

    /// Unbinds this session from its user.
    pub fn logout(&self) {
        self.server.sessions().logout(&self.session);
    }

    /// Adds this session to a named group (for `reverse_request_group`); it leaves when the
    /// session ends.
    pub fn join_group(&self, group: &str) {
        self.server.join_group(self.session.id(), group);
    }

    /// Removes this session from a group.
    pub fn leave_group(&self, group: &str) {
        self.server.leave_group(self.session.id(), group);
    }

    /// The server this call arrived at: for reverse requests, shutdown, counts.
    pub fn server(&self) -> &ServerHandle {
        &self.server
    }

    /// The value of type `T` shared with [`Router::state`](crate::Router::state), if one was.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.server.shared.router.get_state()
    }

    /// The server's database: the [`AsyncDatabase`](crate::db::AsyncDatabase) given to the router
    /// with [`Router::state`](crate::Router::state).
    pub fn db(&self) -> Result<&crate::db::AsyncDatabase, crate::db::DbError> {
        self.state().ok_or(crate::db::DbError::NoDatabase)
    }

    /// The logged-in user, loaded from the database; `None` when the session is not logged in
    /// (or the user was deleted since).
    pub async fn user<U: crate::db::AuthorizedUser>(
        &self,
    ) -> Result<Option<U>, crate::db::DbError> {
        use crate::db::Executor;
        let Some(id) = self.user_id() else {
            return Ok(None);
        };
        self.db()?.execute(crate::db::user_by_id::<U>(id)?).await
    }

    /// Logs this session in as the user with this username and password (argon2id verified off
    /// the runtime's threads); returns the user's id. A wrong username or password is
    /// [`DbError::BadCredentials`](crate::db::DbError::BadCredentials), and leaves the session as
    /// it was.
    pub async fn login_with_password<U: crate::db::AuthorizedUser>(
        &self,
        username: &str,
        password: &str,
    ) -> Result<UserId, crate::db::DbError> {
        use crate::db::{DbError, Executor};
        let found = self
            .db()?
            .execute(crate::db::Credentials::<U>::new(username))
            .await?;
        let password = password.to_owned();
        let verified = tokio::task::spawn_blocking(move || match found {
            Some((id, hash)) if hash.verify(&password) => Some(id),
            Some(_) => None,
            None => {
                // Spend the same time on an unknown name, so timing does not reveal which names exist.
                let _ = crate::db::Password::hash(&password);
                None
            }
        })
        .await
        .map_err(|e| DbError::Password(e.to_string()))?;
        let id = verified.ok_or(DbError::BadCredentials)?;
        self.login(id);
        Ok(id)
    }

    /// A signed grant for one cloud operation on one path (the original's
    /// `request.grant_access(operation, path)`): the view decides, the client presents the grant
    /// to the cloud endpoint. Bound to this session and its current user, the normalized path and
    /// the operation; valid for [`Limits::grant_ttl`](crate::Limits::grant_ttl).
    pub fn grant_access(
        &self,
        operation: crate::cloud::CloudOperation,
        path: &str,
    ) -> Result<crate::cloud::Grant, crate::cloud::GrantError> {
        self.grant_access_limited(operation, path, None)
    }

    /// Like [`grant_access`](Self::grant_access), for a write of at most `max_size` bytes.
    pub fn grant_access_limited(
        &self,
        operation: crate::cloud::CloudOperation,
        path: &str,
        max_size: Option<u64>,
    ) -> Result<crate::cloud::Grant, crate::cloud::GrantError> {
        let path = crate::cloud::CloudPath::parse(path)?;
        let who = (self.session.id(), self.session.login_state());
        self.server
            .grant_key()
            .grant(
                operation,
                &path,
                who,
                self.server.limits().grant_ttl,
                max_size,
            )
            .map_err(|_| crate::cloud::GrantError::BadSignature)
    }

    /// The server's cloud storage (owners, roles, permissions), if it has one.
    pub fn cloud(&self) -> Result<&crate::cloud::Cloud, crate::cloud::CloudError> {
        self.server
            .shared
            .cloud
            .as_ref()
            .ok_or(crate::cloud::CloudError::NoCloud)
    }

    /// `Ok` if this session's user holds `permission` on the cloud item at `path` (an owner holds
    /// every permission in their root; others what their roles there or above give), else
    /// [`CloudError::Forbidden`](crate::cloud::CloudError::Forbidden). Call it before
    /// [`grant_access`](Self::grant_access); the endpoint checks again when the grant is used.
    pub async fn require_cloud_permission(
        &self,
        permission: crate::cloud::Permission,
        path: &str,
    ) -> Result<(), crate::cloud::CloudError> {
        self.cloud()?
            .require(self.user_id(), path, permission)
            .await
    }

    /// When the call arrived (wall clock, derived from the monotonic arrival time).
    pub fn received_at(&self) -> SystemTime {
        SystemTime::now()
            .checked_sub(self.received.elapsed())
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// How long ago the call arrived.
    pub fn elapsed(&self) -> std::time::Duration {
        self.received.elapsed()
    }
}
