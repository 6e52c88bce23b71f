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
    /// What every call on the connection shares (one reference count per call, not one per part).
    conn: Arc<Connection>,
    received: Instant,
}

/// What the calls of one connection have in common.
pub(crate) struct Connection {
    peer: SocketAddr,
    session: Arc<Session>,
    /// The connection's number in the session's links.
    link: u64,
    server: ServerHandle,
}

impl Connection {
    /// The context of the calls that come from `peer` on `session`'s link number `link`.
    pub(crate) fn new(
        peer: SocketAddr,
        session: Arc<Session>,
        link: u64,
        server: ServerHandle,
    ) -> Arc<Self> {
        Arc::new(Connection {
            peer,
            session,
            link,
            server,
        })
    }
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("peer", &self.conn.peer)
            .field("session", &self.conn.session.id())
            .field("user", &self.conn.session.user_id())
            .finish_non_exhaustive()
    }
}

impl Request {
    pub(crate) fn new(conn: &Arc<Connection>, received: tokio::time::Instant) -> Self {
        Request {
            conn: Arc::clone(conn),
            received: received.into_std(),
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.conn.peer
    }

    /// The session this call belongs to. It outlives the connection: a client that reconnects with
    /// its token keeps it.
    pub fn session_id(&self) -> SessionId {
        self.conn.session.id()
    }

    /// The user this session is logged in as, if any.
    pub fn user_id(&self) -> Option<UserId> {
        self.conn.session.user_id()
    }

    /// Binds this session to a user (the original's `request.login(user_id)`). Every connection of
    /// the session, now and after reconnects, is that user's. One user may be logged in on many
    /// sessions at once.
    ///
    /// The session's token rotates: this connection's client is sent the new one (before this
    /// call's reply), the old one no longer resumes the session, and the session's other
    /// connections are closed. So a token someone learned before the login (planted on the
    /// client, or read off it) is of no use after it.
    pub fn login(&self, user_id: UserId) {
        let token = self
            .conn
            .server
            .sessions()
            .login(&self.conn.session, user_id);
        self.announce(token, true);
        // Anything kept for this user while they were away goes out now.
        self.conn.server.deliver_mailbox(user_id);
    }

    /// Unbinds this session from its user; the session leaves its groups, and its token rotates
    /// (this connection's client is sent the new one).
    pub fn logout(&self) {
        let token = self.conn.server.sessions().logout(&self.conn.session);
        self.announce(token, false);
    }

    /// Sends the session's new token to the connection this call came on; with `alone`, closes the
    /// session's other connections.
    fn announce(&self, token: crate::auth::SessionToken, alone: bool) {
        for link in self.conn.session.links() {
            if link.id() == self.conn.link {
                link.send_token(token.to_wire());
            } else if alone {
                link.kick();
            } else {
                link.send_token(token.to_wire());
            }
        }
    }

    /// Adds this session to a named group (for `reverse_request_group`); it leaves when the
    /// session ends.
    pub fn join_group(&self, group: &str) {
        self.conn.server.join_group(self.conn.session.id(), group);
    }

    /// Removes this session from a group.
    pub fn leave_group(&self, group: &str) {
        self.conn.server.leave_group(self.conn.session.id(), group);
    }

    /// The server this call arrived at: for reverse requests, shutdown, counts.
    pub fn server(&self) -> &ServerHandle {
        &self.conn.server
    }

    /// The value of type `T` shared with [`Router::state`](crate::Router::state), if one was.
    pub fn state<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.conn.server.shared.router.get_state()
    }

    /// The server's database: the [`AsyncDatabase`](crate::db::AsyncDatabase) given to the router
    /// with [`Router::state`](crate::Router::state).
    pub fn db(&self) -> Result<&crate::db::AsyncDatabase, crate::db::DbError> {
        self.state().ok_or(crate::db::DbError::NoDatabase)
    }

    /// The logged-in user, loaded from the database; `None` when the session is not logged in.
    /// A session whose user was deleted since is logged out here (and `None` returned).
    ///
    /// # Errors
    /// [`DbError::NoDatabase`](crate::db::DbError::NoDatabase) without a database in the router's
    /// state; any database error of the lookup.
    ///
    /// # Cancel safety
    /// Cancel safe: a read.
    pub async fn user<U: crate::db::AuthorizedUser>(
        &self,
    ) -> Result<Option<crate::db::Row<U>>, crate::db::DbError> {
        use crate::db::Executor;
        let Some(id) = self.user_id() else {
            return Ok(None);
        };
        let user = self.db()?.execute(crate::db::user_by_id::<U>(id)?).await?;
        if user.is_none() && self.user_id() == Some(id) {
            tracing::info!(user = id, session = %self.session_id(), "the session's user was deleted; logged out");
            self.logout();
        }
        Ok(user)
    }

    /// Hashes a password for storing (argon2id), off the runtime's threads and within the
    /// server's hashing bound, counted against this caller's address. What a signup view calls;
    /// [`Password::hash`](crate::db::Password::hash) blocks its thread for the whole hash.
    ///
    /// # Errors
    /// [`HashError::Busy`](crate::auth::HashError::Busy) when every hashing slot stayed taken for
    /// the wait (see [`LoginLimits`](crate::LoginLimits)).
    ///
    /// # Cancel safety
    /// Cancel safe: a hash that has started finishes on its thread, and its slot is given back.
    pub async fn hash_password(
        &self,
        plain: &str,
    ) -> Result<crate::db::Password, crate::auth::HashError> {
        let peer = self.peer_key().ip();
        self.conn
            .server
            .password_hasher()
            .hash_for(Some(peer), plain)
            .await
    }

    fn peer_key(&self) -> crate::server::PeerKey {
        crate::server::PeerKey::new(self.conn.peer.ip(), self.conn.server.limits().ipv6_prefix)
    }

    /// Logs this session in as the user with this username and password; returns the user's id.
    ///
    /// Throttled first (see [`LoginLimits`](crate::LoginLimits)): an attempt over its address's or
    /// its username-and-address's bucket is refused before anything is looked up. Then the
    /// password is checked with argon2id off the runtime's threads, within the server's hashing
    /// bound (an unknown username costs a hash too, so timing does not tell which names exist).
    /// Failed and throttled attempts are counted ([`ServerHandle::stats`]) and logged, without
    /// the password.
    ///
    /// # Errors
    /// [`LoginError::BadCredentials`](crate::LoginError::BadCredentials) for a wrong username or
    /// password (the session stays as it was), `Throttled` with when to retry, `Busy` when no
    /// hashing slot freed up in time, `Db` when the lookup failed.
    ///
    /// # Cancel safety
    /// Cancel safe: the session is logged in only once the password checked, in one step.
    pub async fn login_with_password<U: crate::db::AuthorizedUser>(
        &self,
        username: &str,
        password: &str,
    ) -> Result<UserId, crate::LoginError> {
        use crate::admission::Counters;
        use crate::db::Executor;
        use crate::server::logins::{user_key, Admission};
        use crate::LoginError;
        let shared = &self.conn.server.shared;
        let counters = &shared.counters;
        let peer = self.peer_key();
        let user = user_key(username);
        let shown = crate::server::logins::shown(username);
        let admission = match &shared.cluster {
            Some(node) => shared.logins.admit_shared(node, peer, user).await,
            None => shared.logins.admit(peer, user),
        };
        match admission {
            Admission::Throttled(retry_after) => {
                Counters::bump(&counters.logins_throttled);
                if let Some(also) = shared.logins.throttled_log.allow() {
                    tracing::info!(%peer, username = %shown, ?retry_after, also_throttled = also, "login throttled");
                }
                return Err(LoginError::Throttled { retry_after });
            }
            Admission::Go(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
            Admission::Go(_) => {}
        }
        let found = self
            .db()?
            .execute(crate::db::Credentials::<U>::new(username))
            .await?;
        let hasher = &shared.logins.hasher;
        let verified = match found {
            Some((id, hash)) => hasher
                .verify_for(Some(peer.ip()), &hash, password)
                .await
                .map(|ok| ok.then_some(id)),
            // Spend the same on an unknown name, so timing does not reveal which names exist.
            None => hasher
                .hash_for(Some(peer.ip()), password)
                .await
                .map(|_| None),
        };
        match verified {
            Ok(Some(id)) => {
                Counters::bump(&counters.logins_succeeded);
                shared
                    .logins
                    .succeeded(shared.cluster.as_deref(), peer, user)
                    .await;
                self.login(id);
                Ok(id)
            }
            Ok(None) => {
                Counters::bump(&counters.logins_failed);
                tracing::info!(%peer, username = %shown, "login failed: wrong username or password");
                Err(LoginError::BadCredentials)
            }
            Err(crate::auth::HashError::Busy { waited }) => {
                Counters::bump(&counters.logins_busy);
                tracing::warn!(%peer, ?waited, "login refused: every password-hashing slot is busy");
                Err(LoginError::Busy)
            }
            Err(err) => Err(LoginError::Hash(err)),
        }
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
        let who = (self.conn.session.id(), self.conn.session.login_state());
        self.conn
            .server
            .grant_key()
            .grant(
                operation,
                &path,
                who,
                self.conn.server.limits().grant_ttl,
                max_size,
            )
            .map_err(|_| crate::cloud::GrantError::BadSignature)
    }

    /// The server's cloud storage (owners, roles, permissions), if it has one.
    pub fn cloud(&self) -> Result<&crate::cloud::Cloud, crate::cloud::CloudError> {
        self.conn
            .server
            .shared
            .cloud
            .as_ref()
            .ok_or(crate::cloud::CloudError::NoCloud)
    }

    /// `Ok` if this session's user holds `permission` on the cloud item at `path` (an owner holds
    /// every permission in their root; others what their roles there or above give), else
    /// [`CloudError::Forbidden`](crate::cloud::CloudError::Forbidden). Call it before
    /// [`grant_access`](Self::grant_access); the endpoint checks again when the grant is used.
    ///
    /// # Errors
    /// `Forbidden` as above; `NoCloud` when the server has no cloud storage; `Path` for a path
    /// that does not parse; `Db` when the lookup failed.
    ///
    /// # Cancel safety
    /// Cancel safe: a read.
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
