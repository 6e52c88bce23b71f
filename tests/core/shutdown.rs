//! Graceful shutdown: calls in flight finish, then every client is told goodbye.

use std::time::Duration;

use fluxon::{AsyncServer, CallError, ClientConfig};

use crate::common::*;

#[tokio::test]
async fn shutdown_lets_calls_in_flight_finish() {
    let server = start(AsyncServer::new(0).shutdown_grace(Duration::from_secs(5))).await;
    let addr = server.local_addr();
    let mut config = ClientConfig::default();
    config.reconnect.enabled = false;
    let conn = fluxon::ConnectionHandler::connect_with(addr.to_string(), config)
        .await
        .unwrap();
    let in_flight: Vec<_> = (0..10u64)
        .map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move { conn.call(tagged, &(i, 300)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let handle = server.handle();
    let stopping = tokio::spawn(server.shutdown());
    for (i, call) in in_flight.into_iter().enumerate() {
        assert_eq!(
            call.await.unwrap().unwrap(),
            i as u64,
            "call {i} finished during shutdown"
        );
    }
    tokio::time::timeout(PATIENCE, stopping)
        .await
        .expect("shutdown completes")
        .unwrap();
    assert!(handle.is_shutting_down());
    assert_eq!(handle.connection_count(), 0);
    // Told goodbye, so the client knows it is closed; new calls fail fast.
    let err = conn.call(add, &(1, 1)).await.unwrap_err();
    assert!(
        matches!(err, CallError::Closed | CallError::Disconnected),
        "{err:?}"
    );
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn shutdown_grace_bounds_a_call_that_never_ends() {
    let server = start(AsyncServer::new(0).shutdown_grace(Duration::from_millis(200))).await;
    let conn = connect(&server).await;
    let stuck = tokio::spawn({
        let conn = conn.clone().call_timeout(Duration::from_secs(30));
        async move { conn.call(tagged, &(1, 60_000)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(PATIENCE, server.shutdown())
        .await
        .expect("shutdown is bounded");
    assert!(started.elapsed() < Duration::from_secs(3));
    let result = tokio::time::timeout(PATIENCE, stuck)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Err(CallError::Disconnected)), "{result:?}");
}
