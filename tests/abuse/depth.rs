//! Deeply nested values: a view taking a recursive type, sent a megabyte of nested openings, answers
//! `BadPayload` and the server lives; so does a reverse call whose client answers the same way.

use std::time::Duration;

use fluxon::wire::{Envelope, ErrorCode, MAX_DEPTH};
use fluxon::{AsyncServer, ReverseError};

use crate::app::*;
use crate::support::{Bystander, PATIENCE, PROMPT};
use crate::ALONE;

/// A megabyte of `Node(vec![Node(vec![...` openings that never close: variant 1, length 1.
fn nested_openings() -> Vec<u8> {
    std::iter::repeat_n([1u8, 1u8], 512 * 1024)
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_of_nesting_is_bad_payload_and_the_server_lives() {
    let _alone = ALONE.lock().await;
    let app = start(AsyncServer::new(0)).await;
    let bystander = Bystander::connect(&app.addr()).await;
    let mut peer = RawPeer::connect_from(&app, "127.0.0.2").await;
    peer.hello().await.expect("hello");

    let payload = nested_openings();
    for id in 1..=3 {
        let (code, message) = peer
            .call_raw(id, "count_leaves", &payload)
            .await
            .expect_err("refused");
        assert_eq!(code, ErrorCode::BadPayload);
        assert!(
            message.contains(&format!("nested deeper than {MAX_DEPTH} levels")),
            "{message}"
        );
    }
    // A tree within the limit is counted; the same connection and everyone else carry on.
    let fine = postcard::to_allocvec(&Tree::Node(vec![
        Tree::Leaf(1),
        Tree::Node(vec![Tree::Leaf(2), Tree::Leaf(3)]),
    ]))
    .unwrap();
    let leaves = peer
        .call_raw(4, "count_leaves", &fine)
        .await
        .expect("counted");
    assert_eq!(postcard::from_bytes::<u64>(&leaves).unwrap(), 3);
    bystander.served_now(5).await;
    let served = bystander.finish().await;
    assert!(served.slowest < PROMPT, "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reverse_reply_nested_a_megabyte_deep_is_a_bad_reply() {
    let _alone = ALONE.lock().await;
    let app = start(AsyncServer::new(0)).await;
    let mut peer = RawPeer::connect_from(&app, "127.0.0.2").await;
    peer.hello().await.expect("hello");
    // Log the raw peer in as jack, so the server can call it.
    let form = postcard::to_allocvec(&("jack", JACK_PASSWORD)).unwrap();
    let id = peer.call_raw(1, "login", &form).await.expect("logged in");
    let user: i64 = postcard::from_bytes(&id).unwrap();

    let handle = app.server.handle();
    let asked = tokio::spawn(async move {
        handle
            .reverse_call::<_, Tree>(user, "tree", &(), Duration::from_secs(10))
            .await
    });
    let request_id = loop {
        let frame = peer.next().await.expect("the reverse request");
        if let Ok(Envelope::ReverseRequest { id, name, .. }) = Envelope::decode(&frame) {
            assert_eq!(name, "tree");
            break id;
        }
    };
    let payload = nested_openings();
    peer.send(Envelope::ReverseReply {
        id: request_id,
        result: Ok(&payload),
    })
    .await;
    let answer = tokio::time::timeout(PATIENCE, asked)
        .await
        .expect("answered")
        .expect("no panic");
    match answer {
        Err(ReverseError::BadReply { reason, .. }) => {
            assert!(reason.contains("nested deeper"), "{reason}")
        }
        other => panic!("expected BadReply, got {other:?}"),
    }
    // The peer is still served.
    let sum = postcard::to_allocvec(&(20i64, 22i64)).unwrap();
    let got = peer.call_raw(2, "add", &sum).await.expect("served");
    assert_eq!(postcard::from_bytes::<i64>(&got).unwrap(), 42);
}
