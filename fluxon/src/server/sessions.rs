//! The session registry: sessions outlive connections, so a client that reconnects with its token
//! keeps its session and its login.
//!
//! A token is bound to the session's login generation (it changes at every login and logout), so
//! a login rotates the token: the old one stops resuming the session. Sessions end when they have
//! had no connection for the idle TTL, when they reach their absolute lifetime, when the server
//! ends them ([`Sessions::end`]), or when the registry is full and they are the least recently used
//! disconnected ones: anonymous sessions go before logged-in ones, in O(1) (two LRU lists of
//! disconnected sessions, one by age), so churn of anonymous connections cannot push out the
//! sessions of users who are merely away for a moment.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::reverse::Link;
use crate::auth::{AuthError, SessionId, SessionKey, SessionToken};
use crate::cluster::{Change, Record};

pub use crate::auth::UserId;

/// One session: an id, the user it is logged in as, and how many connections it has now.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    /// The user, and the login generation: how many logins and logouts there have been (a token
    /// and a grant name it, so a login rotates the token and a logout revokes grants for good).
    user: Mutex<(Option<UserId>, u64)>,
    connections: AtomicUsize,
    created: Instant,
    last_seen: Mutex<Instant>,
    links: Mutex<Vec<Arc<Link>>>,
}

impl Session {
    fn new(id: SessionId) -> Self {
        Session::made(id, (None, 0), Instant::now())
    }

    /// A session with a login state, made at `created` (on another node, for one adopted).
    fn made(id: SessionId, login: (Option<UserId>, u64), created: Instant) -> Self {
        Session {
            id,
            user: Mutex::new(login),
            connections: AtomicUsize::new(0),
            created,
            last_seen: Mutex::new(Instant::now()),
            links: Mutex::new(Vec::new()),
        }
    }

    /// A connection of this session opened.
    pub(crate) fn add_link(&self, link: Arc<Link>) {
        lock(&self.links).push(link);
    }

    /// A connection of this session closed.
    pub(crate) fn remove_link(&self, link: &Arc<Link>) {
        lock(&self.links).retain(|l| !Arc::ptr_eq(l, link));
        link.close();
    }

    /// The session's open connections.
    pub(crate) fn links(&self) -> Vec<Arc<Link>> {
        lock(&self.links).clone()
    }

    /// Appends the session's open connections to `out` (no vector of its own per session).
    fn links_into(&self, out: &mut Vec<Arc<Link>>) {
        out.extend(lock(&self.links).iter().cloned());
    }

    /// Closes every connection of this session but `keep` (a connection id).
    pub(crate) fn kick(&self, keep: Option<u64>) {
        for link in self.links() {
            if Some(link.id()) != keep {
                link.kick();
            }
        }
    }

    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The user this session is logged in as.
    pub fn user_id(&self) -> Option<UserId> {
        lock(&self.user).0
    }

    /// The user, and the login's generation: it changes at every login and logout.
    pub fn login_state(&self) -> (Option<UserId>, u64) {
        *lock(&self.user)
    }

    fn idle_since(&self) -> Instant {
        *lock(&self.last_seen)
    }
}

/// Poisoning only means another thread panicked while holding the lock; the data (an id, a map) is
/// still consistent because every critical section here is a single assignment or map operation.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Tables {
    sessions: HashMap<SessionId, Arc<Session>>,
    by_user: HashMap<UserId, HashSet<SessionId>>,
    groups: HashMap<String, HashSet<SessionId>>,
    /// The groups each session is in, so a session leaves them without a scan of every group.
    groups_of: HashMap<SessionId, HashSet<String>>,
    /// Disconnected sessions that are not logged in, least recently seen first.
    idle_anonymous: LruCache<SessionId, ()>,
    /// Disconnected logged-in sessions, least recently seen first.
    idle_users: LruCache<SessionId, ()>,
    /// Every session, oldest first (for the absolute lifetime).
    by_age: LruCache<SessionId, ()>,
}

impl Tables {
    fn new() -> Self {
        Tables {
            sessions: HashMap::new(),
            by_user: HashMap::new(),
            groups: HashMap::new(),
            groups_of: HashMap::new(),
            idle_anonymous: LruCache::unbounded(),
            idle_users: LruCache::unbounded(),
            by_age: LruCache::unbounded(),
        }
    }

    fn unbind(&mut self, id: &SessionId, user: UserId) {
        if let Some(ids) = self.by_user.get_mut(&user) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_user.remove(&user);
            }
        }
    }

    fn leave_all(&mut self, id: &SessionId) {
        for group in self.groups_of.remove(id).unwrap_or_default() {
            if let Some(members) = self.groups.get_mut(&group) {
                members.remove(id);
                if members.is_empty() {
                    self.groups.remove(&group);
                }
            }
        }
    }

    /// Forgets a session; its token resumes nothing from now on.
    fn forget(&mut self, id: &SessionId) -> Option<Arc<Session>> {
        let session = self.sessions.remove(id)?;
        if let Some(user) = session.user_id() {
            self.unbind(id, user);
        }
        self.leave_all(id);
        self.idle_anonymous.pop(id);
        self.idle_users.pop(id);
        self.by_age.pop(id);
        Some(session)
    }

    /// A disconnected session changed from anonymous to logged in or back: it moves list.
    fn relist(&mut self, session: &Session) {
        let id = session.id;
        let was_idle = self.idle_anonymous.pop(&id).is_some() || self.idle_users.pop(&id).is_some();
        if was_idle {
            self.push_idle(session);
        }
    }

    fn push_idle(&mut self, session: &Session) {
        match session.user_id() {
            Some(_) => self.idle_users.push(session.id, ()),
            None => self.idle_anonymous.push(session.id, ()),
        };
    }
}

/// Every session the server remembers, and which sessions each user is logged in on.
pub(crate) struct Sessions {
    key: SessionKey,
    tables: Mutex<Tables>,
    max_sessions: usize,
    ttl: Duration,
    lifetime: Duration,
    /// Where changes go for the cluster's copy, on a cluster node.
    replica: Option<tokio::sync::mpsc::UnboundedSender<Change>>,
}

/// What the handshake gets: the session, its token, and whether it was resumed.
pub(crate) struct Opened {
    pub session: Arc<Session>,
    pub token: SessionToken,
    pub resumed: bool,
}

impl Sessions {
    pub fn new(key: SessionKey, max_sessions: usize, ttl: Duration, lifetime: Duration) -> Self {
        Sessions {
            key,
            tables: Mutex::new(Tables::new()),
            max_sessions,
            ttl,
            lifetime,
            replica: None,
        }
    }

    /// The same, on a cluster node: every change a session goes through here is sent to
    /// `replica` (in the order it happened) for the cluster's copy.
    pub fn replicated(mut self, replica: tokio::sync::mpsc::UnboundedSender<Change>) -> Self {
        self.replica = Some(replica);
        self
    }

    fn replicate(&self, change: impl FnOnce() -> Change) {
        if let Some(replica) = &self.replica {
            // Gone only when the node left the cluster (shutting down): nothing left to record.
            let _ = replica.send(change());
        }
    }

    /// How much of its lifetime `session` has left.
    fn left(&self, session: &Session) -> Duration {
        self.lifetime.saturating_sub(session.created.elapsed())
    }

    /// Takes in a session made on another node (its cluster record), unless this node has it
    /// already: a token for it then resumes it here ([`open`](Self::open) checks the token as
    /// for any session). Refused (`false`) past its lifetime.
    pub fn adopt(&self, id: SessionId, record: &Record) -> bool {
        let age = record.age();
        if age >= self.lifetime {
            return false;
        }
        let mut tables = lock(&self.tables);
        if tables.sessions.contains_key(&id) {
            return true;
        }
        // `created` as this process's clock has it (now, if the other clock is ahead).
        let now = Instant::now();
        let created = now.checked_sub(age).unwrap_or(now);
        let session = Arc::new(Session::made(id, (record.user, record.generation), created));
        if let Some(user) = record.user {
            tables.by_user.entry(user).or_default().insert(id);
        }
        for group in &record.groups {
            tables.groups.entry(group.clone()).or_default().insert(id);
            tables
                .groups_of
                .entry(id)
                .or_default()
                .insert(group.clone());
        }
        tables.sessions.insert(id, Arc::clone(&session));
        tables.by_age.push(id, ());
        tables.push_idle(&session);
        true
    }

    /// Whether `token` is genuine for its session at login generation `generation`.
    pub fn verifies(&self, token: &SessionToken, generation: u64) -> bool {
        self.key.verify(token, generation)
    }

    /// The token a session's client presents now.
    fn token_of(&self, session: &Session) -> SessionToken {
        self.key.sign(session.id, session.login_state().1)
    }

    /// Resumes the session a valid token names, or opens a fresh one. A forged or tampered token,
    /// one rotated away by a login or logout, or one whose session has ended, never yields that
    /// session.
    pub fn open(&self, resume: Option<SessionToken>) -> Result<Opened, AuthError> {
        let now = Instant::now();
        let mut tables = lock(&self.tables);
        if let Some(token) = resume {
            let found = tables.sessions.get(&token.id()).cloned();
            if let Some(session) = found {
                let genuine = self.key.verify(&token, session.login_state().1);
                if genuine && now.duration_since(session.created) < self.lifetime {
                    if session.connections.fetch_add(1, Ordering::AcqRel) == 0 {
                        tables.idle_anonymous.pop(&session.id);
                        tables.idle_users.pop(&session.id);
                        self.replicate(|| Change::Connected {
                            session: session.id,
                            left: self.left(&session),
                        });
                    }
                    let token = self.token_of(&session);
                    return Ok(Opened {
                        session,
                        token,
                        resumed: true,
                    });
                }
            }
            tracing::info!(
                "session token refused (forged, foreign, rotated or expired); new session"
            );
        }
        if tables.sessions.len() >= self.max_sessions {
            // Anonymous sessions go first; a logged-in one only when no anonymous one is left.
            let victim = match tables.idle_anonymous.pop_lru() {
                Some((id, ())) => Some(id),
                None => tables.idle_users.pop_lru().map(|(id, ())| id),
            };
            match victim {
                Some(id) => {
                    tables.forget(&id);
                }
                None => tracing::warn!(
                    max_sessions = self.max_sessions,
                    "every session is connected: over max_sessions"
                ),
            }
        }
        let session = Arc::new(Session::new(SessionId::random()?));
        session.connections.fetch_add(1, Ordering::AcqRel);
        tables.sessions.insert(session.id, Arc::clone(&session));
        tables.by_age.push(session.id, ());
        self.replicate(|| Change::Opened {
            session: session.id,
            lifetime: self.lifetime,
        });
        Ok(Opened {
            token: self.token_of(&session),
            session,
            resumed: false,
        })
    }

    /// A connection of `session` closed.
    pub fn disconnected(&self, session: &Session) {
        let mut tables = lock(&self.tables);
        *lock(&session.last_seen) = Instant::now();
        let left = session
            .connections
            .fetch_sub(1, Ordering::AcqRel)
            .saturating_sub(1);
        // A session forgotten meanwhile (ended, evicted) stays forgotten.
        if left == 0 && tables.sessions.contains_key(&session.id) {
            tables.push_idle(session);
            self.replicate(|| Change::Idle {
                session: session.id,
                idle: self.ttl.min(self.left(session)),
            });
        }
    }

    /// Forgets sessions that have had no connection for longer than the TTL, and ends those past
    /// their lifetime (their connections are closed). Looks only at sessions that are due.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut ended = Vec::new();
        {
            let mut tables = lock(&self.tables);
            for list in [0, 1] {
                loop {
                    let idle = if list == 0 {
                        &tables.idle_anonymous
                    } else {
                        &tables.idle_users
                    };
                    let Some((&id, ())) = idle.peek_lru() else {
                        break;
                    };
                    let due = tables
                        .sessions
                        .get(&id)
                        .is_none_or(|s| now.duration_since(s.idle_since()) > self.ttl);
                    if !due {
                        break;
                    }
                    if tables.forget(&id).is_none() {
                        // Not a session any more: drop the stale entry.
                        tables.idle_anonymous.pop(&id);
                        tables.idle_users.pop(&id);
                    }
                }
            }
            while let Some((&id, ())) = tables.by_age.peek_lru() {
                let due = tables
                    .sessions
                    .get(&id)
                    .is_none_or(|s| now.duration_since(s.created) >= self.lifetime);
                if !due {
                    break;
                }
                tables.by_age.pop(&id);
                ended.extend(tables.forget(&id));
            }
        }
        for session in ended {
            tracing::info!(session = %session.id, "session reached its lifetime; ended");
            session.kick(None);
        }
    }

    /// Logs `session` in as `user`; its token rotates. Returns the new token.
    pub fn login(&self, session: &Session, user: UserId) -> SessionToken {
        let mut tables = lock(&self.tables);
        let previous = {
            let mut login = lock(&session.user);
            login.1 += 1;
            login.0.replace(user)
        };
        if let Some(previous) = previous {
            tables.unbind(&session.id, previous);
        }
        if tables.sessions.contains_key(&session.id) {
            tables.by_user.entry(user).or_default().insert(session.id);
            tables.relist(session);
        }
        self.replicate(|| Change::Login {
            session: session.id,
            previous,
            user: Some(user),
            generation: session.login_state().1,
            left: self.left(session),
        });
        self.token_of(session)
    }

    /// Logs `session` out: it leaves its groups, and its token rotates. Returns the new token.
    pub fn logout(&self, session: &Session) -> SessionToken {
        let mut tables = lock(&self.tables);
        let previous = {
            let mut login = lock(&session.user);
            login.1 += 1;
            login.0.take()
        };
        if let Some(previous) = previous {
            tables.unbind(&session.id, previous);
        }
        tables.leave_all(&session.id);
        tables.relist(session);
        self.replicate(|| Change::Login {
            session: session.id,
            previous,
            user: None,
            generation: session.login_state().1,
            left: self.left(session),
        });
        self.token_of(session)
    }

    /// Another node logged a session in or out: if this node has it, it takes the new login
    /// (unless it has a newer one) and returns it, with the token it now has.
    pub fn apply_login(
        &self,
        id: &SessionId,
        user: Option<UserId>,
        generation: u64,
    ) -> Option<(Arc<Session>, SessionToken)> {
        let mut tables = lock(&self.tables);
        let session = tables.sessions.get(id).cloned()?;
        let previous = {
            let mut login = lock(&session.user);
            if login.1 >= generation {
                return None;
            }
            login.1 = generation;
            std::mem::replace(&mut login.0, user)
        };
        if let Some(previous) = previous {
            tables.unbind(id, previous);
        }
        match user {
            Some(user) => {
                tables.by_user.entry(user).or_default().insert(*id);
            }
            None => tables.leave_all(id),
        }
        tables.relist(&session);
        drop(tables);
        let token = self.token_of(&session);
        Some((session, token))
    }

    /// Closes every connection of a session (its client may reconnect and resume it).
    pub fn disconnect(&self, id: &SessionId) -> bool {
        let session = lock(&self.tables).sessions.get(id).cloned();
        match session {
            Some(session) => {
                session.kick(None);
                true
            }
            None => false,
        }
    }

    /// Ends a session: forgotten (its token resumes nothing) and its connections closed. On a
    /// cluster node, the others are told (whether or not this node had it).
    pub fn end(&self, id: &SessionId) -> bool {
        let session = lock(&self.tables).forget(id);
        self.replicate(|| Change::Ended {
            session: *id,
            user: session.as_ref().and_then(|s| s.user_id()),
        });
        Self::close(session)
    }

    /// Another node ended a session: this node forgets it too.
    pub fn apply_end(&self, id: &SessionId) -> bool {
        let session = lock(&self.tables).forget(id);
        Self::close(session)
    }

    fn close(session: Option<Arc<Session>>) -> bool {
        match session {
            Some(session) => {
                session.kick(None);
                true
            }
            None => false,
        }
    }

    /// Ends every session `user` is logged in on; how many this node had. On a cluster node,
    /// the others are told.
    pub fn end_user(&self, user: UserId) -> usize {
        self.replicate(|| Change::EndedUser { user });
        self.apply_end_user(user)
    }

    /// Ends every session `user` is logged in on, here only; how many.
    pub fn apply_end_user(&self, user: UserId) -> usize {
        let ended: Vec<Arc<Session>> = {
            let mut tables = lock(&self.tables);
            let ids: Vec<SessionId> = tables
                .by_user
                .get(&user)
                .map(|ids| ids.iter().copied().collect())
                .unwrap_or_default();
            ids.iter().filter_map(|id| tables.forget(id)).collect()
        };
        for session in &ended {
            // Its record goes too: the node that ended them may have looked for the user's
            // sessions before this node's record of the login reached Redis.
            self.replicate(|| Change::Forgotten {
                session: session.id,
                user: Some(user),
            });
            session.kick(None);
        }
        ended.len()
    }

    /// The session a token names, if it is one of ours and current (not rotated away, not ended).
    pub fn verify_token(&self, token: &SessionToken) -> Option<SessionId> {
        let session = lock(&self.tables).sessions.get(&token.id()).cloned()?;
        self.key
            .verify(token, session.login_state().1)
            .then_some(session.id)
    }

    /// The user a session is logged in as, and the login's generation (see
    /// [`Session::login_state`]); `None` if there is no such session.
    pub fn login_of(&self, id: &SessionId) -> Option<(Option<UserId>, u64)> {
        lock(&self.tables).sessions.get(id).map(|s| s.login_state())
    }

    /// Every session: id, user, connections open now.
    pub fn list(&self) -> Vec<(SessionId, Option<UserId>, usize)> {
        let mut out: Vec<_> = lock(&self.tables)
            .sessions
            .values()
            .map(|s| (s.id, s.user_id(), s.connections.load(Ordering::Acquire)))
            .collect();
        out.sort();
        out
    }

    pub fn len(&self) -> usize {
        lock(&self.tables).sessions.len()
    }

    /// The sessions `user` is logged in on.
    pub fn of_user(&self, user: UserId) -> Vec<SessionId> {
        lock(&self.tables)
            .by_user
            .get(&user)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The open connections of the sessions in one of the tables' id sets.
    fn links_of(
        &self,
        pick: impl FnOnce(&Tables) -> Option<&HashSet<SessionId>>,
    ) -> Vec<Arc<Link>> {
        let sessions: Vec<Arc<Session>> = {
            let tables = lock(&self.tables);
            pick(&tables)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|id| tables.sessions.get(id).cloned())
                        .collect()
                })
                .unwrap_or_default()
        };
        gather_links(&sessions)
    }

    /// The open connections of the sessions `user` is logged in on.
    pub fn links_of_user(&self, user: UserId) -> Vec<Arc<Link>> {
        self.links_of(|tables| tables.by_user.get(&user))
    }

    /// The open connections of one session.
    pub fn links_of_session(&self, id: &SessionId) -> Vec<Arc<Link>> {
        let session = lock(&self.tables).sessions.get(id).cloned();
        session.map(|s| s.links()).unwrap_or_default()
    }

    /// The open connections of a group's sessions.
    pub fn links_of_group(&self, group: &str) -> Vec<Arc<Link>> {
        self.links_of(|tables| tables.groups.get(group))
    }

    /// Every open connection, held weakly (for a broadcast: see
    /// [`send_many`](super::reverse::send_many)). Gathered in one pass under the table's lock (a
    /// session's own lock is only ever held alone, so taking it inside is safe).
    pub fn all_links(&self) -> Vec<Weak<Link>> {
        let tables = lock(&self.tables);
        let mut links = Vec::with_capacity(tables.sessions.len());
        for session in tables.sessions.values() {
            links.extend(lock(&session.links).iter().map(Arc::downgrade));
        }
        links
    }

    /// Adds a session to a group; `false` if there is no such session.
    pub fn join(&self, id: &SessionId, group: &str) -> bool {
        self.replicate(|| Change::Group {
            session: *id,
            group: group.to_owned(),
            joined: true,
        });
        self.apply_join(id, group)
    }

    /// Adds a session to a group, here only (another node said so); `false` if this node does
    /// not have it.
    pub fn apply_join(&self, id: &SessionId, group: &str) -> bool {
        let mut tables = lock(&self.tables);
        if !tables.sessions.contains_key(id) {
            return false;
        }
        tables
            .groups
            .entry(group.to_owned())
            .or_default()
            .insert(*id);
        tables
            .groups_of
            .entry(*id)
            .or_default()
            .insert(group.to_owned());
        true
    }

    /// Removes a session from a group.
    pub fn leave(&self, id: &SessionId, group: &str) {
        self.replicate(|| Change::Group {
            session: *id,
            group: group.to_owned(),
            joined: false,
        });
        self.apply_leave(id, group);
    }

    /// Removes a session from a group, here only (another node said so).
    pub fn apply_leave(&self, id: &SessionId, group: &str) {
        let mut tables = lock(&self.tables);
        if let Some(members) = tables.groups.get_mut(group) {
            members.remove(id);
            if members.is_empty() {
                tables.groups.remove(group);
            }
        }
        if let Some(groups) = tables.groups_of.get_mut(id) {
            groups.remove(group);
            if groups.is_empty() {
                tables.groups_of.remove(id);
            }
        }
    }

    /// A group's sessions.
    pub fn members(&self, group: &str) -> Vec<SessionId> {
        let mut out: Vec<SessionId> = lock(&self.tables)
            .groups
            .get(group)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Every session this node has, as the cluster's copy would hold it: for writing again
    /// what Redis may have lost.
    pub fn snapshot(&self) -> Vec<Change> {
        let now_ms = crate::cluster::unix_ms();
        let tables = lock(&self.tables);
        tables
            .sessions
            .values()
            .map(|session| {
                let (user, generation) = session.login_state();
                let connected = session.connections.load(Ordering::Acquire) > 0;
                let left = self.left(session);
                let age = u64::try_from(session.created.elapsed().as_millis()).unwrap_or(0);
                Change::Restore {
                    session: session.id,
                    user,
                    generation,
                    created: now_ms.saturating_sub(age),
                    ttl: if connected { left } else { self.ttl.min(left) },
                    connected,
                    groups: tables
                        .groups_of
                        .get(&session.id)
                        .map(|groups| groups.iter().cloned().collect())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// A group's sessions that have a connection here now, each with its user.
    pub fn online_members(&self, group: &str) -> Vec<(SessionId, Option<UserId>)> {
        let tables = lock(&self.tables);
        let mut out: Vec<(SessionId, Option<UserId>)> = tables
            .groups
            .get(group)
            .into_iter()
            .flatten()
            .filter_map(|id| tables.sessions.get(id))
            .filter(|s| s.connections.load(Ordering::Acquire) > 0)
            .map(|s| (s.id, s.user_id()))
            .collect();
        out.sort();
        out
    }

    /// How long a disconnected session is kept, or the lifetime if that is shorter: how often the
    /// sweep must look.
    pub fn shortest_wait(&self) -> Duration {
        self.ttl.min(self.lifetime)
    }
}

/// The open connections of `sessions`, in one vector (none of its own per session: a broadcast to
/// 10,000 sessions spent 4-8 ms here making and dropping them).
fn gather_links(sessions: &[Arc<Session>]) -> Vec<Arc<Link>> {
    let mut links = Vec::with_capacity(sessions.len());
    for session in sessions {
        session.links_into(&mut links);
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(max: usize) -> Sessions {
        let key = SessionKey::from_private_key(&[3; 32]).unwrap();
        Sessions::new(key, max, Duration::from_secs(60), Duration::from_secs(3600))
    }

    #[test]
    fn resume_keeps_the_login_with_the_token_given_at_login() {
        let reg = sessions(10);
        let first = reg.open(None).unwrap();
        let token = reg.login(&first.session, 42);
        reg.disconnected(&first.session);
        let again = reg.open(Some(token)).unwrap();
        assert!(again.resumed);
        assert_eq!(again.session.user_id(), Some(42));
        assert_eq!(reg.of_user(42), vec![first.session.id()]);
    }

    #[test]
    fn a_login_rotates_the_token_so_the_one_from_before_resumes_nothing() {
        let reg = sessions(10);
        let first = reg.open(None).unwrap();
        let before = first.token;
        let after = reg.login(&first.session, 7);
        assert_ne!(before.to_wire(), after.to_wire());
        assert_eq!(reg.verify_token(&before), None);
        assert_eq!(reg.verify_token(&after), Some(first.session.id()));
        reg.disconnected(&first.session);
        let fixated = reg.open(Some(before)).unwrap();
        assert!(!fixated.resumed, "the pre-login token must not resume");
        assert_eq!(fixated.session.user_id(), None);
        let out = reg.logout(&first.session);
        assert_eq!(reg.verify_token(&after), None, "a logout rotates too");
        assert_eq!(reg.verify_token(&out), Some(first.session.id()));
    }

    #[test]
    fn forged_token_gets_a_fresh_session() {
        let reg = sessions(10);
        let first = reg.open(None).unwrap();
        reg.login(&first.session, 1);
        let mut wire = reg.token_of(&first.session).to_wire();
        wire.mac[0] ^= 1;
        let other = reg.open(Some(SessionToken::from_wire(wire))).unwrap();
        assert!(!other.resumed);
        assert_ne!(other.session.id(), first.session.id());
        assert_eq!(other.session.user_id(), None);
    }

    #[test]
    fn cap_evicts_a_disconnected_session_never_a_connected_one() {
        let reg = sessions(2);
        let connected = reg.open(None).unwrap();
        let gone = reg.open(None).unwrap();
        reg.disconnected(&gone.session);
        let _third = reg.open(None).unwrap();
        assert_eq!(reg.len(), 2);
        assert!(!reg.open(Some(gone.token)).unwrap().resumed);
        reg.disconnected(&connected.session);
    }

    #[test]
    fn churn_evicts_anonymous_sessions_before_logged_in_ones() {
        let reg = sessions(20);
        let mut users = Vec::new();
        for user in 0..10 {
            let opened = reg.open(None).unwrap();
            let token = reg.login(&opened.session, user);
            reg.disconnected(&opened.session);
            users.push(token);
        }
        for _ in 0..1_000 {
            let anonymous = reg.open(None).unwrap();
            reg.disconnected(&anonymous.session);
        }
        assert_eq!(reg.len(), 20);
        for token in users {
            assert!(
                reg.verify_token(&token).is_some(),
                "a user's session was evicted"
            );
        }
    }

    #[test]
    fn logout_and_relogin_update_the_user_index_and_groups() {
        let reg = sessions(10);
        let s = reg.open(None).unwrap();
        reg.login(&s.session, 1);
        reg.join(&s.session.id(), "room");
        reg.login(&s.session, 2);
        assert!(reg.of_user(1).is_empty());
        assert_eq!(reg.of_user(2).len(), 1);
        assert_eq!(reg.members("room"), vec![s.session.id()]);
        reg.logout(&s.session);
        assert!(reg.of_user(2).is_empty());
        assert_eq!(s.session.user_id(), None);
        assert!(reg.members("room").is_empty(), "a logout leaves the groups");
    }

    #[test]
    fn ended_sessions_are_forgotten_with_their_groups() {
        let reg = sessions(10);
        let a = reg.open(None).unwrap();
        let b = reg.open(None).unwrap();
        let token_a = reg.login(&a.session, 5);
        let token_b = reg.login(&b.session, 5);
        reg.join(&a.session.id(), "g");
        assert!(reg.end(&a.session.id()));
        assert!(!reg.end(&a.session.id()));
        assert!(reg.members("g").is_empty());
        assert_eq!(reg.verify_token(&token_a), None);
        assert_eq!(reg.end_user(5), 1);
        assert_eq!(reg.verify_token(&token_b), None);
        assert_eq!(reg.len(), 0);
        reg.disconnected(&a.session);
        reg.disconnected(&b.session);
        assert_eq!(
            reg.len(),
            0,
            "a disconnect does not bring an ended session back"
        );
    }

    #[test]
    fn sessions_past_their_lifetime_end_even_if_connected() {
        let key = SessionKey::from_private_key(&[3; 32]).unwrap();
        let reg = Sessions::new(key, 10, Duration::from_secs(60), Duration::from_millis(30));
        let connected = reg.open(None).unwrap();
        let token = reg.login(&connected.session, 1);
        std::thread::sleep(Duration::from_millis(40));
        // Past its lifetime it resumes nothing, even before a sweep.
        assert!(!reg.open(Some(token)).unwrap().resumed);
        reg.sweep();
        assert_eq!(reg.verify_token(&token), None);
        assert!(reg.of_user(1).is_empty());
    }
}
