//! Redis going away and coming back empty (a restart without persistence): nodes keep serving
//! their own clients throughout, then write again what they hold, so sessions resume on other
//! nodes and reverse requests cross nodes again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fluxon::ConnectionHandler;

use crate::common::*;
use crate::support::Bystander;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_empty_sessions_and_routing_are_whole_again() {
    let mut redis = Redis::start();
    let (a, b) = (node(&redis).await, node(&redis).await);
    let bystander = Bystander::connect(&addr(&b)).await;
    let traveller = ConnectionHandler::connect_any([addr(&a), addr(&b)])
        .await
        .expect("connects to A");
    traveller.call(login_as, &50).await.expect("login");
    traveller
        .call(join, &"room".to_owned())
        .await
        .expect("joined");
    let pings = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&pings);
    traveller.on("ping", move |_: u64| {
        counted.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    // Redis dies mid-traffic and comes back with nothing.
    redis.kill();
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Meanwhile: cross-node sends find nobody (B cannot reach the bus), and say so.
    assert!(!b.handle().reverse_request(50, "ping", &1u64).await);
    let asked: Result<u64, _> = b
        .handle()
        .reverse_call(50, "ping", &1u64, Duration::from_millis(300))
        .await;
    assert!(
        matches!(asked, Err(fluxon::ReverseError::ClusterUnreachable(_))),
        "{asked:?}"
    );
    redis.restart();
    assert_eq!(
        redis.keys(),
        Vec::<String>::new(),
        "the restarted Redis is empty"
    );
    // Routing is whole again: B reaches user 50 on A, by user and by group.
    assert!(
        eventually(|| async { b.handle().reverse_request(50, "ping", &2u64).await }).await,
        "B never reached user 50 on A again"
    );
    assert!(
        eventually(|| async {
            b.handle()
                .reverse_request_group("room", "news", &3u64)
                .await
                == 1
        })
        .await,
        "the room's member on A is out of reach"
    );
    let token = traveller.session_token().expect("a token");
    let record = record_of(&token);
    assert!(
        eventually(|| async { redis.command(&["EXISTS", &record]).as_deref() == Some(":1") }).await,
        "A never wrote its session again: {:?}",
        redis.keys()
    );
    // A wrote the session again: it resumes on B with its login when A goes.
    a.shutdown().await;
    assert!(
        eventually(|| async { traveller.connect_count() >= 2 && traveller.is_connected() }).await
    );
    assert!(
        traveller.session_resumed(),
        "the session was lost with Redis's data"
    );
    assert_eq!(traveller.call(whoami, &()).await.expect("whoami"), Some(50));
    let served = bystander.finish().await;
    assert!(served.calls > 10, "{served:?}");
    traveller.close().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_missed_an_end_while_cut_off_ends_the_session_when_back() {
    let redis = Redis::start();
    let a = node(&redis).await;
    let conn = client(&a).await;
    conn.call(login_as, &90).await.expect("login");
    let token = conn.session_token().expect("a token");
    let record = record_of(&token);
    // The login is written (a record with its user: a 2-byte bulk string, "90").
    assert!(
        eventually(|| async { redis.command(&["HGET", &record, "user"]).as_deref() == Some("$2") })
            .await
    );
    // The session ends elsewhere while A cannot hear it: its record goes, and A's connection to
    // Redis drops (Redis keeps its data) before any word of it could reach A.
    assert_eq!(redis.command(&["DEL", &record]).as_deref(), Some(":1"));
    for kind in ["normal", "pubsub"] {
        redis
            .command(&["CLIENT", "KILL", "TYPE", kind])
            .expect("client kill");
    }
    // Back, A sees the same data set (not a Redis that lost its data), catches up, and ends it.
    assert!(
        eventually(|| async { a.handle().user_sessions(90).is_empty() }).await,
        "A kept a session that ended while it was cut off"
    );
    assert!(
        eventually(|| async { conn.is_connected() && conn.connect_count() >= 2 }).await,
        "the client was not moved on"
    );
    assert!(!conn.session_resumed(), "the ended session resumed");
    assert_eq!(conn.call(whoami, &()).await.expect("whoami"), None);
    assert_eq!(
        redis.command(&["EXISTS", &record]).as_deref(),
        Some(":0"),
        "A wrote the ended session back"
    );
    conn.close().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_recover_after_redis_stalls_past_their_timeout() {
    let redis = Redis::start();
    let (a, b) = (node(&redis).await, node(&redis).await);
    let conn = client(&a).await;
    conn.call(login_as, &95).await.expect("login");
    conn.on("ping", |_: u64| async {});
    assert!(b.handle().reverse_request(95, "ping", &1u64).await);
    // Redis answers nobody for 2 s: four times the nodes' command timeout, so their commands and
    // their attempts to connect again time out.
    redis
        .command(&["CLIENT", "PAUSE", "2000", "ALL"])
        .expect("pause");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Whole again: B reaches user 95 on A, and B's heartbeat buries a dead node.
    assert!(
        eventually(|| async { b.handle().reverse_request(95, "ping", &2u64).await }).await,
        "routing never came back after the stall"
    );
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
        - 10_000;
    redis
        .command(&["ZADD", "test:nodes", &old.to_string(), "00000000000000bb"])
        .expect("zadd");
    assert!(
        eventually(|| async {
            redis
                .command(&["ZSCORE", "test:nodes", "00000000000000bb"])
                .as_deref()
                == Some("$-1")
        })
        .await,
        "the heartbeats never came back after the stall"
    );
    conn.close().await;
    a.shutdown().await;
    b.shutdown().await;
}
