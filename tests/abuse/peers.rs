//! One host cannot take the server's slots: connections and handshakes are bounded per peer
//! address, handshakes have a budget of their own, and calls can be rate-limited per session.

use std::time::{Duration, Instant};

use fluxon::wire::{self, Capacity, Envelope, ErrorCode, RefuseReason};
use fluxon::{AsyncServer, CallError, ConnectionHandler, Rate};
use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::*;
use crate::support::{eventually, Bystander, PATIENCE, PROMPT};
use crate::ALONE;

/// What a refused connection reads: the capacity it hit.
async fn refusal(peer: &mut RawPeer) -> Option<Capacity> {
    let frame = peer.next().await?;
    match Envelope::decode(&frame) {
        Ok(Envelope::Refused {
            reason: RefuseReason::ServerFull(capacity),
            ..
        }) => Some(capacity),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_past_its_cap_is_refused_while_another_connects_and_calls() {
    let _alone = ALONE.lock().await;
    let app = start(AsyncServer::new(0).max_connections_per_peer(Some(8))).await;
    let bystander = Bystander::connect(&app.addr()).await;

    let mut held = Vec::new();
    for _ in 0..8 {
        let mut peer = RawPeer::connect_from(&app, "127.0.0.2").await;
        peer.hello().await.expect("within the cap");
        held.push(peer);
    }
    for _ in 0..5 {
        let mut extra = RawPeer::connect_from(&app, "127.0.0.2").await;
        assert_eq!(refusal(&mut extra).await, Some(Capacity::PeerConnections));
        assert!(extra.next().await.is_none(), "closed after the refusal");
    }
    // Meanwhile: a new client from another address connects and calls; the bystander is served.
    let other = ConnectionHandler::connect(app.addr())
        .await
        .expect("connects");
    assert_eq!(other.call(add, &(2, 3)).await.unwrap(), 5);
    bystander.served_now(5).await;
    assert_eq!(app.server.handle().stats().refused.peer_connections, 5);

    // The slots come back when the address's connections close.
    drop(held);
    let handle = app.server.handle();
    eventually("the address's connections to close", PATIENCE, || {
        handle.connection_count() == 2
    })
    .await;
    let mut again = RawPeer::connect_from(&app, "127.0.0.2").await;
    again.hello().await.expect("room again");
    let served = bystander.finish().await;
    assert!(served.slowest < PROMPT, "{served:?}");
    other.close().await;
}

/// The review's case, scaled down: one address trying to take every slot of the server gets
/// its share, and the server still has room for everyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_take_every_slot_of_the_server() {
    let _alone = ALONE.lock().await;
    let app = start(
        AsyncServer::new(0)
            .max_connections(50)
            .max_connections_per_peer(Some(10)),
    )
    .await;
    let mut admitted = Vec::new();
    let mut refused = 0;
    for _ in 0..60 {
        let mut peer = RawPeer::connect_from(&app, "127.0.0.2").await;
        match peer.hello().await {
            Ok(_) => admitted.push(peer),
            Err(_) => refused += 1,
        }
    }
    assert_eq!((admitted.len(), refused), (10, 50));
    // Thirty others, from three other addresses, all get in.
    let others = ["127.0.0.1", "127.0.0.3", "127.0.0.4"];
    let conns = join_all((0..30).map(|i| client_from(&app, others[i % 3]))).await;
    for conn in &conns {
        let conn = conn.as_ref().expect("everyone else still gets in");
        assert_eq!(conn.call(add, &(1, 1)).await.unwrap(), 2);
    }
    for conn in conns.into_iter().flatten() {
        conn.close().await;
    }
}

/// Sockets that open and never say `Hello`: one address holds only a few handshake slots, the
/// server-wide handshake budget holds the rest of the flood back, and clients already connected
/// are served throughout. When the flood's sockets time out, new clients get in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_flood_from_many_addresses_cannot_starve_established_clients() {
    let _alone = ALONE.lock().await;
    let app = start(
        AsyncServer::new(0)
            .max_handshakes(20, Some(4))
            .handshake_timeout(Duration::from_secs(1)),
    )
    .await;
    let bystander = Bystander::connect(&app.addr()).await;
    let before = bystander.calls();

    let mut refusals = std::collections::HashMap::new();
    let mut silent = Vec::new();
    for ip in addresses(2, 21) {
        for _ in 0..10 {
            let mut socket = socket_from(&app, &ip).await;
            // A refused socket reads its refusal at once; an admitted one reads nothing.
            let mut buf = [0u8; 128];
            match tokio::time::timeout(Duration::from_millis(30), socket.read(&mut buf)).await {
                Ok(Ok(n)) if n > 4 => {
                    let reason = Envelope::decode(&buf[4..n]).ok().and_then(|e| match e {
                        Envelope::Refused {
                            reason: RefuseReason::ServerFull(capacity),
                            ..
                        } => Some(capacity),
                        _ => None,
                    });
                    *refusals.entry(reason).or_insert(0usize) += 1;
                }
                _ => silent.push(socket),
            }
        }
    }
    let per_address = refusals
        .get(&Some(Capacity::PeerHandshakes))
        .copied()
        .unwrap_or(0);
    let budget = refusals
        .get(&Some(Capacity::Handshakes))
        .copied()
        .unwrap_or(0);
    assert_eq!(silent.len(), 20, "the handshake budget: {refusals:?}");
    assert_eq!(per_address + budget, 180, "{refusals:?}");
    // The first four addresses hit their own cap (4 in, 6 refused each); the fifth fills the
    // budget, and from then on the budget refuses first.
    assert_eq!(per_address, 4 * 6, "{refusals:?}");
    bystander.served_now(10).await;

    // The flood's sockets are dropped at the handshake timeout; then newcomers get in.
    let started = Instant::now();
    let handle = app.server.handle();
    eventually("the silent sockets to be closed", PATIENCE, || {
        handle.stats().handshaking == 0
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let newcomer = ConnectionHandler::connect(app.addr())
        .await
        .expect("room again");
    assert_eq!(newcomer.call(add, &(4, 4)).await.unwrap(), 8);
    let served = bystander.finish().await;
    assert!(
        served.calls > before + 10 && served.slowest < PROMPT,
        "{served:?}"
    );
    newcomer.close().await;
}

/// A first frame over the handshake's small limit is refused before it is read: a peer cannot
/// make the server hold megabytes before saying who it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_first_frame_is_refused_unread() {
    let _alone = ALONE.lock().await;
    let app = start(AsyncServer::new(0)).await;
    let mut socket = socket_from(&app, "127.0.0.2").await;
    let started = Instant::now();
    socket
        .write_all(&(16u32 << 20).to_be_bytes())
        .await
        .expect("write");
    socket.write_all(&[0u8; 4096]).await.expect("write");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, socket.read_to_end(&mut reply)).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let body = reply.get(4..).expect("a refusal");
    match Envelope::decode(body).expect("decodes") {
        Envelope::Refused { reason, message } => {
            assert_eq!(reason, RefuseReason::Malformed);
            assert!(message.contains("1024"), "{message}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(wire::HANDSHAKE_MAX_FRAME, 1024);
}

/// Calls per session, when limited, go through the same limiter as logins: a session over its
/// rate gets `Throttled` (the call did not run), another session does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_its_call_rate_is_throttled_and_others_are_not() {
    let _alone = ALONE.lock().await;
    let app = start(AsyncServer::new(0).calls_per_session(Some(Rate::per_second(20)))).await;
    let greedy = ConnectionHandler::connect(app.addr())
        .await
        .expect("connects");
    let results = join_all((0..100).map(|i| {
        let conn = greedy.clone();
        async move { conn.call(add, &(i, 1)).await }
    }))
    .await;
    let answered = results.iter().filter(|r| r.is_ok()).count();
    let throttled = results
        .iter()
        .filter(|r| {
            matches!(r, Err(CallError::Remote { code: ErrorCode::Throttled, message })
                if message.contains("retry in"))
        })
        .count();
    assert!((20..=25).contains(&answered), "{answered} answered");
    assert_eq!(answered + throttled, 100);
    assert_eq!(
        app.server.handle().stats().calls_throttled as usize,
        throttled
    );
    // Another session is not held back by the first one's rate.
    let calm = ConnectionHandler::connect(app.addr())
        .await
        .expect("connects");
    assert_eq!(calm.call(add, &(1, 2)).await.unwrap(), 3);
    // And the first is served again once its bucket refills.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(greedy.call(add, &(1, 1)).await.unwrap(), 2);
    greedy.close().await;
    calm.close().await;
}
