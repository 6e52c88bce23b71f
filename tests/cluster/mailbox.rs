//! The mailbox across nodes: kept in the database every node shares (a PostgreSQL database on
//! the test binary's own server), delivered on the user's next login on whichever node, in
//! order, once; never by two nodes at once; none lost when Redis restarts empty.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxon::db::AsyncDatabase;
use fluxon::{ConnectionHandler, RunningServer};

use crate::common::*;

/// A node whose mailbox is in the database at `place` (shared by the test's nodes).
async fn mailbox_node(redis: &Redis, place: &str) -> RunningServer {
    let db = AsyncDatabase::open(place).expect("database");
    node_with(redis, |server| server.mailbox(db)).await
}

/// Records the `inbox` messages `conn` takes (acknowledging each).
fn inbox(conn: &ConnectionHandler) -> Arc<Mutex<Vec<u32>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&got);
    conn.on("inbox", move |n: u32| {
        kept.lock().expect("inbox").push(n);
        async {}
    });
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_on_one_node_delivered_in_order_once_on_login_at_another() {
    let redis = Redis::start();
    let place = crate::postgres::fresh_database();
    let a = mailbox_node(&redis, &place).await;
    let b = mailbox_node(&redis, &place).await;
    for n in 0..20u32 {
        let now = a
            .handle()
            .reverse_request_or_keep(60, "inbox", &n)
            .await
            .expect("kept");
        assert!(!now, "user 60 is online nowhere: kept, not delivered");
    }
    assert_eq!(b.handle().kept_for(60).await.expect("count"), 20);
    // User 60 logs in on B: B delivers, in order, each once.
    let conn = client(&b).await;
    let got = inbox(&conn);
    conn.call(login_as, &60).await.expect("login");
    assert!(
        eventually(|| async { got.lock().expect("inbox").len() >= 20 }).await,
        "delivered {:?}",
        got.lock().expect("inbox")
    );
    assert!(eventually(|| async { a.handle().kept_for(60).await.is_ok_and(|n| n == 0) }).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*got.lock().expect("inbox"), (0..20).collect::<Vec<_>>());
    // Online on B: a message from A goes straight there, not to the mailbox.
    assert!(a
        .handle()
        .reverse_request_or_keep(60, "inbox", &99u32)
        .await
        .expect("sent"));
    assert!(eventually(|| async { got.lock().expect("inbox").last() == Some(&99) }).await);
    assert_eq!(a.handle().kept_for(60).await.expect("count"), 0);
    conn.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_on_two_nodes_at_once_never_get_a_message_twice() {
    let redis = Redis::start();
    let place = crate::postgres::fresh_database();
    let a = mailbox_node(&redis, &place).await;
    let b = mailbox_node(&redis, &place).await;
    for n in 0..30u32 {
        a.handle()
            .reverse_request_or_keep(61, "inbox", &n)
            .await
            .expect("kept");
    }
    let (on_a, on_b) = (client(&a).await, client(&b).await);
    let (got_a, got_b) = (inbox(&on_a), inbox(&on_b));
    let (x, y) = tokio::join!(on_a.call(login_as, &61), on_b.call(login_as, &61));
    x.expect("login on A");
    y.expect("login on B");
    assert!(
        eventually(|| async { a.handle().kept_for(61).await.is_ok_and(|n| n == 0) }).await,
        "not all delivered"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ga, gb) = (
        got_a.lock().expect("inbox").clone(),
        got_b.lock().expect("inbox").clone(),
    );
    let mut all: Vec<u32> = ga.iter().chain(&gb).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..30).collect::<Vec<_>>(),
        "A got {ga:?}, B got {gb:?}"
    );
    // Each side got its share in order.
    for side in [&ga, &gb] {
        assert!(
            side.windows(2).all(|w| w[0] < w[1]),
            "out of order: {side:?}"
        );
    }
    on_a.close().await;
    on_b.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_kept_before_redis_restarts_empty_are_delivered_after() {
    let mut redis = Redis::start();
    let place = crate::postgres::fresh_database();
    let a = mailbox_node(&redis, &place).await;
    let b = mailbox_node(&redis, &place).await;
    for n in 0..5u32 {
        assert!(!a
            .handle()
            .reverse_request_or_keep(62, "inbox", &n)
            .await
            .expect("kept"));
    }
    redis.kill();
    redis.restart();
    // The nodes are back on the (empty) Redis; the mailbox never was in it.
    assert!(
        eventually(|| async { redis.command(&["ZCARD", "test:nodes"]).as_deref() == Some(":2") })
            .await
    );
    let conn = client(&b).await;
    let got = inbox(&conn);
    conn.call(login_as, &62).await.expect("login");
    assert!(
        eventually(|| async { got.lock().expect("inbox").len() >= 5 }).await,
        "delivered {:?}",
        got.lock().expect("inbox")
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*got.lock().expect("inbox"), (0..5).collect::<Vec<_>>());
    conn.close().await;
    a.shutdown().await;
    b.shutdown().await;
}
