//! Reverse requests across nodes: to a user, a session, a group or everyone, each connection
//! once, wherever it is connected; awaited ones with the client's typed reply.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxon::{ConnectionHandler, ErrorCode, ReverseError, RunningServer};

use crate::common::*;

/// Three nodes of one cluster.
async fn three(redis: &Redis) -> [RunningServer; 3] {
    [node(redis).await, node(redis).await, node(redis).await]
}

/// Counts `name` deliveries to `conn`.
fn counting(conn: &ConnectionHandler, name: &'static str) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    conn.on(name, move |_: u64| {
        seen.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    count
}

async fn shutdown(nodes: [RunningServer; 3]) {
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_message_sent_on_one_node_reaches_its_recipient_on_another_in_order() {
    let redis = Redis::start();
    let nodes = three(&redis).await;
    let alice = client(&nodes[0]).await;
    let bob = client(&nodes[2]).await;
    alice.call(login_as, &1).await.expect("login");
    bob.call(login_as, &2).await.expect("login");
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&inbox);
    bob.on("receive_message", move |(from, text): (i64, String)| {
        kept.lock().expect("inbox").push((from, text));
        async {}
    });
    for i in 0..100 {
        let took = alice
            .call(send_message, &(2, format!("message {i}")))
            .await
            .expect("sent");
        assert!(took, "message {i} reached nobody");
    }
    assert!(
        eventually(|| async { inbox.lock().expect("inbox").len() == 100 }).await,
        "bob got {} of 100",
        inbox.lock().expect("inbox").len()
    );
    let got = inbox.lock().expect("inbox").clone();
    let expected: Vec<(i64, String)> = (0..100).map(|i| (1, format!("message {i}"))).collect();
    assert_eq!(got, expected, "out of order, doubled or from someone else");
    // A user online nowhere: nobody took it.
    assert!(!alice
        .call(send_message, &(99, "hello?".into()))
        .await
        .expect("sent"));
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_two_nodes_gets_one_delivery_on_each_and_others_none() {
    let redis = Redis::start();
    let nodes = three(&redis).await;
    let phone = client(&nodes[0]).await;
    let laptop = client(&nodes[1]).await;
    let other = client(&nodes[2]).await;
    for (conn, user) in [(&phone, 5), (&laptop, 5), (&other, 6)] {
        conn.call(login_as, &user).await.expect("login");
    }
    let counts = [&phone, &laptop, &other].map(|c| counting(c, "ping"));
    // Sent from the node where user 5 has no connection.
    assert!(nodes[2].handle().reverse_request(5, "ping", &1u64).await);
    assert!(
        eventually(|| async {
            counts[0].load(Ordering::SeqCst) == 1 && counts[1].load(Ordering::SeqCst) == 1
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        counts.each_ref().map(|c| c.load(Ordering::SeqCst)),
        [1, 1, 0]
    );
    // To one session, from a node that does not serve it.
    let laptop_session = nodes[1].handle().user_sessions(5)[0];
    assert!(
        nodes[0]
            .handle()
            .reverse_request_session(laptop_session, "ping", &2u64)
            .await
    );
    assert!(eventually(|| async { counts[1].load(Ordering::SeqCst) == 2 }).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        counts.each_ref().map(|c| c.load(Ordering::SeqCst)),
        [1, 2, 0]
    );
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_and_group_reach_1000_clients_over_three_nodes_once_each() {
    let redis = Redis::start();
    let nodes = three(&redis).await;
    let mut clients = Vec::new();
    for i in 0..1000 {
        clients.push(client(&nodes[i % 3]).await);
    }
    let counts: Vec<_> = clients.iter().map(|c| counting(c, "news")).collect();
    // Every third client joins "odd" or "even", on its own node.
    for (i, conn) in clients.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let group = if i % 2 == 0 { "even" } else { "odd" };
        conn.call(join, &group.to_owned()).await.expect("joined");
    }
    let took = nodes[1].handle().broadcast("news", &1u64).await;
    assert_eq!(took, 1000, "broadcast counted {took}");
    assert!(
        eventually(|| async { counts.iter().all(|c| c.load(Ordering::SeqCst) == 1) }).await,
        "not every client got the broadcast once"
    );
    // The groups' members are all on node 0 (i % 3 == 0); sent from node 2.
    let even = nodes[2]
        .handle()
        .reverse_request_group("even", "news", &2u64)
        .await;
    assert_eq!(even, 167, "the even group counted {even}");
    assert!(
        eventually(|| async {
            clients.iter().enumerate().all(|(i, _)| {
                let want = if i % 6 == 0 { 2 } else { 1 };
                counts[i].load(Ordering::SeqCst) == want
            })
        })
        .await,
        "the group's members did not get it exactly once, or others did"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let doubled = counts
        .iter()
        .filter(|c| c.load(Ordering::SeqCst) > 2)
        .count();
    assert_eq!(doubled, 0);
    for conn in &clients {
        conn.close().await;
    }
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_reverse_call_across_nodes_returns_the_clients_typed_reply_or_its_error() {
    let redis = Redis::start();
    let nodes = three(&redis).await;
    let asker = nodes[0].handle();
    let answering = client(&nodes[2]).await;
    answering.call(login_as, &9).await.expect("login");
    answering.on("double", |n: u64| async move { n * 2 });
    answering.on("slow", |n: u64| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        n
    });
    let wait = Duration::from_secs(5);
    let doubled: u64 = asker
        .reverse_call(9, "double", &21u64, wait)
        .await
        .expect("an answer from node 2's client");
    assert_eq!(doubled, 42);
    // The reply is typed on the asking node: a wrong type is BadReply there.
    let wrong: Result<String, _> = asker.reverse_call(9, "double", &1u64, wait).await;
    assert!(
        matches!(wrong, Err(ReverseError::BadReply { .. })),
        "{wrong:?}"
    );
    // No handler on the client: its error code comes back across.
    let unknown: Result<u64, _> = asker.reverse_call(9, "nothing", &1u64, wait).await;
    assert!(
        matches!(
            unknown,
            Err(ReverseError::Client {
                code: ErrorCode::NoHandler,
                ..
            })
        ),
        "{unknown:?}"
    );
    // Offline everywhere.
    let offline: Result<u64, _> = asker.reverse_call(1234, "double", &1u64, wait).await;
    assert!(matches!(offline, Err(ReverseError::Offline)), "{offline:?}");
    // Too slow.
    let slow: Result<u64, _> = asker
        .reverse_call(9, "slow", &1u64, Duration::from_millis(300))
        .await;
    assert!(matches!(slow, Err(ReverseError::Timeout(_))), "{slow:?}");
    shutdown(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_call_on_another_node_is_reported_disconnected() {
    let redis = Redis::start();
    let nodes = three(&redis).await;
    let answering = client(&nodes[1]).await;
    answering.call(login_as, &10).await.expect("login");
    let asked = Arc::new(tokio::sync::Notify::new());
    let told = Arc::clone(&asked);
    answering.on("hang", move |_: u64| {
        told.notify_one();
        async {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    });
    let asker = nodes[0].handle();
    let call = tokio::spawn(async move {
        asker
            .reverse_call::<_, ()>(10, "hang", &1u64, Duration::from_secs(10))
            .await
    });
    tokio::time::timeout(PATIENCE, asked.notified())
        .await
        .expect("the client was asked");
    nodes[1]
        .handle()
        .disconnect_session(nodes[1].handle().user_sessions(10)[0]);
    let result = tokio::time::timeout(PATIENCE, call)
        .await
        .expect("the call ended")
        .expect("no panic");
    assert!(
        matches!(result, Err(ReverseError::Disconnected)),
        "{result:?}"
    );
    answering.close().await;
    shutdown(nodes).await;
}
