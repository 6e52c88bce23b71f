//! A cluster node's side of the cluster (see [`crate::cluster`]): reverse requests that reach
//! the connections on every node, and the loop that takes in what the other nodes say (their
//! reverse requests here; their logins, logouts and ended sessions go to [`super::replica`]).
//!
//! A reverse request is sent to this node's connections at once and, on the bus, to the other
//! nodes', each delivering to its own (so each connection gets it exactly once). The count the
//! caller gets adds the others' replies, waited for at most the cluster's timeout. An awaited
//! reverse request asks one connection here if there is one; else one connection on each node
//! that has any, and the first answer wins.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::handle::Shared;
use super::reverse::{self, Link, ReverseError};
use crate::auth::SessionId;
use crate::cluster::{Event, Node, Refusal, Reply, Target};

/// Sends a reverse request to `target`'s connections: this node's, and the other nodes' on a
/// cluster node; how many took it. With `any`, returns once one took it (the other nodes are
/// still told, and deliver).
pub(crate) async fn send(
    shared: &Shared,
    target: Target,
    name: &str,
    payload: Vec<u8>,
    any: bool,
) -> usize {
    let links = links_of(shared, &target);
    let Some(node) = &shared.cluster else {
        return reverse::send_many(links, name, payload).await;
    };
    let event = |from, id| Event::Send {
        from,
        id,
        target: target.clone(),
        name: name.to_owned(),
        payload: payload.clone(),
    };
    if any {
        let here = reverse::send_many(links, name, payload.clone()).await;
        if here > 0 {
            node.tell(|from| event(from, 0));
            return here;
        }
        return count(node, node.ask(event).await, true).await;
    }
    // The others first, so that they deliver while this node does.
    let asked = node.ask(event).await;
    reverse::send_many(links, name, payload).await + count(node, asked, false).await
}

/// Adds up the deliveries the other nodes report, until each has (or the cluster's timeout);
/// with `any`, until one delivered; 0 when they could not be asked.
async fn count(
    node: &Node,
    asked: Result<crate::cluster::Asked, crate::cluster::ClusterError>,
    any: bool,
) -> usize {
    let mut asked = match asked {
        Ok(asked) => asked,
        Err(err) => {
            tracing::warn!(%err, "reverse request sent on this node only");
            return 0;
        }
    };
    let deadline = Instant::now() + node.timeout();
    let mut total = 0usize;
    for _ in 0..asked.heard() {
        match asked.next(deadline).await {
            Some(Reply::Delivered { count, .. }) => {
                total = total.saturating_add(usize::try_from(count).unwrap_or(usize::MAX));
                if any && total > 0 {
                    break;
                }
            }
            Some(Reply::Answered { .. }) => {}
            None => break,
        }
    }
    total
}

/// Asks one connection of `target` and awaits its reply: one here if there is one, else one on
/// each other node that has any (the first answer wins), at most `timeout` (plus the cluster's).
pub(crate) async fn call(
    shared: &Shared,
    target: Target,
    name: &str,
    payload: &[u8],
    timeout: Duration,
) -> Result<Bytes, ReverseError> {
    let links = strong_links_of(shared, &target);
    if !links.is_empty() {
        match reverse::call_first_raw(&links, name, payload, timeout).await {
            Err(ReverseError::Offline) => {}
            done => return done,
        }
    }
    let Some(node) = &shared.cluster else {
        return Err(ReverseError::Offline);
    };
    let mut asked = node
        .ask(|from, id| Event::Call {
            from,
            id,
            target,
            name: name.to_owned(),
            payload: payload.to_vec(),
            wait_ms: crate::cluster::millis(timeout),
        })
        .await
        .map_err(|err| ReverseError::ClusterUnreachable(err.to_string()))?;
    let deadline = Instant::now() + timeout + node.timeout();
    let mut failed = None;
    for _ in 0..asked.heard() {
        match asked.next(deadline).await {
            Some(Reply::Answered { answer, .. }) => match answer {
                Ok(bytes) => return Ok(Bytes::from(bytes)),
                Err(Refusal::Offline) => {}
                Err(refusal) => {
                    failed.get_or_insert(refusal);
                }
            },
            Some(Reply::Delivered { .. }) => {}
            None => {
                return Err(failed.map_or(ReverseError::Timeout(timeout), |r| error(r, timeout)))
            }
        }
    }
    Err(failed.map_or(ReverseError::Offline, |r| error(r, timeout)))
}

fn error(refusal: Refusal, timeout: Duration) -> ReverseError {
    match refusal {
        Refusal::Offline => ReverseError::Offline,
        Refusal::Timeout => ReverseError::Timeout(timeout),
        Refusal::Client { code, message } => ReverseError::Client { code, message },
        Refusal::Disconnected => ReverseError::Disconnected,
        Refusal::Full => ReverseError::Full,
    }
}

fn refusal(err: ReverseError) -> Refusal {
    match err {
        ReverseError::Timeout(_) => Refusal::Timeout,
        ReverseError::Client { code, message } => Refusal::Client { code, message },
        ReverseError::Disconnected => Refusal::Disconnected,
        ReverseError::Full => Refusal::Full,
        _ => Refusal::Offline,
    }
}

/// This node's connections of `target`.
fn links_of(shared: &Shared, target: &Target) -> Vec<Weak<Link>> {
    match target {
        Target::All => shared.sessions.all_links(),
        _ => strong_links_of(shared, target)
            .iter()
            .map(Arc::downgrade)
            .collect(),
    }
}

fn strong_links_of(shared: &Shared, target: &Target) -> Vec<Arc<Link>> {
    match target {
        Target::User(user) => shared.sessions.links_of_user(*user),
        Target::Session(id) => shared
            .sessions
            .links_of_session(&SessionId::from_bytes(*id)),
        Target::Group(group) => shared.sessions.links_of_group(group),
        Target::All => shared
            .sessions
            .all_links()
            .iter()
            .filter_map(Weak::upgrade)
            .collect(),
    }
}

/// Applies the other nodes' events to this server until the server is gone.
pub(crate) async fn apply(shared: Weak<Shared>, mut events: mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = events.recv().await {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Some(node) = shared.cluster.clone() else {
            return;
        };
        match event {
            Event::Login {
                session,
                user,
                generation,
                ..
            } => {
                let id = SessionId::from_bytes(session);
                if let Some((session, token)) = shared.sessions.apply_login(&id, user, generation) {
                    super::replica::tell_links(&session, user, token);
                }
            }
            Event::End { session, .. } => {
                shared.sessions.apply_end(&SessionId::from_bytes(session));
            }
            Event::EndUser { user, .. } => {
                shared.sessions.apply_end_user(user);
            }
            Event::Group {
                session,
                group,
                joined,
                ..
            } => {
                let id = SessionId::from_bytes(session);
                if joined {
                    shared.sessions.apply_join(&id, &group);
                } else {
                    shared.sessions.apply_leave(&id, &group);
                }
            }
            Event::Goodbye { from } => {
                tracing::debug!(node = %crate::cluster::NodeId(from), "a node left the cluster");
            }
            Event::Send {
                from,
                id,
                target,
                name,
                payload,
            } => {
                // In order, here: what one node sends one connection arrives in the order sent.
                let links = links_of(&shared, &target);
                let count = reverse::send_many(links, &name, payload).await;
                if id != 0 {
                    let count = u64::try_from(count).unwrap_or(u64::MAX);
                    node.reply(from, &Reply::Delivered { id, count });
                }
            }
            Event::Call {
                from,
                id,
                target,
                name,
                payload,
                wait_ms,
            } => {
                let links = strong_links_of(&shared, &target);
                if links.is_empty() {
                    node.reply(
                        from,
                        &Reply::Answered {
                            id,
                            answer: Err(Refusal::Offline),
                        },
                    );
                    continue;
                }
                // The client's answer is awaited aside: other events go on meanwhile.
                tokio::spawn(async move {
                    let wait = Duration::from_millis(wait_ms);
                    let answer = reverse::call_first_raw(&links, &name, &payload, wait)
                        .await
                        .map(|bytes| bytes.to_vec())
                        .map_err(refusal);
                    node.reply(from, &Reply::Answered { id, answer });
                });
            }
        }
    }
}
