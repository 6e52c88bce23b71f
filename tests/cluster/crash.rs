//! A node that dies without a goodbye (its process killed: here, its runtime dropped with every
//! task and socket): its clients reconnect to the others and resume, sends to its users report
//! Offline until they are back, and the others take it off the node list.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxon::ConnectionHandler;

use crate::common::*;
use crate::doomed::Doomed;

/// A node of the tests' cluster that can be killed outright.
fn doomed(redis: &Redis) -> Doomed {
    let server = fluxon::AsyncServer::new(0)
        .router(router())
        .cluster(cluster(redis));
    Doomed::start(server).expect("the doomed node starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_clients_resume_elsewhere_and_it_leaves_the_list() {
    let redis = Redis::start();
    let mut doomed = doomed(&redis);
    let b = node(&redis).await;
    let conn = ConnectionHandler::connect_any([doomed.addr.clone(), addr(&b)])
        .await
        .expect("connects to the doomed node");
    conn.call(login_as, &80).await.expect("login");
    let pings = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&pings);
    conn.on("ping", move |_: u64| {
        counted.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    assert!(b.handle().reverse_request(80, "ping", &1u64).await);
    assert_eq!(
        redis.command(&["ZCARD", "test:nodes"]).as_deref(),
        Some(":2")
    );
    let killed = Instant::now();
    doomed.kill();
    // The client is on B again, in its session, logged in; B reaches it.
    assert!(
        eventually(|| async { conn.connect_count() >= 2 && conn.is_connected() }).await,
        "the client never moved to B"
    );
    let moved = killed.elapsed();
    assert!(conn.session_resumed(), "the session died with its node");
    assert_eq!(conn.call(whoami, &()).await.expect("whoami"), Some(80));
    assert!(b.handle().reverse_request(80, "ping", &2u64).await);
    assert!(eventually(|| async { pings.load(Ordering::SeqCst) == 2 }).await);
    // B takes the dead node off the list within a few heartbeats (2 x 200 ms, plus a sweep).
    assert!(
        eventually(|| async { redis.command(&["ZCARD", "test:nodes"]).as_deref() == Some(":1") })
            .await,
        "the dead node is still listed"
    );
    let listed_until = killed.elapsed();
    assert!(listed_until < Duration::from_secs(3), "{listed_until:?}");
    eprintln!("killed node: client back after {moved:?}, node unlisted after {listed_until:?}");
    conn.close().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_to_a_killed_nodes_users_report_offline_at_once() {
    let redis = Redis::start();
    let mut doomed = doomed(&redis);
    let b = node(&redis).await;
    // A client that does not reconnect: its user stays offline after the node dies.
    let config = fluxon::ClientConfig::default()
        .reconnect(fluxon::client::Reconnect::default().enabled(false));
    let conn = ConnectionHandler::connect_with(doomed.addr.clone(), config)
        .await
        .expect("connects");
    conn.call(login_as, &81).await.expect("login");
    conn.on("ping", |_: u64| async {});
    assert!(b.handle().reverse_request(81, "ping", &1u64).await);
    doomed.kill();
    let started = Instant::now();
    assert!(!b.handle().reverse_request(81, "ping", &2u64).await);
    let asked: Result<(), _> = b
        .handle()
        .reverse_call(81, "ping", &3u64, Duration::from_secs(5))
        .await;
    assert!(
        matches!(asked, Err(fluxon::ReverseError::Offline)),
        "{asked:?}"
    );
    // Not after a timeout: the dead node is not one Redis delivers to, so nobody is waited for.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    conn.close().await;
    b.shutdown().await;
}
