//! Reverse requests: the server calls functions its connected clients registered. Each open
//! connection is a [`Link`] in its session: its outgoing queue and the replies it still awaits.
//! Sends never wait: a connection whose queue is full misses that request (the send reports it),
//! and one that takes no bytes for the idle timeout is closed by its writer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::wire::{DirectWrite, Envelope, ErrorCode, Outbox, SendError};

type Answer = Result<Bytes, (ErrorCode, String)>;

/// Why a reverse request that awaits its reply got none.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReverseError {
    /// No connected client to ask (the user, session or group has none).
    #[error("no connected client to ask")]
    Offline,
    /// The client did not answer in time.
    #[error("the client did not answer within {0:?}")]
    Timeout(Duration),
    /// The client answered with an error (no handler, its handler failed, ...).
    #[error("the client answered with an error ({code}): {message}")]
    Client {
        /// What kind.
        code: ErrorCode,
        /// The client's explanation.
        message: String,
    },
    /// The client's answer does not decode as the expected type.
    #[error("the client's answer does not decode as `{expected}`: {reason}")]
    BadReply {
        /// The expected type.
        expected: &'static str,
        /// postcard's error.
        reason: String,
    },
    /// The client disconnected before answering.
    #[error("the client disconnected before answering")]
    Disconnected,
    /// On a cluster node: the other nodes could not be asked (their Redis is unreachable).
    #[error("the cluster is unreachable: {0}")]
    ClusterUnreachable(String),
    /// The payload would not encode.
    #[error("cannot encode the payload: {0}")]
    Encode(String),
    /// The client's queue is full (it is not reading).
    #[error("the client is not reading; its queue is full")]
    Full,
    /// `reverse_request_or_keep` on a server without a mailbox, or the mailbox failed.
    #[error("mailbox: {0}")]
    Mailbox(String),
    /// The user already has the most messages the mailbox keeps for one user.
    #[error("the mailbox of user {user} is full ({limit} messages wait)")]
    MailboxFull {
        /// The user.
        user: super::UserId,
        /// The limit ([`MailboxLimits::per_user`](super::MailboxLimits::per_user)).
        limit: u64,
    },
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is one map operation: a poisoned lock holds consistent data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One open connection, as reverse requests reach it.
pub(crate) struct Link {
    /// The connection's number, unique in the process.
    id: u64,
    outbox: Arc<Outbox>,
    next_id: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    /// Wakes the connection's reader when the server closes this connection.
    kick: tokio::sync::Notify,
    /// Set before `kick` is notified, for a reader that checks instead of polling.
    kicked: std::sync::atomic::AtomicBool,
}

/// Numbers connections, so a session can tell its own connections apart.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

impl Link {
    pub fn new(outbox: Arc<Outbox>) -> Arc<Link> {
        Arc::new(Link {
            id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            outbox,
            next_id: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            kick: tokio::sync::Notify::new(),
            kicked: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The connection's number.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Closes the connection (its reader says goodbye and stops).
    pub fn kick(&self) {
        self.kicked.store(true, Ordering::Release);
        self.kick.notify_waiters();
    }

    /// Whether [`kick`](Self::kick) was called.
    pub fn is_kicked(&self) -> bool {
        self.kicked.load(Ordering::Acquire)
    }

    /// Completes when the server closes this connection (register with `enable` first).
    pub fn kicked(&self) -> tokio::sync::futures::Notified<'_> {
        self.kick.notified()
    }

    /// Tells the client its session's new token, ahead of anything queued after it.
    pub fn send_token(&self, token: crate::wire::SessionTokenBytes) {
        let _ = self.outbox.send_control(&Envelope::Token { token });
    }

    /// Queues a reverse request that expects no reply (any reply is ignored).
    pub fn send(&self, name: &str, payload: &[u8]) -> Result<(), SendError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.outbox
            .try_send_direct(&Envelope::ReverseRequest { id, name, payload })
    }

    /// Queues a reverse request and returns its id and where its reply will arrive.
    pub fn call(
        &self,
        name: &str,
        payload: &[u8],
    ) -> Result<(u64, oneshot::Receiver<Answer>), SendError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.waiting).insert(id, tx);
        match self
            .outbox
            .try_send_direct(&Envelope::ReverseRequest { id, name, payload })
        {
            Ok(()) => Ok((id, rx)),
            Err(err) => {
                lock(&self.waiting).remove(&id);
                Err(err)
            }
        }
    }

    /// Nobody waits for the reply to `id` any more (it timed out): forget its waiter.
    pub fn forget(&self, id: u64) {
        lock(&self.waiting).remove(&id);
    }

    /// Replies still awaited on this connection.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        lock(&self.waiting).len()
    }

    /// A reply arrived; `false` if nobody was waiting for that id.
    pub fn complete(&self, id: u64, answer: Answer) -> bool {
        match lock(&self.waiting).remove(&id) {
            Some(waiter) => {
                let _ = waiter.send(answer);
                true
            }
            None => false,
        }
    }

    /// The connection closed: whoever waits learns it now.
    pub fn close(&self) {
        lock(&self.waiting).clear();
    }
}

/// Encodes a reverse request's payload once, for however many connections it goes to.
pub(crate) fn encode<P: Serialize + ?Sized>(payload: &P) -> Result<Vec<u8>, ReverseError> {
    crate::wire::to_vec(payload).map_err(|e| ReverseError::Encode(e.to_string()))
}

/// Links one task sends to before a broadcast is split over the runtime's threads.
const LINKS_PER_TASK: usize = 256;

/// Sends to weakly held links (see [`send_many`]); how many took it.
fn send_weak(links: &[Weak<Link>], name: &str, payload: &[u8]) -> usize {
    links
        .chunks(WARM_BLOCK)
        .map(|block| {
            let strong: [Option<Arc<Link>>; WARM_BLOCK] =
                std::array::from_fn(|i| block.get(i).and_then(Weak::upgrade));
            send_block(strong.iter().flatten(), name, payload)
        })
        .sum()
}

/// Links a sender to many takes at a time (see [`send_block`]).
const WARM_BLOCK: usize = 8;

/// Sends to a few links; how many took it. What each send touches first (the link's outbox, its
/// socket handle: each behind a pointer, in memory of its own) is loaded for all of them before
/// the first write: those loads do not depend on one another, so their cache misses overlap,
/// where one by one each would wait behind the previous send's system call. (At 10,000 clients,
/// alternating runs: 1.19-1.39x of the broadcast benchmark's raw floor one by one, 1.09-1.20x so.)
fn send_block<'a>(
    block: impl Iterator<Item = &'a Arc<Link>> + Clone,
    name: &str,
    payload: &[u8],
) -> usize {
    let warmed: usize = block
        .clone()
        .filter_map(|link| link.outbox.warm())
        .map(DirectWrite::warm)
        .sum();
    std::hint::black_box(warmed);
    block
        .filter(|link| link.send(name, payload).is_ok())
        .count()
}

/// Sends to many links, split over the runtime's worker threads when there are many (each send is
/// a system call: a broadcast to thousands should use every core). The split is into tasks of
/// [`LINKS_PER_TASK`] links, many more than there are workers: a worker whose thread the machine
/// keeps busy elsewhere (each write wakes a receiving process) sends fewer, the others take the
/// rest. (One task per worker left the broadcast waiting on the slowest: at 10,000 clients one
/// half took 81 ms and the other 181 ms.)
///
/// The links are held weakly while the sends go out: a client that leaves as soon as it has the
/// request (its connection ends while the broadcast is still going) is closed by its own
/// connection's task, not by the broadcast dropping the last handle on it, which would make the
/// caller pay a socket close per departed client before `broadcast` returns.
pub(crate) async fn send_many(links: Vec<Weak<Link>>, name: &str, payload: Vec<u8>) -> usize {
    if links.len() <= LINKS_PER_TASK {
        return send_weak(&links, name, &payload);
    }
    let name: Arc<str> = Arc::from(name);
    let payload: Arc<[u8]> = Arc::from(payload);
    let chunk = LINKS_PER_TASK;
    let links = Arc::new(links);
    // The first chunk is sent from here while the tasks send the rest: the calling thread takes a
    // share of the writes instead of only waiting for them.
    let tasks: Vec<_> = (chunk..links.len())
        .step_by(chunk)
        .map(|start| {
            let (links, name, payload) =
                (Arc::clone(&links), Arc::clone(&name), Arc::clone(&payload));
            tokio::spawn(async move {
                let end = (start + chunk).min(links.len());
                send_weak(&links[start..end], &name, &payload)
            })
        })
        .collect();
    let mut sent = send_weak(&links[..chunk], &name, &payload);
    for task in tasks {
        sent += task.await.unwrap_or(0);
    }
    sent
}

/// A reply's bytes as `R`.
pub(crate) fn decode_reply<R: DeserializeOwned>(bytes: &[u8]) -> Result<R, ReverseError> {
    crate::wire::from_bytes_exact(bytes).map_err(|e| ReverseError::BadReply {
        expected: std::any::type_name::<R>(),
        reason: e.to_string(),
    })
}

/// Asks the first link that takes the request and awaits its reply's bytes.
pub(crate) async fn call_first_raw(
    links: &[Arc<Link>],
    name: &str,
    payload: &[u8],
    timeout: Duration,
) -> Result<Bytes, ReverseError> {
    let mut full = false;
    let mut asked = None;
    for link in links {
        match link.call(name, payload) {
            Ok((id, rx)) => {
                asked = Some((link, id, rx));
                break;
            }
            Err(SendError::Full) => full = true,
            Err(_) => {}
        }
    }
    let (link, id, reply) = match asked {
        Some(asked) => asked,
        None if full => return Err(ReverseError::Full),
        None => return Err(ReverseError::Offline),
    };
    /// Forgets the waiter however the wait ends (a timeout, or the caller giving up).
    struct Waiting<'a>(&'a Link, u64);
    impl Drop for Waiting<'_> {
        fn drop(&mut self) {
            self.0.forget(self.1);
        }
    }
    let _waiting = Waiting(link, id);
    let answer = match tokio::time::timeout(timeout, reply).await {
        Err(_) => return Err(ReverseError::Timeout(timeout)),
        Ok(Err(_)) => return Err(ReverseError::Disconnected),
        Ok(Ok(answer)) => answer,
    };
    answer.map_err(|(code, message)| ReverseError::Client { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reverse call that times out leaves no waiter behind (a client that never answers must
    /// not grow the connection's table of waiters).
    #[tokio::test]
    async fn a_timed_out_call_forgets_its_waiter() {
        let link = Link::new(Outbox::new(1 << 20, 1 << 20));
        for _ in 0..100 {
            let asked =
                call_first_raw(&[Arc::clone(&link)], "never", b"", Duration::from_millis(1)).await;
            assert!(matches!(asked, Err(ReverseError::Timeout(_))));
        }
        assert_eq!(link.waiting(), 0);
        // A call given up by its caller (its future dropped) forgets its waiter too.
        let abandoned = tokio::time::timeout(
            Duration::from_millis(5),
            call_first_raw(&[Arc::clone(&link)], "never", b"", Duration::from_secs(60)),
        )
        .await;
        assert!(abandoned.is_err());
        assert_eq!(link.waiting(), 0);
    }
}
