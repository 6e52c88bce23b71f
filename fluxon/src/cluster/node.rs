//! [`Node`]: this process as a member of the cluster. One Redis connection (multiplexed, made
//! again with backoff when it drops, its subscription renewed) carries the node's commands and
//! the bus; a writer task applies the session registry's [`Change`]s in order, pipelined; a
//! heartbeat task says the node is alive and lets the sessions of nodes that died expire.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::bus::{Event, Reply};
use super::keys::{hex, Keys};
use super::record::{unix_ms, Record};
use super::{Cluster, ClusterError};
use crate::auth::{SessionId, UserId};

/// Writes a session's record unless Redis has it (KEYS: the record, the user's set; ARGV: gen,
/// created, user or "", TTL in ms, the session in hex). A record Redis kept is newer than what
/// the node remembers; one it lost is written whole, never in part.
const RESTORE: &str = "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end \
    redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'created', ARGV[2]) \
    if ARGV[3] ~= '' then \
        redis.call('HSET', KEYS[1], 'user', ARGV[3]) \
        redis.call('SADD', KEYS[2], ARGV[5]) \
    end \
    redis.call('PEXPIRE', KEYS[1], ARGV[4]) \
    return 1";

/// A login or logout on a session's record, only while the record is there (one ended meanwhile
/// stays ended, never half a record). KEYS: the record; ARGV: the generation, the user or "".
const LOGIN: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end \
    redis.call('HSET', KEYS[1], 'gen', ARGV[1]) \
    if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'user') \
    else redis.call('HSET', KEYS[1], 'user', ARGV[2]) end \
    return 1";

/// Extends a lease this node holds (KEYS: the lease; ARGV: the node, ms).
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// Gives back a lease this node holds (KEYS: the lease; ARGV: the node).
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";

/// Changes the writer applies in one pipeline, at most.
const BATCH: usize = 256;

/// Dead nodes one heartbeat sweeps, at most.
const SWEEP: isize = 16;

/// A node's id: 8 random bytes, shown in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct NodeId(pub [u8; 8]);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

/// What the writer sends, in order: what changed in this node's session registry (for the
/// cluster's copy), and messages for the other nodes.
#[derive(Debug)]
pub(crate) enum Change {
    /// A session was made here; it lives at most `lifetime`.
    Opened {
        session: SessionId,
        lifetime: Duration,
    },
    /// A session got its first connection on this node; `left` of its lifetime remains.
    Connected { session: SessionId, left: Duration },
    /// A session's last connection on this node closed: its record expires after `idle` unless
    /// a connection resumes it (anywhere).
    Idle { session: SessionId, idle: Duration },
    /// A session logged in (`user: Some`) or out, here.
    Login {
        session: SessionId,
        previous: Option<UserId>,
        user: Option<UserId>,
        generation: u64,
        left: Duration,
    },
    /// A session was ended here.
    Ended {
        session: SessionId,
        user: Option<UserId>,
    },
    /// Every session of `user` was ended here.
    EndedUser { user: UserId },
    /// A session joined (`joined`) or left a group, here.
    Group {
        session: SessionId,
        group: String,
        joined: bool,
    },
    /// After Redis was away (it may have lost its data): a session this node has, written
    /// again unless Redis still has it.
    Restore {
        session: SessionId,
        user: Option<UserId>,
        generation: u64,
        /// When it was made (unix ms).
        created: u64,
        /// How long its record lives from now.
        ttl: Duration,
        /// Whether it has a connection here.
        connected: bool,
        groups: Vec<String>,
    },
    /// A session this node ended because another node said so: its record goes (the others
    /// know).
    Forgotten {
        session: SessionId,
        user: Option<UserId>,
    },
    /// A message on the bus (`to: None`) or to one node; `sent` learns how many nodes heard
    /// it (this one among them, for the bus), `None` if Redis did not take it.
    Publish {
        to: Option<NodeId>,
        bytes: Vec<u8>,
        sent: Option<oneshot::Sender<Option<usize>>>,
    },
}

/// The requests this node awaits replies to: id -> where its replies go.
type Pending = Mutex<HashMap<u64, mpsc::UnboundedSender<Reply>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is one map operation: a poisoned lock holds consistent data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A request sent to the other nodes: their replies, as they come. Forgotten when dropped.
pub(crate) struct Asked {
    id: u64,
    replies: mpsc::UnboundedReceiver<Reply>,
    heard: usize,
    pending: Arc<Pending>,
}

impl Asked {
    /// How many other nodes heard it (Redis says, as it publishes): the replies to wait for.
    pub fn heard(&self) -> usize {
        self.heard
    }

    /// The next reply, or `None` once `deadline` passed.
    pub async fn next(&mut self, deadline: tokio::time::Instant) -> Option<Reply> {
        tokio::time::timeout_at(deadline, self.replies.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Asked {
    fn drop(&mut self) {
        lock(&self.pending).remove(&self.id);
    }
}

/// This process as a member of the cluster.
pub(crate) struct Node {
    id: NodeId,
    keys: Keys,
    conn: ConnectionManager,
    changes: mpsc::UnboundedSender<Change>,
    timeout: Duration,
    stop: CancellationToken,
    pending: Arc<Pending>,
    next_request: AtomicU64,
    writer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set when the Redis connection dropped: what this node holds is written again once back.
    dropped: Arc<AtomicBool>,
    /// Counts the times the node found Redis again after losing it, and what it found.
    rejoined: watch::Sender<(u64, Rejoined)>,
    /// The data set's mark when this node last saw Redis.
    epoch: Mutex<String>,
}

/// What a node found when it reached Redis again after losing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejoined {
    /// The same data set: only events were missed (a session ended or logged out meanwhile).
    Missed,
    /// A Redis that lost its data: what the nodes hold is to be written again.
    Lost,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Joins the cluster: connects to Redis (failing at once if it cannot), listens on the bus,
    /// says it is alive and starts its writer and heartbeat. Returns the node and what the other
    /// nodes send. `idle` is how long a disconnected session lives (the server's session TTL):
    /// the sessions of a node found dead get that long.
    pub async fn join(
        config: &Cluster,
        idle: Duration,
    ) -> Result<(Arc<Node>, mpsc::UnboundedReceiver<Event>), ClusterError> {
        if let Some(why) = config.invalid() {
            return Err(ClusterError::Invalid(why.to_owned()));
        }
        let mut id = [0u8; 8];
        getrandom::fill(&mut id).map_err(|err| ClusterError::Invalid(err.to_string()))?;
        let id = NodeId(id);
        let info = redis::IntoConnectionInfo::into_connection_info(config.url.as_str())
            .map_err(|err| ClusterError::Invalid(format!("{}: {err}", config.url)))?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(|err| ClusterError::Invalid(err.to_string()))?;
        let keys = Keys::new(&config.prefix);
        let (events_in, events) = mpsc::unbounded_channel();
        let pending: Arc<Pending> = Arc::default();
        let dropped = Arc::new(AtomicBool::new(false));
        let mine = keys.node_channel(&id);
        let on_push = {
            let pending = Arc::clone(&pending);
            let dropped = Arc::clone(&dropped);
            move |push: PushInfo| -> Result<(), redis::aio::SendError> {
                if push.kind == PushKind::Disconnection {
                    dropped.store(true, Ordering::Release);
                    return Ok(());
                }
                match heard(push, &mine) {
                    // The server is gone when nobody takes its events.
                    Some(Heard::Event(event)) if event.from() != id.0 => {
                        events_in.send(event).map_err(|_| redis::aio::SendError)
                    }
                    Some(Heard::Reply(reply)) => {
                        if let Some(waiting) = lock(&pending).get(&reply.id()) {
                            let _ = waiting.send(reply);
                        }
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
        };
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(config.heartbeat)
            .set_push_sender(on_push)
            .set_automatic_resubscription();
        let mut conn = ConnectionManager::new_with_config(client, manager).await?;
        conn.subscribe(keys.bus()).await?;
        conn.subscribe(keys.node_channel(&id)).await?;
        let (changes, queued) = mpsc::unbounded_channel();
        let node = Arc::new(Node {
            id,
            keys,
            conn,
            changes,
            timeout: config.timeout,
            stop: CancellationToken::new(),
            writer: std::sync::Mutex::new(None),
            pending,
            next_request: AtomicU64::new(1),
            dropped,
            rejoined: watch::Sender::new((0, Rejoined::Missed)),
            epoch: Mutex::new(String::new()),
        });
        node.beat().await?;
        node.check_epoch().await?;
        let writer = tokio::spawn(write(Arc::clone(&node), queued));
        *node
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(writer);
        tokio::spawn(heartbeat(Arc::clone(&node), config.heartbeat, idle));
        tracing::info!(node = %id, prefix = %config.prefix, "joined the cluster");
        Ok((node, events))
    }

    /// Ticks each time this node finds Redis again after losing it (Redis may have lost its
    /// data meanwhile: the server then writes again what it holds, [`Change::Restore`]).
    pub fn rejoined(&self) -> watch::Receiver<(u64, Rejoined)> {
        self.rejoined.subscribe()
    }

    /// Reads the data set's mark (setting one if there is none): whether it is another than the
    /// one this node saw last (always `false` the first time).
    async fn check_epoch(&self) -> Result<bool, ClusterError> {
        let mut fresh = [0u8; 8];
        getrandom::fill(&mut fresh).map_err(|err| ClusterError::Redis(err.to_string()))?;
        let mut conn = self.conn.clone();
        let (_, mark): ((), String) = redis::pipe()
            .cmd("SET")
            .arg(self.keys.epoch())
            .arg(NodeId(fresh).to_string())
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(self.keys.epoch())
            .query_async::<(String,)>(&mut conn)
            .await
            .map(|(mark,)| ((), mark))?;
        let mut seen = lock(&self.epoch);
        let changed = !seen.is_empty() && *seen != mark;
        *seen = mark;
        Ok(changed)
    }

    /// The login state of each of `sessions` as Redis has it (`None`: no record).
    ///
    /// # Errors
    /// [`ClusterError`] when Redis cannot be asked.
    pub async fn logins(
        &self,
        sessions: &[SessionId],
    ) -> Result<Vec<Option<(Option<UserId>, u64)>>, ClusterError> {
        let mut pipe = redis::pipe();
        for id in sessions {
            pipe.cmd("HMGET")
                .arg(self.keys.session(id))
                .arg("user")
                .arg("gen")
                .arg("created");
        }
        let mut conn = self.conn.clone();
        let found: Vec<(Option<i64>, Option<u64>, Option<u64>)> =
            pipe.query_async(&mut conn).await?;
        Ok(found
            .into_iter()
            .map(|(user, generation, created)| match (generation, created) {
                (Some(generation), Some(_)) => Some((user, generation)),
                _ => None,
            })
            .collect())
    }

    /// Queues a change for the writer (applied in order, soon).
    pub fn change(&self, change: Change) {
        // The writer outlives every sender but at shutdown, when nothing is left to send.
        let _ = self.changes.send(change);
    }

    /// Sends `event` to the other nodes, after what this node sent before (no reply).
    pub fn tell(&self, make: impl FnOnce([u8; 8]) -> Event) {
        if let Some(bytes) = make(self.id.0).encode() {
            self.change(Change::Publish {
                to: None,
                bytes,
                sent: None,
            });
        }
    }

    /// Sends `reply` to the node `to`.
    pub fn reply(&self, to: [u8; 8], reply: &Reply) {
        if let Some(bytes) = reply.encode() {
            self.change(Change::Publish {
                to: Some(NodeId(to)),
                bytes,
                sent: None,
            });
        }
    }

    /// Sends the event `make(this node, request id)` to the other nodes, after what this node
    /// sent before, and returns their replies as they come.
    ///
    /// # Errors
    /// [`ClusterError::Unreachable`] when Redis did not take it.
    pub async fn ask(
        &self,
        make: impl FnOnce([u8; 8], u64) -> Event,
    ) -> Result<Asked, ClusterError> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let bytes = make(self.id.0, id)
            .encode()
            .ok_or_else(|| ClusterError::Redis("a request that does not encode".to_owned()))?;
        let (replies_in, replies) = mpsc::unbounded_channel();
        lock(&self.pending).insert(id, replies_in);
        let mut asked = Asked {
            id,
            replies,
            heard: 0,
            pending: Arc::clone(&self.pending),
        };
        let (sent_in, sent) = oneshot::channel();
        self.change(Change::Publish {
            to: None,
            bytes,
            sent: Some(sent_in),
        });
        match tokio::time::timeout(self.timeout * 2, sent).await {
            Ok(Ok(Some(heard))) => {
                // This node hears its own bus too.
                asked.heard = heard.saturating_sub(1);
                Ok(asked)
            }
            Ok(_) => Err(ClusterError::Unreachable(
                "the request was not published".to_owned(),
            )),
            Err(_) => Err(ClusterError::Unreachable(format!(
                "the request was not published within {:?}",
                self.timeout * 2
            ))),
        }
    }

    /// How long one Redis command may take (the cluster's timeout).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A sender of changes, for the session registry.
    pub fn changes(&self) -> mpsc::UnboundedSender<Change> {
        self.changes.clone()
    }

    /// The cluster's record of a session, if it has one (none once it ended or expired).
    pub async fn session(&self, id: &SessionId) -> Result<Option<Record>, ClusterError> {
        let mut conn = self.conn.clone();
        /// A record's fields (`user`, `gen`, `created`) and its groups, as Redis has them.
        type Stored = ((Option<i64>, Option<u64>, Option<u64>), Vec<String>);
        let ((user, generation, created), groups): Stored = redis::pipe()
            .cmd("HMGET")
            .arg(self.keys.session(id))
            .arg("user")
            .arg("gen")
            .arg("created")
            .cmd("SMEMBERS")
            .arg(self.keys.session_groups(&hex(id)))
            .query_async(&mut conn)
            .await?;
        Ok(match (generation, created) {
            (Some(generation), Some(created)) => Some(Record {
                user,
                generation,
                created,
                groups,
            }),
            _ => None,
        })
    }

    /// The key of a shared throttling bucket's `key`.
    pub fn throttle_key(&self, bucket: &str, key: &str) -> String {
        self.keys.throttle(bucket, key)
    }

    /// Runs a Lua script on one key.
    ///
    /// # Errors
    /// [`ClusterError`] when Redis cannot be asked or the answer is not a `T`.
    pub async fn eval<T: redis::FromRedisValue>(
        &self,
        script: &str,
        key: &str,
        args: &[String],
    ) -> Result<T, ClusterError> {
        let mut conn = self.conn.clone();
        Ok(redis::cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg(key)
            .arg(args)
            .query_async(&mut conn)
            .await?)
    }

    /// Deletes a key (best effort: a failure is logged).
    pub async fn forget(&self, key: &str) {
        let mut conn = self.conn.clone();
        if let Err(err) = redis::cmd("DEL")
            .arg(key)
            .query_async::<()>(&mut conn)
            .await
        {
            tracing::debug!(%err, key, "not deleted");
        }
    }

    /// Takes the lease on delivering `user`'s mailbox for `hold`, unless another node holds it:
    /// whether this node has it now.
    ///
    /// # Errors
    /// [`ClusterError`] when Redis cannot be asked (the caller does not deliver then).
    pub async fn lease_mailbox(&self, user: UserId, hold: Duration) -> Result<bool, ClusterError> {
        let mut conn = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.keys.mailbox(user))
            .arg(self.id.to_string())
            .arg("NX")
            .arg("PX")
            .arg(millis(hold))
            .query_async(&mut conn)
            .await?;
        Ok(taken.is_some())
    }

    /// Holds the mailbox lease of `user` for `hold` more from now; whether this node still has it.
    ///
    /// # Errors
    /// [`ClusterError`] when Redis cannot be asked.
    pub async fn renew_mailbox(&self, user: UserId, hold: Duration) -> Result<bool, ClusterError> {
        let mut conn = self.conn.clone();
        let renewed: i64 = redis::cmd("EVAL")
            .arg(RENEW)
            .arg(1)
            .arg(self.keys.mailbox(user))
            .arg(self.id.to_string())
            .arg(millis(hold))
            .query_async(&mut conn)
            .await?;
        Ok(renewed == 1)
    }

    /// Gives the mailbox lease of `user` back, if this node holds it.
    pub async fn release_mailbox(&self, user: UserId) {
        let mut conn = self.conn.clone();
        let released: Result<i64, _> = redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(self.keys.mailbox(user))
            .arg(self.id.to_string())
            .query_async(&mut conn)
            .await;
        if let Err(err) = released {
            tracing::debug!(%err, user, "mailbox lease not given back; it expires");
        }
    }

    /// The sessions in `group` (those whose record is there), each with its user and whether it
    /// is connected on some node now.
    ///
    /// # Errors
    /// [`ClusterError`] when Redis cannot be asked.
    pub async fn group(
        &self,
        group: &str,
    ) -> Result<Vec<(SessionId, Option<UserId>, bool)>, ClusterError> {
        let mut conn = self.conn.clone();
        let (members, nodes): (Vec<String>, Vec<String>) = redis::pipe()
            .cmd("SMEMBERS")
            .arg(self.keys.group(group))
            .cmd("ZRANGE")
            .arg(self.keys.nodes())
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        // Connected somewhere: in some node's set of connected sessions.
        let mut pipe = redis::pipe();
        for node in nodes.iter().filter_map(|n| parse_node(n)) {
            pipe.cmd("SMISMEMBER")
                .arg(self.keys.node_sessions(&node))
                .arg(&members);
        }
        for hex in &members {
            pipe.cmd("HMGET")
                .arg(self.keys.session_hex(hex))
                .arg("user")
                .arg("created");
        }
        let answers: Vec<Value> = pipe.query_async(&mut conn).await?;
        let (connected, users) = answers.split_at(answers.len() - members.len());
        let mut online = vec![false; members.len()];
        for flags in connected {
            let flags: Vec<bool> = redis::from_redis_value(flags.clone())?;
            for (seen, flag) in online.iter_mut().zip(flags) {
                *seen |= flag;
            }
        }
        let mut found = Vec::new();
        let mut gone = Vec::new();
        for ((hex, online), record) in members.iter().zip(online).zip(users) {
            let (user, created): (Option<i64>, Option<u64>) =
                redis::from_redis_value(record.clone())?;
            match (parse_session(hex), created) {
                (Some(id), Some(_)) => found.push((id, user, online)),
                // A member whose record expired (sessions that time out are never ended, so
                // nothing else takes them out of their groups): pruned here.
                _ => gone.push(hex),
            }
        }
        if !gone.is_empty() {
            let mut prune = redis::pipe();
            prune
                .cmd("SREM")
                .arg(self.keys.group(group))
                .arg(&gone)
                .ignore();
            for hex in &gone {
                prune.cmd("DEL").arg(self.keys.session_groups(hex)).ignore();
            }
            let () = prune.query_async(&mut conn).await?;
        }
        found.sort();
        Ok(found)
    }

    /// Leaves the cluster (at shutdown): applies the changes still queued, lets the sessions
    /// connected here expire as idle ones, tells the others. Bounded by the command timeout.
    pub async fn leave(&self, idle: Duration) {
        self.stop.cancel();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(writer) = writer {
            let _ = tokio::time::timeout(self.timeout * 2, writer).await;
        }
        let goodbye = async {
            let mut conn = self.conn.clone();
            let ended = self.bury(&mut conn, self.id, idle).await;
            if let Some(bytes) = (Event::Goodbye { from: self.id.0 }).encode() {
                let _: Result<(), _> = redis::cmd("PUBLISH")
                    .arg(self.keys.bus())
                    .arg(bytes)
                    .query_async(&mut conn)
                    .await;
            }
            ended
        };
        match tokio::time::timeout(self.timeout * 2, goodbye).await {
            Ok(Ok(())) => tracing::info!(node = %self.id, "left the cluster"),
            Ok(Err(err)) => {
                tracing::warn!(node = %self.id, %err, "left the cluster without a goodbye")
            }
            Err(_) => {
                tracing::warn!(node = %self.id, "left the cluster without a goodbye (timed out)")
            }
        }
    }

    /// Says this node is alive.
    async fn beat(&self) -> Result<(), ClusterError> {
        let mut conn = self.conn.clone();
        let () = redis::cmd("ZADD")
            .arg(self.keys.nodes())
            .arg(unix_ms())
            .arg(self.id.to_string())
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The nodes whose last heartbeat is older than `dead_after`.
    async fn dead(
        &self,
        conn: &mut ConnectionManager,
        dead_after: Duration,
    ) -> Result<Vec<NodeId>, ClusterError> {
        let before = unix_ms().saturating_sub(u64::try_from(dead_after.as_millis()).unwrap_or(0));
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.keys.nodes())
            .arg("-inf")
            .arg(format!("({before}"))
            .arg("LIMIT")
            .arg(0)
            .arg(SWEEP)
            .query_async(conn)
            .await?;
        Ok(ids.iter().filter_map(|id| parse_node(id)).collect())
    }

    /// Forgets a node (dead, or this one leaving): the sessions connected there get `idle` to
    /// live (less if they had less), and it leaves the node list.
    async fn bury(
        &self,
        conn: &mut ConnectionManager,
        node: NodeId,
        idle: Duration,
    ) -> Result<(), ClusterError> {
        let connected = self.keys.node_sessions(&node);
        let sessions: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&connected)
            .query_async(conn)
            .await?;
        let mut pipe = redis::pipe();
        for hex in &sessions {
            pipe.cmd("PEXPIRE")
                .arg(self.keys.session_hex(hex))
                .arg(millis(idle))
                .arg("LT")
                .ignore();
        }
        pipe.cmd("DEL").arg(&connected).ignore();
        pipe.cmd("ZREM")
            .arg(self.keys.nodes())
            .arg(node.to_string())
            .ignore();
        let () = pipe.query_async(conn).await?;
        Ok(())
    }

    /// Adds one change's commands to `pipe`; a change that needs an answer first (the sessions
    /// of a user) asks for it on `conn`.
    async fn record(
        &self,
        conn: &mut ConnectionManager,
        pipe: &mut redis::Pipeline,
        told: &mut Vec<oneshot::Sender<Option<usize>>>,
        change: Change,
    ) -> Result<(), ClusterError> {
        let keys = &self.keys;
        let here = keys.node_sessions(&self.id);
        match change {
            Change::Opened { session, lifetime } => {
                let key = keys.session(&session);
                pipe.cmd("HSET")
                    .arg(&key)
                    .arg("gen")
                    .arg(0)
                    .arg("created")
                    .arg(unix_ms())
                    .ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(millis(lifetime)).ignore();
                pipe.cmd("SADD").arg(&here).arg(hex(&session)).ignore();
            }
            Change::Connected { session, left } => {
                pipe.cmd("PEXPIRE")
                    .arg(keys.session(&session))
                    .arg(millis(left))
                    .ignore();
                pipe.cmd("SADD").arg(&here).arg(hex(&session)).ignore();
            }
            Change::Idle { session, idle } => {
                pipe.cmd("PEXPIRE")
                    .arg(keys.session(&session))
                    .arg(millis(idle))
                    .ignore();
                pipe.cmd("SREM").arg(&here).arg(hex(&session)).ignore();
            }
            Change::Login {
                session,
                previous,
                user,
                generation,
                left,
            } => {
                pipe.cmd("EVAL")
                    .arg(LOGIN)
                    .arg(1)
                    .arg(keys.session(&session))
                    .arg(generation)
                    .arg(user.map(|u| u.to_string()).unwrap_or_default())
                    .ignore();
                match user {
                    Some(user) => {
                        let theirs = keys.user_sessions(user);
                        pipe.cmd("SADD").arg(&theirs).arg(hex(&session)).ignore();
                        // The set lives as long as the longest-lived of its sessions.
                        pipe.cmd("PEXPIRE")
                            .arg(&theirs)
                            .arg(millis(left))
                            .arg("GT")
                            .ignore();
                        pipe.cmd("PEXPIRE")
                            .arg(&theirs)
                            .arg(millis(left))
                            .arg("NX")
                            .ignore();
                    }
                    None => {
                        // Logged out: it leaves its groups, as on one node.
                        leave_groups(keys, conn, pipe, &session).await?;
                    }
                }
                if let Some(previous) = previous.filter(|p| Some(*p) != user) {
                    pipe.cmd("SREM")
                        .arg(keys.user_sessions(previous))
                        .arg(hex(&session))
                        .ignore();
                }
                self.publish(
                    pipe,
                    &Event::Login {
                        from: self.id.0,
                        session: *session.as_bytes(),
                        user,
                        generation,
                    },
                );
            }
            Change::Ended { session, user } => {
                leave_groups(keys, conn, pipe, &session).await?;
                forget(keys, pipe, &here, &session, user);
                self.publish(
                    pipe,
                    &Event::End {
                        from: self.id.0,
                        session: *session.as_bytes(),
                    },
                );
            }
            Change::Forgotten { session, user } => {
                leave_groups(keys, conn, pipe, &session).await?;
                forget(keys, pipe, &here, &session, user);
            }
            Change::Restore {
                session,
                user,
                generation,
                created,
                ttl,
                connected,
                groups,
            } => {
                let id = hex(&session);
                let theirs = user.map(|user| keys.user_sessions(user));
                pipe.cmd("EVAL")
                    .arg(RESTORE)
                    .arg(2)
                    .arg(keys.session(&session))
                    .arg(theirs.as_deref().unwrap_or(""))
                    .arg(generation)
                    .arg(created)
                    .arg(user.map(|u| u.to_string()).unwrap_or_default())
                    .arg(millis(ttl))
                    .arg(&id)
                    .ignore();
                if connected {
                    pipe.cmd("SADD").arg(&here).arg(&id).ignore();
                }
                for group in &groups {
                    pipe.cmd("SADD").arg(keys.group(group)).arg(&id).ignore();
                    pipe.cmd("SADD")
                        .arg(keys.session_groups(&id))
                        .arg(group)
                        .ignore();
                }
            }
            Change::Group {
                session,
                group,
                joined,
            } => {
                let (verb, id) = (if joined { "SADD" } else { "SREM" }, hex(&session));
                pipe.cmd(verb).arg(keys.group(&group)).arg(&id).ignore();
                pipe.cmd(verb)
                    .arg(keys.session_groups(&id))
                    .arg(&group)
                    .ignore();
                self.publish(
                    pipe,
                    &Event::Group {
                        from: self.id.0,
                        session: *session.as_bytes(),
                        group,
                        joined,
                    },
                );
            }
            Change::Publish { to, bytes, sent } => {
                let channel = match to {
                    Some(node) => keys.node_channel(&node),
                    None => keys.bus(),
                };
                pipe.cmd("PUBLISH").arg(channel).arg(bytes);
                match sent {
                    Some(sent) => told.push(sent),
                    None => {
                        pipe.ignore();
                    }
                }
            }
            Change::EndedUser { user } => {
                let theirs = keys.user_sessions(user);
                let sessions: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(&theirs)
                    .query_async(conn)
                    .await?;
                for session in &sessions {
                    pipe.cmd("DEL").arg(keys.session_hex(session)).ignore();
                }
                pipe.cmd("DEL").arg(&theirs).ignore();
                self.publish(
                    pipe,
                    &Event::EndUser {
                        from: self.id.0,
                        user,
                    },
                );
            }
        }
        Ok(())
    }

    fn publish(&self, pipe: &mut redis::Pipeline, event: &Event) {
        if let Some(bytes) = event.encode() {
            pipe.cmd("PUBLISH").arg(self.keys.bus()).arg(bytes).ignore();
        }
    }
}

/// Adds the commands that take a session out of every group it is in to `pipe` (asking `conn`
/// which ones).
async fn leave_groups(
    keys: &Keys,
    conn: &mut ConnectionManager,
    pipe: &mut redis::Pipeline,
    session: &SessionId,
) -> Result<(), ClusterError> {
    let id = hex(session);
    let theirs = keys.session_groups(&id);
    let groups: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&theirs)
        .query_async(conn)
        .await?;
    for group in &groups {
        pipe.cmd("SREM").arg(keys.group(group)).arg(&id).ignore();
    }
    pipe.cmd("DEL").arg(&theirs).ignore();
    Ok(())
}

/// Adds the commands that remove a session's record and its place in the sets to `pipe`.
fn forget(
    keys: &Keys,
    pipe: &mut redis::Pipeline,
    here: &str,
    session: &SessionId,
    user: Option<UserId>,
) {
    pipe.cmd("DEL").arg(keys.session(session)).ignore();
    pipe.cmd("SREM").arg(here).arg(hex(session)).ignore();
    if let Some(user) = user {
        pipe.cmd("SREM")
            .arg(keys.user_sessions(user))
            .arg(hex(session))
            .ignore();
    }
}

/// The writer: applies queued changes in order, as many as are queued in one pipeline. A batch
/// Redis refused or never saw is logged and dropped (the records it would have written expire
/// or are written again by the next change of the same session).
async fn write(node: Arc<Node>, mut queued: mpsc::UnboundedReceiver<Change>) {
    let mut conn = node.conn.clone();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let got = tokio::select! {
            biased;
            got = queued.recv_many(&mut batch, BATCH) => got,
            () = node.stop.cancelled() => {
                // Leaving: what is queued still goes.
                while batch.len() < BATCH {
                    match queued.try_recv() {
                        Ok(change) => batch.push(change),
                        Err(_) => break,
                    }
                }
                batch.len()
            }
        };
        if got == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        let mut failed = None;
        let mut told = Vec::new();
        for change in batch.drain(..) {
            if let Err(err) = node.record(&mut conn, &mut pipe, &mut told, change).await {
                failed = Some(err);
            }
        }
        // The pipeline answers the publishes someone waits on, in order, and nothing else.
        let sent = pipe.query_async::<Vec<usize>>(&mut conn).await;
        let mut heard = sent.as_ref().ok().into_iter().flatten();
        for waiting in told {
            let _ = waiting.send(heard.next().copied());
        }
        if let Err(err) = sent {
            failed = Some(err.into());
        }
        if let Some(err) = failed {
            tracing::warn!(node = %node.id, %err, "session changes not recorded in the cluster");
        }
        if node.stop.is_cancelled() && queued.is_empty() {
            return;
        }
    }
}

/// The heartbeat: every `every`, says this node is alive and buries nodes silent for two
/// heartbeats. Ends when the node leaves.
async fn heartbeat(node: Arc<Node>, every: Duration, idle: Duration) {
    let mut conn = node.conn.clone();
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut down = false;
    loop {
        tokio::select! {
            () = node.stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let beat = async {
            node.beat().await?;
            for dead in node.dead(&mut conn, every * 2).await? {
                if dead != node.id {
                    tracing::info!(node = %node.id, dead = %dead, "a node stopped beating; its sessions expire as idle ones");
                    node.bury(&mut conn, dead, idle).await?;
                }
            }
            Ok::<_, ClusterError>(())
        };
        match beat.await {
            Ok(()) if down || node.dropped.swap(false, Ordering::AcqRel) => {
                down = false;
                let found = match node.check_epoch().await {
                    Ok(true) => Rejoined::Lost,
                    Ok(false) => Rejoined::Missed,
                    Err(err) => {
                        tracing::warn!(node = %node.id, %err, "cannot read the cluster's mark; trying again");
                        node.dropped.store(true, Ordering::Release);
                        continue;
                    }
                };
                tracing::info!(node = %node.id, ?found, "the cluster's Redis is reachable again");
                node.rejoined.send_modify(|(n, what)| {
                    *n += 1;
                    *what = found;
                });
            }
            Ok(()) => {}
            Err(err) if !down => {
                down = true;
                tracing::warn!(node = %node.id, %err, "the cluster's Redis is unreachable; retrying every heartbeat");
            }
            Err(_) => {}
        }
    }
}

/// A message this node heard.
enum Heard {
    /// On the bus.
    Event(Event),
    /// On its own channel (`mine`).
    Reply(Reply),
}

/// What a pushed message carries; `None` for anything else (subscription notices, a message
/// this node cannot read).
fn heard(push: PushInfo, mine: &str) -> Option<Heard> {
    if push.kind != PushKind::Message {
        return None;
    }
    let (Value::BulkString(channel), Value::BulkString(bytes)) =
        (push.data.first()?, push.data.get(1)?)
    else {
        return None;
    };
    if channel.as_slice() == mine.as_bytes() {
        Reply::decode(bytes).map(Heard::Reply)
    } else {
        Event::decode(bytes).map(Heard::Event)
    }
}

fn parse_session(hex: &str) -> Option<SessionId> {
    parse_hex(hex).map(SessionId::from_bytes)
}

fn parse_node(hex: &str) -> Option<NodeId> {
    parse_hex(hex).map(NodeId)
}

/// `N` bytes written as `2 * N` hex digits.
fn parse_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    if hex.len() != 2 * N {
        return None;
    }
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(bytes)
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_read_back_from_hex_and_nothing_else_does() {
        let id = NodeId([0, 1, 2, 0xab, 0xcd, 0xef, 0x10, 0xff]);
        assert_eq!(parse_node(&id.to_string()), Some(id));
        assert_eq!(parse_node("0001"), None);
        assert_eq!(parse_node("zz0102abcdef10ff"), None);
        assert_eq!(parse_node("é01020304050607"), None);
    }
}
