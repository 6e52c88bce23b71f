//! Calls: round trips, concurrency, and every kind of failed call.

use std::time::{Duration, Instant};

use fluxon::{AsyncServer, CallError, ErrorCode};
use futures_util::future::join_all;

use crate::common::*;

#[tokio::test]
async fn round_trip_typed_and_by_name() {
    let server = start_default().await;
    let conn = connect(&server).await;
    assert_eq!(
        conn.call(echo, &"héllo ✓".to_owned()).await.unwrap(),
        "héllo ✓"
    );
    assert_eq!(conn.call(add, &(40, 2)).await.unwrap(), 42);
    let by_name: i64 = conn.send_request("add", &(1i64, 2i64)).await.unwrap();
    assert_eq!(by_name, 3);
    assert_eq!(
        conn.call(whoami, &()).await.unwrap(),
        None,
        "a view without payload"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn thousand_concurrent_calls_on_one_connection_each_get_their_own_reply() {
    let server = start_default().await;
    let conn = connect(&server).await;
    // Different delays so replies come back out of order.
    let calls = (0..1000u64).map(|i| {
        let conn = conn.clone();
        async move { (i, conn.call(tagged, &(i, (i * 7919) % 20)).await) }
    });
    let results = tokio::time::timeout(PATIENCE, join_all(calls))
        .await
        .expect("all answered");
    assert_eq!(results.len(), 1000);
    for (sent, reply) in results {
        assert_eq!(reply.unwrap(), sent, "reply matched to its call");
    }
    assert_eq!(server.handle().connection_count(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn slow_view_does_not_block_a_fast_one_on_the_same_connection() {
    let server = start_default().await;
    let conn = connect(&server).await;
    let slow = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call(tagged, &(1, 1500)).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    assert_eq!(conn.call(tagged, &(2, 0)).await.unwrap(), 2);
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the fast call waited for the slow one"
    );
    assert!(!slow.is_finished());
    assert_eq!(slow.await.unwrap().unwrap(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn hundred_clients_at_once() {
    let server = start(one_address_for_all(AsyncServer::new(0))).await;
    let clients = (0..100i64).map(|i| {
        let addr = server.local_addr().to_string();
        async move {
            let conn = fluxon::ConnectionHandler::connect(addr).await.unwrap();
            conn.call(login_as, &i).await.unwrap();
            let got = conn.call(add, &(i, 1000)).await.unwrap();
            (i, got, conn.call(whoami, &()).await.unwrap(), conn)
        }
    });
    let results = tokio::time::timeout(PATIENCE, join_all(clients))
        .await
        .unwrap();
    for (i, sum, who, _) in &results {
        assert_eq!(*sum, i + 1000);
        assert_eq!(*who, Some(*i), "each client sees its own login");
    }
    assert_eq!(server.handle().connection_count(), 100);
    assert_eq!(server.handle().session_count(), 100);
    server.shutdown().await;
}

#[tokio::test]
async fn byte_strings_go_both_ways_as_the_protocol_writes_them() {
    let server = start_default().await;
    let conn = connect(&server).await;
    for len in [0usize, 1, 127, 128, 5000, 70_000] {
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut back = data.clone();
        back.reverse();
        assert_eq!(conn.call(reversed, &data).await.unwrap(), back, "{len}");
        // By name, with the payload as a borrowed slice (serde's sequence of bytes).
        let by_name: Vec<u8> = conn.send_request("reversed", &data[..]).await.unwrap();
        assert_eq!(by_name, back, "{len}");
    }
    // As a client written from the protocol docs sends it: a varint length, then the bytes.
    let reply = conn.call_raw("reversed", &[3, 1, 2, 3]).await.unwrap();
    assert_eq!(&reply[..], &[3, 3, 2, 1]);
    for bad in [&[5u8, 1, 2][..], &[2, 1, 2, 9], &[], &[0x80]] {
        let err = conn.call_raw("reversed", bad).await.unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::BadPayload), "{bad:?}: {err}");
    }
    assert_eq!(conn.call(reversed, &vec![1, 2]).await.unwrap(), vec![2, 1]);
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_view_is_a_typed_error_and_the_connection_lives_on() {
    let server = start_default().await;
    let conn = connect(&server).await;
    let err = conn
        .send_request::<_, ()>("no_such_view", &())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::UnknownView), "{err}");
    assert!(err.to_string().contains("no_such_view"));
    assert_eq!(conn.call(add, &(1, 1)).await.unwrap(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn undecodable_payload_is_a_typed_error() {
    let server = start_default().await;
    let conn = connect(&server).await;
    // `add` takes two i64; one byte is not that.
    let err = conn.send_request::<_, i64>("add", &true).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadPayload), "{err}");
    let err = conn.call_raw("add", &[0xff; 3]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadPayload), "{err}");
    // Two good i64 and then more bytes: trailing bytes are refused, not ignored.
    let err = conn
        .send_request::<_, i64>("add", &(1i64, 2i64, 3i64))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::BadPayload), "{err}");
    assert_eq!(conn.call(add, &(2, 2)).await.unwrap(), 4);
    server.shutdown().await;
}

#[tokio::test]
async fn view_error_reaches_the_client_with_its_message() {
    let server = start_default().await;
    let conn = connect(&server).await;
    match conn.call(fail, &"no such course".to_owned()).await {
        Err(CallError::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::ViewFailed);
            assert_eq!(message, "no such course");
        }
        other => panic!("expected a view error, got {other:?}"),
    }
    let err = conn.call(add, &(i64::MAX, 1)).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::ViewFailed));
    assert!(err.to_string().contains("overflows"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn internal_error_reaches_the_client_as_an_incident_not_its_text() {
    let server = start_default().await;
    let conn = connect(&server).await;
    match conn.call(read_secret, &"keys.txt".to_owned()).await {
        Err(CallError::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::Internal);
            assert!(message.contains("incident "), "{message}");
            assert!(message.contains("read_secret"), "{message}");
            // The I/O error names the path; the client must not learn it.
            assert!(!message.contains("nonexistent"), "{message}");
            assert!(!message.contains("keys.txt"), "{message}");
        }
        other => panic!("expected an internal error, got {other:?}"),
    }
    assert_eq!(conn.call(add, &(1, 2)).await.unwrap(), 3, "still served");
    server.shutdown().await;
}

#[tokio::test]
async fn a_views_own_error_type_reaches_the_client_typed() {
    let server = start_default().await;
    let conn = connect(&server).await;
    assert_eq!(conn.call(book, &3).await.unwrap(), 3);
    match conn.call(book, &7).await {
        Err(CallError::View(SeatError::Taken { by })) => assert_eq!(by, "ada"),
        other => panic!("expected the view's own error, got {other:?}"),
    }
    let err = conn.call(book, &12).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Rejected));
    assert_eq!(err.view_error(), Some(&SeatError::NoSuchSeat(12)));
    // By name, the error comes as its bytes, which decode as the view's type.
    let raw = conn
        .call_raw("book", &postcard::to_allocvec(&7u32).unwrap())
        .await
        .unwrap_err();
    match raw.decode_view::<SeatError>() {
        CallError::View(SeatError::Taken { by }) => assert_eq!(by, "ada"),
        other => panic!("expected the view's own error, got {other:?}"),
    }
    // Bytes that are not the type the caller expects are a decode error, not a wrong value.
    let raw = conn
        .call_raw("book", &postcard::to_allocvec(&12u32).unwrap())
        .await
        .unwrap_err();
    match raw.decode_view::<(String, String, String)>() {
        CallError::Decode { expected, .. } => assert!(expected.contains("String"), "{expected}"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_view_mixes_its_own_error_type_with_messages_and_internal_errors() {
    let server = start_default().await;
    let conn = connect(&server).await;
    assert_eq!(conn.call(book_checked, &3).await.unwrap(), 3);
    match conn.call(book_checked, &7).await {
        Err(CallError::View(SeatError::Taken { by })) => assert_eq!(by, "ada"),
        other => panic!("expected the view's own error, got {other:?}"),
    }
    match conn.call(book_checked, &0).await {
        Err(CallError::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::ViewFailed);
            assert_eq!(message, "seat 0 is the stage");
        }
        other => panic!("expected the view's message, got {other:?}"),
    }
    match conn.call(book_checked, &12).await {
        Err(CallError::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::Internal);
            assert!(message.contains("incident "), "{message}");
            assert!(!message.contains("nonexistent"), "{message}");
        }
        other => panic!("expected an internal error, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test]
async fn view_panic_is_a_typed_error_and_everyone_carries_on() {
    let server = start_default().await;
    let conn = connect(&server).await;
    let other = connect(&server).await;
    let err = conn.call(boom, &()).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::Panicked), "{err}");
    // The client learns an incident id, never the panic's own text (see logging.rs for the log).
    let text = err.to_string();
    assert!(!text.contains("boom goes the view"), "{text}");
    assert!(text.contains("incident "), "{text}");
    assert_eq!(
        conn.call(add, &(1, 2)).await.unwrap(),
        3,
        "same connection still served"
    );
    assert_eq!(
        other.call(add, &(3, 4)).await.unwrap(),
        7,
        "other client still served"
    );
    assert_eq!(server.handle().connection_count(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn plain_fn_view_runs_off_the_runtime_workers() {
    let server = start_default().await;
    let conn = connect(&server).await;
    assert_eq!(conn.call(off_runtime, &21).await.unwrap(), 42);
    server.shutdown().await;
}

#[tokio::test]
async fn call_timeout_fails_only_that_call() {
    let server = start_default().await;
    let conn = connect(&server).await;
    let quick = conn.clone().call_timeout(Duration::from_millis(100));
    match quick.call(tagged, &(1, 2000)).await {
        Err(CallError::Timeout(limit)) => assert_eq!(limit, Duration::from_millis(100)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(conn.call(add, &(5, 5)).await.unwrap(), 10);
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_call_and_reply_are_refused_without_closing_anything() {
    let server = start(AsyncServer::new(0).max_frame(4096)).await;
    let conn = connect(&server).await;
    let err = conn.call(echo, &"x".repeat(10_000)).await.unwrap_err();
    assert!(
        matches!(err, CallError::TooLarge { max: 4096, .. }),
        "{err:?}"
    );
    let err = conn.call(big_reply, &10_000).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TooLarge), "{err}");
    assert_eq!(conn.call(big_reply, &100).await.unwrap().len(), 100);
    assert_eq!(conn.connect_count(), 1, "the connection was never dropped");
    server.shutdown().await;
}

#[tokio::test]
async fn duplicate_view_names_are_refused_when_the_router_is_built() {
    let err = fluxon::Router::new()
        .mapping(fluxon::views![echo, add])
        .and_then(|r| r.mapping(fluxon::views![echo]))
        .unwrap_err();
    assert!(err.to_string().contains("`echo`"), "{err}");
}

#[tokio::test]
async fn secure_without_a_certificate_is_a_clear_error_not_clear_text() {
    let err = AsyncServer::new(0)
        .secure(true)
        .router(router())
        .start()
        .await
        .unwrap_err();
    assert!(matches!(err, fluxon::ServerError::NoTlsIdentity), "{err}");
    assert!(err.to_string().contains("TlsIdentity"), "{err}");
}

#[tokio::test]
async fn client_frame_limit_is_honoured_by_the_server() {
    let server = start_default().await;
    let config = fluxon::ClientConfig::default().max_frame(4096);
    let addr = server.local_addr().to_string();
    let conn = fluxon::ConnectionHandler::connect_with(addr.clone(), config)
        .await
        .unwrap();
    let err = conn.call(big_reply, &10_000).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::TooLarge), "{err}");
    let err = conn.call(echo, &"y".repeat(10_000)).await.unwrap_err();
    assert!(
        matches!(err, CallError::TooLarge { max: 4096, .. }),
        "{err:?}"
    );
    assert_eq!(conn.call(big_reply, &1000).await.unwrap().len(), 1000);
    assert_eq!(conn.connect_count(), 1);

    let tiny = fluxon::ClientConfig::default().max_frame(10);
    let err = fluxon::ConnectionHandler::connect_with(addr, tiny)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("below the minimum"), "{err}");
    server.shutdown().await;
}

/// Counts views running at once.
#[derive(Default)]
struct Gauge {
    now: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
}

#[fluxon::view]
async fn gauged(req: fluxon::Request, ms: u64) -> usize {
    use std::sync::atomic::Ordering::SeqCst;
    let gauge = req.state::<Gauge>().expect("gauge state");
    let running = gauge.now.fetch_add(1, SeqCst) + 1;
    gauge.peak.fetch_max(running, SeqCst);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    gauge.now.fetch_sub(1, SeqCst);
    running
}

#[tokio::test]
async fn calls_past_the_in_flight_limit_wait_their_turn() {
    let router = fluxon::Router::new()
        .state(Gauge::default())
        .mapping(fluxon::views![gauged])
        .unwrap();
    let server = AsyncServer::new(0)
        .max_in_flight(3)
        .router(router)
        .start()
        .await
        .unwrap();
    let conn = connect(&server).await;
    let calls = (0..30).map(|_| conn.call(gauged, &20));
    let results = tokio::time::timeout(PATIENCE, join_all(calls))
        .await
        .unwrap();
    assert!(
        results.iter().all(|r| matches!(r, Ok(n) if *n <= 3)),
        "{results:?}"
    );
    // A second connection has its own allowance.
    let other = connect(&server).await;
    let (a, b) = tokio::join!(
        join_all((0..3).map(|_| conn.call(gauged, &100))),
        join_all((0..3).map(|_| other.call(gauged, &100)))
    );
    assert!(a.iter().chain(&b).all(Result::is_ok));
    let peak = a.iter().chain(&b).filter_map(|r| r.as_ref().ok()).max();
    assert!(
        peak.is_some_and(|p| *p > 3),
        "both connections ran at once: {a:?} {b:?}"
    );
    server.shutdown().await;
}

#[fluxon::view]
async fn slow_query(req: fluxon::Request, ms: u64) -> Result<i64, fluxon::ViewError> {
    let db = req.db()?;
    let answer = db.read(move |conn| {
        std::thread::sleep(Duration::from_millis(ms));
        Ok(conn.query_row("SELECT 40 + 2", [], |row| row.get::<_, i64>(0))?)
    });
    Ok(answer.await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_query_in_a_view_does_not_hold_up_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let db = fluxon::db::AsyncDatabase::open(dir.path().join("slow.sqlite3")).unwrap();
    let router = fluxon::Router::new()
        .state(db)
        .mapping(fluxon::views![slow_query, echo])
        .unwrap();
    let server = AsyncServer::new(0).router(router).start().await.unwrap();
    let conn = connect(&server).await;
    let started = Instant::now();
    let slow = tokio::spawn({
        let conn = conn.clone();
        async move { conn.call(slow_query, &800).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The same connection is answered while the query sleeps on its thread.
    let quick = tokio::time::timeout(PATIENCE, conn.call(echo, &"meanwhile".to_owned()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(quick, "meanwhile");
    assert!(
        !slow.is_finished(),
        "the quick call was answered after the slow one"
    );
    assert!(started.elapsed() < Duration::from_millis(800));
    assert_eq!(
        tokio::time::timeout(PATIENCE, slow)
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        42
    );
    server.shutdown().await;
}

/// A timeout of `Duration::MAX` means "never": the server's idle check, the client's keepalive
/// and a call's deadline all take it without overflowing, and calls go on working.
#[tokio::test]
async fn timeouts_of_duration_max_mean_never() {
    let server = start(AsyncServer::new(0).idle_timeout(Duration::MAX)).await;
    let config = fluxon::ClientConfig::default()
        .keepalive(Duration::MAX)
        .call_timeout(Duration::MAX);
    let conn = fluxon::ConnectionHandler::connect_with(server.local_addr().to_string(), config)
        .await
        .expect("connects");
    for i in 0..3i64 {
        let reply = tokio::time::timeout(PATIENCE, conn.call(add, &(i, 1)))
            .await
            .expect("answered");
        assert_eq!(reply.unwrap(), i + 1);
    }
    let forever = conn.clone().call_timeout(Duration::MAX);
    assert_eq!(forever.call(echo, &"x".to_owned()).await.unwrap(), "x");
    assert_eq!(server.handle().connection_count(), 1);
    server.shutdown().await;
}
