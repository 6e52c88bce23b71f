//! The PROXY protocol from a load balancer: per-address limits count the address the balancer
//! names, not the balancer's; a balancer's connection without a header, and a header from anyone
//! else, get nothing.

use fluxon::wire::{Capacity, RefuseReason};
use fluxon::AsyncServer;
use tokio::io::AsyncWriteExt;
use tokio_util::codec::Framed;

use crate::app::*;
use crate::ALONE;

/// The balancer's address (a loopback address of its own).
const BALANCER: &str = "127.0.0.9";

async fn app() -> App {
    start(
        AsyncServer::new(0)
            .proxy_protocol([BALANCER.parse().expect("an address")])
            .max_connections_per_peer(Some(2)),
    )
    .await
}

/// A connection from `from` that starts with `header`, then says Hello: the server's answer.
async fn hello_after(app: &App, from: &str, header: &[u8]) -> (RawPeer, Result<(), String>) {
    let mut stream = socket_from(app, from).await;
    stream.write_all(header).await.expect("header sent");
    let mut peer = RawPeer {
        framed: Framed::new(stream, fluxon::wire::codec(64 * 1024 * 1024)),
    };
    let answer = peer.hello().await.map(|_| ());
    (peer, answer)
}

fn v1(real: &str) -> Vec<u8> {
    format!("PROXY TCP4 {real} 127.0.0.1 50000 8080\r\n").into_bytes()
}

#[tokio::test]
async fn limits_count_the_address_the_balancer_names() {
    let _alone = ALONE.lock().await;
    let app = app().await;
    // Two connections of 203.0.113.1 through the balancer: its limit of two.
    let (_first, ok) = hello_after(&app, BALANCER, &v1("203.0.113.1")).await;
    ok.expect("the first connection of 203.0.113.1");
    let (_second, ok) = hello_after(&app, BALANCER, &v1("203.0.113.1")).await;
    ok.expect("the second connection of 203.0.113.1");
    let (_third, refused) = hello_after(&app, BALANCER, &v1("203.0.113.1")).await;
    let refused = refused.expect_err("a third connection of 203.0.113.1");
    let expected = format!("{:?}", RefuseReason::ServerFull(Capacity::PeerConnections));
    assert!(refused.contains(&expected), "{refused}");
    // Another client through the same balancer is another peer: served.
    let (mut other, ok) = hello_after(&app, BALANCER, &v1("203.0.113.2")).await;
    ok.expect("203.0.113.2 is not 203.0.113.1");
    let sum = other
        .call_raw(1, "add", &postcard::to_allocvec(&(2i64, 3i64)).unwrap())
        .await;
    assert_eq!(sum.expect("served"), postcard::to_allocvec(&5i64).unwrap());
    // Version 2, binary.
    let v2 = ppp_v2("198.51.100.7:40000");
    let (_v2, ok) = hello_after(&app, BALANCER, &v2).await;
    ok.expect("a version 2 header");
}

/// A version 2 PROXY header naming `real` as the source, by hand from the spec: the signature,
/// version 2 / PROXY, TCP over IPv4, 12 address bytes.
fn ppp_v2(real: &str) -> Vec<u8> {
    let real: std::net::SocketAddrV4 = real.parse().expect("an IPv4 address");
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&real.ip().octets());
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&real.port().to_be_bytes());
    header.extend_from_slice(&8080u16.to_be_bytes());
    header
}

#[tokio::test]
async fn a_balancer_without_a_header_and_a_header_from_elsewhere_get_nothing() {
    let _alone = ALONE.lock().await;
    let app = app().await;
    // From the balancer, straight to Hello: not a PROXY header, closed.
    let (_peer, answer) = hello_after(&app, BALANCER, b"").await;
    assert!(
        answer.is_err(),
        "the balancer's headerless connection was served"
    );
    // Garbage where the header goes.
    let (_peer, answer) = hello_after(&app, BALANCER, b"PROXY TCP4 nonsense\r\n").await;
    assert!(answer.is_err(), "a malformed header was taken");
    // From a client that is no balancer: its "header" is not read as one, so the Hello after
    // it is not the first frame and the handshake fails.
    let (_peer, answer) = hello_after(&app, "127.0.0.3", &v1("203.0.113.1")).await;
    assert!(
        answer.is_err(),
        "a PROXY header from a non-balancer was honoured"
    );
    // The well-behaved client is served throughout.
    let conn = client_from(&app, "127.0.0.1").await.expect("connects");
    assert_eq!(conn.call(add, &(1, 1)).await.expect("served"), 2);
}
