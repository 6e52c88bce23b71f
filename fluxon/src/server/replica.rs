//! A cluster node's sessions kept in step with the cluster: a session made on another node taken
//! in when its token is presented here, and, after the node lost Redis for a while, what it
//! missed (or what Redis lost) made good. What the other nodes say of their logins and ended
//! sessions comes through [`super::members`].

use std::sync::Weak;
use std::time::Duration;

use tokio::time::Instant;

use super::handle::Shared;
use crate::auth::{SessionId, SessionToken};
use crate::cluster::Node;

/// Takes in the session `token` names from the cluster when this node does not have it (made
/// on another node, or forgotten here). The token is checked afterwards, as for any session.
/// Redis unreachable or slow: the client gets a fresh session (told `resumed = false`).
///
/// A token one or two logins ahead of the record is genuine (only a node with the key makes
/// one) and means the node that made it has not written the login yet: looked up again a few
/// times, a few ms apart. A forged token matches no generation and costs one lookup.
pub(crate) async fn adopt(
    shared: &Shared,
    node: &crate::cluster::Node,
    token: &SessionToken,
    deadline: Instant,
) {
    const TRIES: u32 = 4;
    let id = token.id();
    let ahead_of =
        |generation: u64| (1..=2).any(|n| shared.sessions.verifies(token, generation + n));
    if let Some((_, cached)) = shared.sessions.login_of(&id) {
        // Known here: looked up only when the token is a login or two ahead of this node's copy
        // (the news of that login has not reached this node yet).
        if shared.sessions.verifies(token, cached) || !ahead_of(cached) {
            return;
        }
    }
    for attempt in 0..TRIES {
        let record = match tokio::time::timeout_at(deadline, node.session(&id)).await {
            Ok(Ok(Some(record))) => record,
            Ok(Ok(None)) => return,
            Ok(Err(err)) => {
                tracing::warn!(%err, "cannot look the session up in the cluster");
                return;
            }
            Err(_) => {
                tracing::warn!("the cluster did not say within the handshake time");
                return;
            }
        };
        if shared.sessions.verifies(token, record.generation) {
            if !shared.sessions.adopt(id, &record) {
                return;
            }
            // Had already: it takes the newer login, as the event would have made it.
            if let Some((session, token)) =
                shared
                    .sessions
                    .apply_login(&id, record.user, record.generation)
            {
                tell_links(&session, record.user, token);
            }
            return;
        }
        if !ahead_of(record.generation) || attempt + 1 == TRIES {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
    }
}

/// Each time the node finds Redis again after losing it: if Redis lost its data (a restart
/// without persistence), writes again every session this node has, so that they resume on the
/// other nodes and their groups reach them; if not, catches up with what it missed meanwhile:
/// a session whose record is gone was ended elsewhere (it ends here too), one with a newer
/// login generation logged in or out elsewhere (it takes that login). Ends with the server.
pub(crate) async fn rejoin(
    shared: Weak<Shared>,
    mut rejoined: tokio::sync::watch::Receiver<(u64, crate::cluster::Rejoined)>,
) {
    while rejoined.changed().await.is_ok() {
        let found = rejoined.borrow_and_update().1;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Some(node) = &shared.cluster else {
            return;
        };
        match found {
            crate::cluster::Rejoined::Lost => {
                let sessions = shared.sessions.snapshot();
                tracing::info!(
                    sessions = sessions.len(),
                    "Redis lost its data: writing this node's sessions again"
                );
                for session in sessions {
                    node.change(session);
                }
            }
            crate::cluster::Rejoined::Missed => catch_up(&shared, node).await,
        }
    }
}

/// Applies to this node's sessions what Redis says of them now (see [`rejoin`]).
async fn catch_up(shared: &Shared, node: &Node) {
    let ids: Vec<SessionId> = shared
        .sessions
        .list()
        .into_iter()
        .map(|(id, ..)| id)
        .collect();
    for chunk in ids.chunks(512) {
        let logins = match node.logins(chunk).await {
            Ok(logins) => logins,
            Err(err) => {
                tracing::warn!(%err, "cannot catch up with the cluster now");
                return;
            }
        };
        for (id, login) in chunk.iter().zip(logins) {
            match login {
                None => {
                    shared.sessions.apply_end(id);
                }
                Some((user, generation)) => {
                    if let Some((session, token)) =
                        shared.sessions.apply_login(id, user, generation)
                    {
                        tell_links(&session, user, token);
                    }
                }
            }
        }
    }
}

/// A session's connections after a login (closed: their clients hold the token from before,
/// which resumes nothing now) or a logout (told the new token) elsewhere, as on one node for the
/// session's other connections.
pub(crate) fn tell_links(
    session: &crate::server::Session,
    user: Option<crate::auth::UserId>,
    token: SessionToken,
) {
    for link in session.links() {
        match user {
            Some(_) => link.kick(),
            None => link.send_token(token.to_wire()),
        }
    }
}
