//! The session registry: sessions outlive connections, so a client that reconnects with its token
//! keeps its session and its login.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::reverse::Link;
use crate::auth::{AuthError, SessionId, SessionKey, SessionToken};

/// A user's id, as stored in the user model's primary key.
pub type UserId = i64;

/// One session: an id, the user it is logged in as, and how many connections it has now.
#[derive(Debug)]
pub struct Session {
    id: SessionId,
    /// The user, and how many logins and logouts there have been (a grant names both, so a
    /// logout revokes it for good).
    user: Mutex<(Option<UserId>, u64)>,
    connections: AtomicUsize,
    last_seen: Mutex<Instant>,
    kick: tokio::sync::Notify,
    links: Mutex<Vec<Arc<Link>>>,
}

impl Session {
    fn new(id: SessionId) -> Self {
        Session {
            id,
            user: Mutex::new((None, 0)),
            connections: AtomicUsize::new(0),
            last_seen: Mutex::new(Instant::now()),
            kick: tokio::sync::Notify::new(),
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

    /// Completes when the server disconnects this session's connections.
    pub(crate) fn kicked(&self) -> tokio::sync::futures::Notified<'_> {
        self.kick.notified()
    }

    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The user this session is logged in as.
    pub fn user_id(&self) -> Option<UserId> {
        lock(&self.user).0
    }

    /// The user, and the login's number: it changes at every login and logout.
    pub fn login_state(&self) -> (Option<UserId>, u64) {
        *lock(&self.user)
    }

    fn is_connected(&self) -> bool {
        self.connections.load(Ordering::Acquire) > 0
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

#[derive(Default)]
struct Tables {
    sessions: HashMap<SessionId, Arc<Session>>,
    by_user: HashMap<UserId, HashSet<SessionId>>,
    groups: HashMap<String, HashSet<SessionId>>,
}

impl Tables {
    fn unbind(&mut self, session: &Session, user: UserId) {
        if let Some(ids) = self.by_user.get_mut(&user) {
            ids.remove(&session.id);
            if ids.is_empty() {
                self.by_user.remove(&user);
            }
        }
    }

    fn forget(&mut self, id: &SessionId) {
        if let Some(session) = self.sessions.remove(id) {
            if let Some(user) = session.user_id() {
                self.unbind(&session, user);
            }
        }
        // A session that ends leaves its groups.
        self.groups.retain(|_, members| {
            members.remove(id);
            !members.is_empty()
        });
    }
}

/// Every session the server remembers, and which sessions each user is logged in on.
pub(crate) struct Sessions {
    key: SessionKey,
    tables: Mutex<Tables>,
    max_sessions: usize,
    ttl: Duration,
}

/// What the handshake gets: the session, its token, and whether it was resumed.
pub(crate) struct Opened {
    pub session: Arc<Session>,
    pub token: SessionToken,
    pub resumed: bool,
}

impl Sessions {
    pub fn new(key: SessionKey, max_sessions: usize, ttl: Duration) -> Self {
        Sessions {
            key,
            tables: Mutex::new(Tables::default()),
            max_sessions,
            ttl,
        }
    }

    /// Resumes the session a valid token names, or opens a fresh one. A forged or tampered token,
    /// or one whose session has expired, never yields that session.
    pub fn open(&self, resume: Option<SessionToken>) -> Result<Opened, AuthError> {
        let verified = resume.and_then(|token| self.key.verify(&token));
        let mut tables = lock(&self.tables);
        if let Some(session) = verified.and_then(|id| tables.sessions.get(&id).cloned()) {
            session.connections.fetch_add(1, Ordering::AcqRel);
            let token = self.key.sign(session.id);
            return Ok(Opened {
                session,
                token,
                resumed: true,
            });
        }
        if resume.is_some() {
            tracing::info!("session token refused (forged, foreign or expired); new session");
        }
        if tables.sessions.len() >= self.max_sessions {
            self.evict_one(&mut tables);
        }
        let session = Arc::new(Session::new(SessionId::random()?));
        session.connections.fetch_add(1, Ordering::AcqRel);
        tables.sessions.insert(session.id, Arc::clone(&session));
        Ok(Opened {
            token: self.key.sign(session.id),
            session,
            resumed: false,
        })
    }

    /// Forgets the disconnected session idle the longest, to stay within `max_sessions`.
    fn evict_one(&self, tables: &mut Tables) {
        let oldest = tables
            .sessions
            .values()
            .filter(|s| !s.is_connected())
            .min_by_key(|s| s.idle_since())
            .map(|s| s.id);
        if let Some(id) = oldest {
            tables.forget(&id);
        }
    }

    /// A connection of `session` closed.
    pub fn disconnected(&self, session: &Session) {
        *lock(&session.last_seen) = Instant::now();
        session.connections.fetch_sub(1, Ordering::AcqRel);
    }

    /// Forgets sessions that have had no connection for longer than the TTL.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut tables = lock(&self.tables);
        let expired: Vec<SessionId> = tables
            .sessions
            .values()
            .filter(|s| !s.is_connected() && now.duration_since(s.idle_since()) > self.ttl)
            .map(|s| s.id)
            .collect();
        for id in &expired {
            tables.forget(id);
        }
    }

    pub fn login(&self, session: &Session, user: UserId) {
        let mut tables = lock(&self.tables);
        let previous = {
            let mut login = lock(&session.user);
            login.1 += 1;
            login.0.replace(user)
        };
        if let Some(previous) = previous {
            tables.unbind(session, previous);
        }
        tables.by_user.entry(user).or_default().insert(session.id);
    }

    pub fn logout(&self, session: &Session) {
        let mut tables = lock(&self.tables);
        let previous = {
            let mut login = lock(&session.user);
            login.1 += 1;
            login.0.take()
        };
        if let Some(previous) = previous {
            tables.unbind(session, previous);
        }
    }

    /// Closes every connection of a session (its client may reconnect and resume it).
    pub fn disconnect(&self, id: &SessionId) -> bool {
        let session = lock(&self.tables).sessions.get(id).cloned();
        match session {
            Some(session) => {
                session.kick.notify_waiters();
                true
            }
            None => false,
        }
    }

    /// The session a token names, if the token is genuine (it may have ended since).
    pub fn verify_token(&self, token: &SessionToken) -> Option<SessionId> {
        self.key.verify(token)
    }

    /// The user a session is logged in as, and the login's number (see
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
        sessions.iter().flat_map(|s| s.links()).collect()
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

    /// Every open connection.
    pub fn all_links(&self) -> Vec<Arc<Link>> {
        let sessions: Vec<Arc<Session>> = lock(&self.tables).sessions.values().cloned().collect();
        sessions.iter().flat_map(|s| s.links()).collect()
    }

    /// Adds a session to a group; `false` if there is no such session.
    pub fn join(&self, id: &SessionId, group: &str) -> bool {
        let mut tables = lock(&self.tables);
        if !tables.sessions.contains_key(id) {
            return false;
        }
        tables
            .groups
            .entry(group.to_owned())
            .or_default()
            .insert(*id);
        true
    }

    /// Removes a session from a group.
    pub fn leave(&self, id: &SessionId, group: &str) {
        let mut tables = lock(&self.tables);
        if let Some(members) = tables.groups.get_mut(group) {
            members.remove(id);
            if members.is_empty() {
                tables.groups.remove(group);
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

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(max: usize) -> Sessions {
        let key = SessionKey::from_private_key(&[3; 32]).unwrap();
        Sessions::new(key, max, Duration::from_secs(60))
    }

    #[test]
    fn resume_keeps_the_login() {
        let reg = sessions(10);
        let first = reg.open(None).unwrap();
        reg.login(&first.session, 42);
        reg.disconnected(&first.session);
        let again = reg.open(Some(first.token)).unwrap();
        assert!(again.resumed);
        assert_eq!(again.session.user_id(), Some(42));
        assert_eq!(reg.of_user(42), vec![first.session.id()]);
    }

    #[test]
    fn forged_token_gets_a_fresh_session() {
        let reg = sessions(10);
        let first = reg.open(None).unwrap();
        reg.login(&first.session, 1);
        let mut wire = first.token.to_wire();
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
    fn logout_and_relogin_update_the_user_index() {
        let reg = sessions(10);
        let s = reg.open(None).unwrap();
        reg.login(&s.session, 1);
        reg.login(&s.session, 2);
        assert!(reg.of_user(1).is_empty());
        assert_eq!(reg.of_user(2).len(), 1);
        reg.logout(&s.session);
        assert!(reg.of_user(2).is_empty());
        assert_eq!(s.session.user_id(), None);
    }
}
