//! Reconnecting: when a link ends, fail its waiting calls, then connect again with backoff and
//! resume the session, until the handler is closed or the policy gives up.

use std::sync::Arc;

use super::link::{self, Opened};
use super::shared::{Inner, LinkState};
use super::ConnectError;
use crate::wire::RefuseReason;

/// Runs links one after another: when one ends, fails its waiting calls, then reconnects with
/// backoff and resumes the session, until the handler is closed or the policy gives up.
pub(super) async fn supervise(inner: Arc<Inner>, first: link::Started) {
    let mut started = first;
    loop {
        link::run(&inner, started).await;
        inner.pending.fail_all();
        if inner.closed.is_cancelled() || !inner.config.reconnect.enabled {
            break;
        }
        match reconnect(&inner).await {
            Some(opened) => started = link::start(&inner, opened),
            None => break,
        }
    }
    inner.set_link(LinkState::Closed);
    inner.pending.fail_all();
}

/// One round: the address the handler was on, then each other one in turn (a cluster's other
/// nodes), presenting the session's token; the first that takes it. The error of a round is one
/// that says the server will never take this client only when every address said so.
async fn open_any(inner: &Inner) -> Result<Opened, ConnectError> {
    let mut permanent = None;
    let mut passing = None;
    for (at, addr) in inner.addrs_from_current() {
        match link::open(addr, inner.token(), &inner.config).await {
            Ok(opened) => {
                inner.moved_to(at);
                return Ok(opened);
            }
            Err(err) => {
                tracing::debug!(%err, addr, "cannot connect here");
                if never_accepted(&err) {
                    permanent = Some(err);
                } else {
                    passing = Some(err);
                }
            }
        }
    }
    Err(passing
        .or(permanent)
        .unwrap_or_else(|| ConnectError::InvalidConfig("no address to connect to".to_owned())))
}

/// Whether a server that answered this will never accept this client.
fn never_accepted(err: &ConnectError) -> bool {
    matches!(
        err,
        ConnectError::Refused {
            reason: RefuseReason::BadMagic | RefuseReason::UnsupportedVersion,
            ..
        }
    )
}

async fn reconnect(inner: &Inner) -> Option<Opened> {
    let policy = &inner.config.reconnect;
    let mut wait = policy.initial_backoff;
    let mut attempts = 0u32;
    loop {
        tokio::select! {
            () = inner.closed.cancelled() => return None,
            () = tokio::time::sleep(wait) => {}
        }
        match open_any(inner).await {
            Ok(opened) => {
                inner.opened(opened.token, opened.resumed);
                tracing::info!(resumed = opened.resumed, addr = inner.addr(), "reconnected");
                return Some(opened);
            }
            Err(err) if never_accepted(&err) => {
                tracing::error!(%err, "the server will never accept this client; giving up");
                return None;
            }
            Err(err) => {
                attempts += 1;
                tracing::debug!(%err, attempts, "reconnect failed");
                if policy.max_attempts.is_some_and(|max| attempts >= max) {
                    tracing::warn!(attempts, "giving up reconnecting");
                    return None;
                }
                wait = (wait * 2).min(policy.max_backoff);
            }
        }
    }
}
