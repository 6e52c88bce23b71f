//! What a cluster node does with what the other nodes tell it (see [`crate::cluster`]): their
//! logins, logouts and ended sessions reach the sessions this node serves.

use std::sync::Weak;

use tokio::sync::mpsc;

use super::handle::Shared;
use crate::auth::SessionId;
use crate::cluster::Event;

/// Applies the other nodes' events to this server's sessions until the server is gone.
pub(crate) async fn apply(shared: Weak<Shared>, mut events: mpsc::UnboundedReceiver<Event>) {
    while let Some(event) = events.recv().await {
        let Some(shared) = shared.upgrade() else {
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
                    // As on one node: a login closes the session's other connections (their
                    // clients hold the token from before, which resumes nothing now); a logout
                    // tells them the new token.
                    for link in session.links() {
                        match user {
                            Some(_) => link.kick(),
                            None => link.send_token(token.to_wire()),
                        }
                    }
                }
            }
            Event::End { session, .. } => {
                shared.sessions.apply_end(&SessionId::from_bytes(session));
            }
            Event::EndUser { user, .. } => {
                shared.sessions.apply_end_user(user);
            }
            Event::Goodbye { from } => {
                tracing::debug!(node = %crate::cluster::NodeId(from), "a node left the cluster");
            }
        }
    }
}
