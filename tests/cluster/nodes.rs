//! Joining and leaving: what a node needs to start, what it writes in Redis, and local calls
//! while Redis is away.

use std::time::{Duration, Instant};

use fluxon::{AsyncServer, Cluster, ClusterError, Router, ServerError};

use crate::common::*;
use crate::support::Bystander;

#[tokio::test]
async fn a_node_without_the_shared_private_key_refuses_to_start() {
    // No Redis needed: the key is checked first.
    let router = Router::new().mapping(fluxon::views![add]).expect("views");
    let refused = AsyncServer::new(0)
        .router(router)
        .cluster(Cluster::redis("redis://127.0.0.1:1/"))
        .start()
        .await;
    let err = refused.expect_err("a cluster node without a key must not start");
    assert!(matches!(err, ServerError::ClusterWithoutKey), "{err}");
    assert!(err.to_string().contains("private_key"), "{err}");
}

#[tokio::test]
async fn a_node_whose_redis_is_unreachable_fails_to_start_with_a_typed_error() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let started = Instant::now();
    let refused = AsyncServer::new(0)
        .router(router())
        .cluster(
            Cluster::redis(format!("redis://127.0.0.1:{port}/"))
                .timeout(Duration::from_millis(300)),
        )
        .start()
        .await;
    let err = refused.expect_err("no Redis, no cluster node");
    assert!(
        matches!(err, ServerError::Cluster(ClusterError::Unreachable(_))),
        "{err:?}"
    );
    assert!(started.elapsed() < PATIENCE, "failed, but slowly");
}

#[tokio::test]
async fn bad_cluster_settings_are_refused_by_name() {
    for (cluster, words) in [
        (Cluster::redis("redis://127.0.0.1:1/").prefix(""), "prefix"),
        (
            Cluster::redis("redis://127.0.0.1:1/").heartbeat(Duration::ZERO),
            "heartbeat",
        ),
        (Cluster::redis("not a url"), "not a url"),
    ] {
        let err = AsyncServer::new(0)
            .router(router())
            .cluster(cluster)
            .start()
            .await
            .expect_err("refused");
        assert!(
            matches!(err, ServerError::Cluster(ClusterError::Invalid(_))),
            "{err:?}"
        );
        assert!(err.to_string().contains(words), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_list_themselves_under_the_prefix_and_leave_at_shutdown() {
    let redis = Redis::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    assert_eq!(
        redis.command(&["ZCARD", "test:nodes"]).as_deref(),
        Some(":2")
    );
    let conn = client(&a).await;
    conn.call(login_as, &5).await.expect("login");
    // Everything the nodes wrote is under their prefix.
    let keys = redis.keys();
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|key| key.starts_with("test:")),
        "keys outside the prefix: {keys:?}"
    );
    b.shutdown().await;
    assert_eq!(
        redis.command(&["ZCARD", "test:nodes"]).as_deref(),
        Some(":1")
    );
    conn.close().await;
    a.shutdown().await;
    assert_eq!(
        redis.command(&["ZCARD", "test:nodes"]).as_deref(),
        Some(":0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_beating_is_taken_off_the_list_by_the_others() {
    let redis = Redis::start();
    let a = node(&redis).await;
    // A node that died without a word: its entry, with a heartbeat 10 s old.
    let old = fluxon_ms() - 10_000;
    redis
        .command(&["ZADD", "test:nodes", &old.to_string(), "00000000000000aa"])
        .expect("zadd");
    redis
        .command(&["SADD", "test:n:00000000000000aa:s", "ab"])
        .expect("sadd");
    assert!(
        eventually(|| async {
            redis
                .command(&["ZSCORE", "test:nodes", "00000000000000aa"])
                .as_deref()
                == Some("$-1")
                && redis
                    .command(&["EXISTS", "test:n:00000000000000aa:s"])
                    .as_deref()
                    == Some(":0")
        })
        .await,
        "the dead node is still listed"
    );
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_calls_go_on_while_redis_is_down_and_the_node_rejoins_after() {
    let mut redis = Redis::start();
    let a = node(&redis).await;
    let bystander = Bystander::connect(&addr(&a)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A new client can still connect and be served (its session is this node's alone).
    let late = client(&a).await;
    assert_eq!(late.call(add, &(2, 3)).await.expect("served"), 5);
    redis.restart();
    // Back: the node says it is alive again within a few heartbeats.
    assert!(
        eventually(|| async { redis.command(&["ZCARD", "test:nodes"]).as_deref() == Some(":1") })
            .await,
        "the node never rejoined"
    );
    let served = bystander.finish().await;
    assert!(served.calls > 10, "{served:?}");
    a.shutdown().await;
}

fn fluxon_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
