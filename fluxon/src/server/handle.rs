//! `ServerHandle`: the running server as views and background tasks see it.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::routing::{ToReverse, ToReverseCall};
use std::time::Duration;

use super::config::Limits;
use super::logins::Logins;
use super::mailbox::Mailbox;
use super::reverse::{self, ReverseError};
use super::sessions::Sessions;
use super::stats::ServerStats;
use super::UserId;
use crate::admission::{Bucket, Counters, Peers};
use crate::auth::SessionId;
use crate::cluster::Target;
use crate::routing::Router;
use crate::wire::Budget;

/// State shared by the accept loop, every connection and every handle.
pub(crate) struct Shared {
    pub router: Router,
    pub limits: Limits,
    pub sessions: Sessions,
    pub shutdown: crate::armed::Stop,
    /// Connections and handshakes per peer address (the main port's).
    pub peers: Arc<Peers>,
    /// Bytes all connections hold beyond their allowance.
    pub budget: Arc<Budget>,
    pub logins: Logins,
    /// The calls-per-session bucket, when there is a limit.
    pub call_rate: Option<Bucket<SessionId>>,
    pub counters: Arc<Counters>,
    pub local_addr: SocketAddr,
    pub mailbox: Option<Arc<Mailbox>>,
    pub grant_key: crate::cloud::GrantKey,
    pub cloud: Option<crate::cloud::Cloud>,
    /// Wraps accepted sockets in TLS, when the server is secure.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// This server as a cluster node, when it is one.
    pub cluster: Option<Arc<crate::cluster::Node>>,
    /// The reverse request that tells a group's members of a join or leave, if any.
    pub group_notices: Option<String>,
    /// The load balancers whose connections start with a PROXY header.
    pub balancers: crate::admission::Balancers,
}

/// A cheap, cloneable handle on a running server: ask it to shut down, count its connections and
/// sessions. Views reach it through [`Request::server`](crate::Request::server).
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// Starts a graceful shutdown: no new connections or calls; calls in flight may finish.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }

    /// Whether a shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Completes when a shutdown has been asked for.
    ///
    /// # Cancel safety
    /// Cancel safe: it only waits.
    pub async fn shutdown_requested(&self) {
        self.shared.shutdown.cancelled().await;
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// Connections open now (handshake done or not).
    pub fn connection_count(&self) -> usize {
        self.shared.peers.totals().0
    }

    /// What the server holds now and what it has turned away since it started: connections,
    /// refusals by limit, the memory budget, logins and throttling, cloud refusals.
    pub fn stats(&self) -> ServerStats {
        let shared = &self.shared;
        let (connections, handshaking) = shared.peers.totals();
        let mut stats = ServerStats::counted(&shared.counters);
        stats.connections = connections;
        stats.handshaking = handshaking;
        stats.peers = shared.peers.peer_count();
        stats.sessions = shared.sessions.len();
        stats.budget_in_use = shared.budget.in_use();
        stats.budget_waits = shared.budget.waited();
        stats.hashes_running = shared.logins.hasher.running();
        stats.login_keys = shared.logins.keys();
        stats
    }

    /// The server's password hasher: argon2id off the runtime, bounded server-wide (see
    /// [`LoginLimits`](super::LoginLimits)).
    pub fn password_hasher(&self) -> &crate::auth::PasswordHasher {
        &self.shared.logins.hasher
    }

    /// Sessions remembered now, connected or waiting to be resumed.
    pub fn session_count(&self) -> usize {
        self.shared.sessions.len()
    }

    /// Every session the server remembers: its id, its user (if logged in), and how many
    /// connections it has open now (0: waiting to be resumed).
    pub fn sessions_list(&self) -> Vec<(crate::auth::SessionId, Option<super::UserId>, usize)> {
        self.shared.sessions.list()
    }

    /// The sessions `user_id` is logged in on now (one per device or client).
    pub fn user_sessions(&self, user_id: super::UserId) -> Vec<crate::auth::SessionId> {
        self.shared.sessions.of_user(user_id)
    }

    /// Closes every connection of a session, saying goodbye. The session itself (and its login) is
    /// kept, so its client may reconnect and resume it. `false` if no such session exists.
    pub fn disconnect_session(&self, session: crate::auth::SessionId) -> bool {
        self.shared.sessions.disconnect(&session)
    }

    /// Ends a session: its connections are closed and it is forgotten, so its token resumes
    /// nothing (its client starts over, logged out). `false` if no such session exists.
    pub fn end_session(&self, session: crate::auth::SessionId) -> bool {
        self.shared.sessions.end(&session)
    }

    /// "Log out everywhere": ends every session `user` is logged in on (see
    /// [`end_session`](Self::end_session)); how many there were. Call it when a user is deleted or
    /// their password changes.
    pub fn end_user_sessions(&self, user: UserId) -> usize {
        self.shared.sessions.end_user(user)
    }

    /// Sends a reverse request to every connected client of `user` (the original's
    /// `request.server.reverse_request(user_id, name, payload)`); `true` if at least one took
    /// it, `false` when the user is offline.
    ///
    /// # Cancel safety
    /// Cancel safe: each connection's copy is queued whole or not at all; dropping the future
    /// may leave some of the recipients unsent.
    pub async fn reverse_request<P: Serialize + ?Sized>(
        &self,
        user: UserId,
        name: impl ToReverse<P>,
        payload: &P,
    ) -> bool {
        self.send_to(Target::User(user), name.reverse_name(), payload, true)
            .await
            > 0
    }

    /// Sends a reverse request to every connection of one session; `true` if one took it.
    ///
    /// # Cancel safety
    /// Cancel safe: each connection's copy is queued whole or not at all; dropping the future
    /// may leave some of the recipients unsent.
    pub async fn reverse_request_session<P: Serialize + ?Sized>(
        &self,
        session: SessionId,
        name: impl ToReverse<P>,
        payload: &P,
    ) -> bool {
        self.send_to(
            Target::Session(*session.as_bytes()),
            name.reverse_name(),
            payload,
            true,
        )
        .await
            > 0
    }

    /// Sends a reverse request to every connection of every session in `group`; how many took it.
    ///
    /// # Cancel safety
    /// Cancel safe: each connection's copy is queued whole or not at all; dropping the future
    /// may leave some of the recipients unsent.
    pub async fn reverse_request_group<P: Serialize + ?Sized>(
        &self,
        group: &str,
        name: impl ToReverse<P>,
        payload: &P,
    ) -> usize {
        self.send_to(
            Target::Group(group.to_owned()),
            name.reverse_name(),
            payload,
            false,
        )
        .await
    }

    /// Sends a reverse request to every connected client; how many took it.
    ///
    /// # Cancel safety
    /// Cancel safe: each connection's copy is queued whole or not at all; dropping the future
    /// may leave some of the recipients unsent.
    pub async fn broadcast<P: Serialize + ?Sized>(
        &self,
        name: impl ToReverse<P>,
        payload: &P,
    ) -> usize {
        self.send_to(Target::All, name.reverse_name(), payload, false)
            .await
    }

    /// Sends to `target`'s connections (on every node of a cluster); how many took it. With
    /// `any`, it may stop counting at the first.
    async fn send_to<P: Serialize + ?Sized>(
        &self,
        target: Target,
        name: &str,
        payload: &P,
        any: bool,
    ) -> usize {
        match reverse::encode(payload) {
            Ok(bytes) => super::members::send(&self.shared, target, name, bytes, any).await,
            Err(err) => {
                tracing::warn!(%err, name, "reverse request not sent");
                0
            }
        }
    }

    /// Sends a reverse request to `user` now, or keeps it in the mailbox if the user is offline
    /// (needs [`AsyncServer::mailbox`](super::AsyncServer::mailbox)). `Ok(true)`: delivered now;
    /// `Ok(false)`: kept, for delivery when the user next connects.
    ///
    /// # Errors
    /// [`ReverseError::Mailbox`] without a mailbox or when its database fails, `MailboxFull`
    /// when the user's mailbox holds its most, `Encode` for a payload that does not serialize.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropped after the user was found offline, the request may or may not
    /// have been kept.
    pub async fn reverse_request_or_keep<P: Serialize + ?Sized>(
        &self,
        user: UserId,
        name: impl ToReverse<P>,
        payload: &P,
    ) -> Result<bool, ReverseError> {
        let name = name.reverse_name();
        let mailbox = self.shared.mailbox.as_ref().ok_or_else(|| {
            ReverseError::Mailbox("this server has no mailbox (AsyncServer::mailbox)".to_owned())
        })?;
        let bytes = reverse::encode(payload)?;
        // Online on any node of a cluster: delivered there, not kept.
        let target = Target::User(user);
        if super::members::send(&self.shared, target, name, bytes.clone(), true).await > 0 {
            return Ok(true);
        }
        mailbox.keep(user, name, bytes).await?;
        Ok(false)
    }

    /// How many reverse requests the mailbox keeps for `user`.
    ///
    /// # Errors
    /// [`ReverseError::Mailbox`] when the mailbox's database fails.
    ///
    /// # Cancel safety
    /// Cancel safe: a read.
    pub async fn kept_for(&self, user: UserId) -> Result<i64, ReverseError> {
        match &self.shared.mailbox {
            Some(mailbox) => mailbox
                .count(user)
                .await
                .map_err(|e| ReverseError::Mailbox(e.to_string())),
            None => Ok(0),
        }
    }

    /// How many of `user`'s kept reverse requests were set aside as dead letters (never
    /// acknowledged after every try; see [`MailboxLimits`](super::MailboxLimits)).
    ///
    /// # Errors
    /// [`ReverseError::Mailbox`] when the mailbox's database fails.
    ///
    /// # Cancel safety
    /// Cancel safe: a read.
    pub async fn dead_letters_for(&self, user: UserId) -> Result<i64, ReverseError> {
        match &self.shared.mailbox {
            Some(mailbox) => mailbox
                .dead_letters(user)
                .await
                .map_err(|e| ReverseError::Mailbox(e.to_string())),
            None => Ok(0),
        }
    }

    /// Starts delivering what the mailbox keeps for `user` (no-op without a mailbox).
    pub(crate) fn deliver_mailbox(&self, user: UserId) {
        if let Some(mailbox) = &self.shared.mailbox {
            let shared = Arc::clone(&self.shared);
            let links = move || shared.sessions.links_of_user(user);
            tokio::spawn(Arc::clone(mailbox).deliver(user, links));
        }
    }

    /// Asks a connected client of `user` and awaits its typed reply, at most `timeout`.
    ///
    /// # Errors
    /// [`ReverseError::Offline`] with no connection to ask, `Timeout`, `Client` with the
    /// client's error code (no handler, bad payload, its handler failed), `BadReply` for a reply
    /// that does not decode as `R`, `Encode` for a payload that does not serialize.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future forgets the call; the client may still run its handler.
    pub async fn reverse_call<P, R>(
        &self,
        user: UserId,
        name: impl ToReverseCall<P, R>,
        payload: &P,
        timeout: Duration,
    ) -> Result<R, ReverseError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let bytes = reverse::encode(payload)?;
        let target = Target::User(user);
        let reply =
            super::members::call(&self.shared, target, name.reverse_name(), &bytes, timeout).await;
        reverse::decode_reply(&reply?)
    }

    /// Asks a connection of `session` and awaits its typed reply, at most `timeout`.
    ///
    /// # Errors
    /// [`ReverseError::Offline`] with no connection to ask, `Timeout`, `Client` with the
    /// client's error code (no handler, bad payload, its handler failed), `BadReply` for a reply
    /// that does not decode as `R`, `Encode` for a payload that does not serialize.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future forgets the call; the client may still run its handler.
    pub async fn reverse_call_session<P, R>(
        &self,
        session: SessionId,
        name: impl ToReverseCall<P, R>,
        payload: &P,
        timeout: Duration,
    ) -> Result<R, ReverseError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let bytes = reverse::encode(payload)?;
        let target = Target::Session(*session.as_bytes());
        let reply =
            super::members::call(&self.shared, target, name.reverse_name(), &bytes, timeout).await;
        reverse::decode_reply(&reply?)
    }

    /// Adds a session to a named group (it leaves when it ends or logs out); `false` if this
    /// node has no such session. On a cluster node the others are told, and the node serving
    /// the session adds it there too (so joining works from any node).
    pub fn join_group(&self, session: SessionId, group: &str) -> bool {
        let here = self.shared.sessions.join(&session, group);
        self.notice(session, group, true);
        here
    }

    /// Removes a session from a group (on every node of a cluster).
    pub fn leave_group(&self, session: SessionId, group: &str) {
        self.shared.sessions.leave(&session, group);
        self.notice(session, group, false);
    }

    /// Sends the group's members the notice of a join or leave, when the server sends them.
    fn notice(&self, session: SessionId, group: &str, joined: bool) {
        let Some(name) = self.shared.group_notices.clone() else {
            return;
        };
        let here = self.shared.sessions.login_of(&session);
        let group = group.to_owned();
        let handle = self.clone();
        tokio::spawn(async move {
            // A session this node does not have: its user from the cluster's record.
            let user = match (here, &handle.shared.cluster) {
                (Some((user, _)), _) => user,
                (None, Some(node)) => node
                    .session(&session)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|r| r.user),
                (None, None) => None,
            };
            let notice = super::GroupNotice {
                group,
                user,
                joined,
            };
            let target = Target::Group(notice.group.clone());
            if let Ok(bytes) = reverse::encode(&notice) {
                super::members::send(&handle.shared, target, &name, bytes, false).await;
            }
        });
    }

    /// A group's sessions: on a cluster node, on every node (asked of Redis), else on this one.
    ///
    /// # Errors
    /// [`ClusterError`](crate::ClusterError) when the cluster's Redis cannot be asked.
    ///
    /// # Cancel safety
    /// Cancel safe: a read.
    pub async fn group_members(
        &self,
        group: &str,
    ) -> Result<Vec<SessionId>, crate::cluster::ClusterError> {
        match &self.shared.cluster {
            Some(node) => Ok(node
                .group(group)
                .await?
                .into_iter()
                .map(|(id, ..)| id)
                .collect()),
            None => Ok(self.shared.sessions.members(group)),
        }
    }

    /// A group's sessions on this node only (the ones this node serves or has served).
    pub fn group_members_here(&self, group: &str) -> Vec<SessionId> {
        self.shared.sessions.members(group)
    }

    /// The sessions of `group` connected now, each with its user: on a cluster node, on every
    /// node (asked of Redis), else on this one.
    ///
    /// # Errors
    /// [`ClusterError`](crate::ClusterError) when the cluster's Redis cannot be asked.
    ///
    /// # Cancel safety
    /// Cancel safe: a read.
    pub async fn presence(
        &self,
        group: &str,
    ) -> Result<crate::cluster::Presence, crate::cluster::ClusterError> {
        let sessions = match &self.shared.cluster {
            Some(node) => node
                .group(group)
                .await?
                .into_iter()
                .filter(|(.., online)| *online)
                .map(|(id, user, _)| (id, user))
                .collect(),
            None => self.shared.sessions.online_members(group),
        };
        Ok(crate::cluster::Presence { sessions })
    }

    /// Checks a cloud grant for `operation` on `path`: signed by this server, not expired, for
    /// exactly that, and its session still alive and logged in as the same user (a logout
    /// revokes). Returns the session. The cloud endpoint calls this for every operation.
    pub fn check_grant(
        &self,
        grant: &crate::cloud::Grant,
        operation: crate::cloud::CloudOperation,
        path: &crate::cloud::CloudPath,
    ) -> Result<SessionId, crate::cloud::GrantError> {
        self.verify_grant(grant, operation, path)
            .map(|(session, _)| session)
    }

    /// [`check_grant`](Self::check_grant), also giving the user the session is logged in as.
    pub(crate) fn verify_grant(
        &self,
        grant: &crate::cloud::Grant,
        operation: crate::cloud::CloudOperation,
        path: &crate::cloud::CloudPath,
    ) -> Result<(SessionId, Option<UserId>), crate::cloud::GrantError> {
        crate::cloud::check_grant(&self.shared.grant_key, self, grant, operation, path)
    }

    pub(crate) fn grant_key(&self) -> &crate::cloud::GrantKey {
        &self.shared.grant_key
    }

    /// The server's limits.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.shared.sessions
    }
}

/// What the cloud endpoint may ask of the server about sessions: nothing else.
impl crate::auth::SessionVerifier for ServerHandle {
    fn session_of(&self, token: &crate::auth::SessionToken) -> Option<SessionId> {
        self.shared.sessions.verify_token(token)
    }

    fn login_of(&self, session: &SessionId) -> Option<crate::auth::LoginState> {
        self.shared.sessions.login_of(session)
    }

    fn look_up<'a>(
        &'a self,
        token: &'a crate::auth::SessionToken,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            if let Some(node) = &self.shared.cluster {
                let deadline = tokio::time::Instant::now() + node.timeout();
                super::replica::adopt(&self.shared, node, token, deadline).await;
            }
        })
    }
}
