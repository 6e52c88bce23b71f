//! Peers that break the protocol: each is turned away cleanly while others keep being served.

use std::time::{Duration, Instant};

use bytes::Bytes;
use fluxon::wire::{self, Capacity, Envelope, RefuseReason};
use fluxon::{AsyncServer, ClientConfig, ConnectError};
use futures_util::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;

#[tokio::test]
async fn frame_over_the_limit_closes_that_connection_only() {
    let server = start(AsyncServer::new(0).max_frame(1024)).await;
    let good = connect(&server).await;
    let mut bad = RawPeer::connect(&server).await;
    bad.hello(None).await;
    // A frame header declaring 1 MiB, then a little of it.
    let stream = bad.framed.get_mut();
    stream.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
    stream.write_all(&[0u8; 512]).await.unwrap();
    let said = bad.read_to_close().await;
    let said = said.expect("the server said why it closed");
    assert!(said.contains("goodbye") && said.contains("frame"), "{said}");
    // Meanwhile and afterwards, the well-behaved client is served.
    assert_eq!(good.call(add, &(1, 1)).await.unwrap(), 2);
    assert_eq!(good.connect_count(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn declared_length_of_four_gib_is_refused_without_allocating_it() {
    let server = start_default().await;
    let good = connect(&server).await;
    let mut bad = RawPeer::connect(&server).await;
    bad.framed
        .get_mut()
        .write_all(&u32::MAX.to_be_bytes())
        .await
        .unwrap();
    let said = bad.read_to_close().await.expect("refused with a reason");
    assert!(said.contains("refused (malformed handshake)"), "{said}");
    assert_eq!(good.call(add, &(2, 2)).await.unwrap(), 4);
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_before_the_handshake_is_refused() {
    let server = start_default().await;
    let good = connect(&server).await;
    // An HTTP request: its first four bytes read as a 1.2 GB length.
    let mut http = RawPeer::connect(&server).await;
    http.framed
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let said = http.read_to_close().await.expect("refused");
    assert!(said.contains("malformed"), "{said}");
    // A well-formed frame whose body is noise.
    let mut noise = RawPeer::connect(&server).await;
    let stream = noise.framed.get_mut();
    stream
        .write_all(&[0, 0, 0, 6, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x11])
        .await
        .unwrap();
    let said = noise.read_to_close().await.expect("refused");
    assert!(said.contains("malformed"), "{said}");
    // A valid envelope that is not Hello.
    let mut early = RawPeer::connect(&server).await;
    early
        .send(Envelope::Call {
            id: 1,
            view: "add",
            payload: &[],
        })
        .await;
    let said = early.read_to_close().await.expect("refused");
    assert!(said.contains("must be Hello"), "{said}");
    assert_eq!(good.call(add, &(3, 3)).await.unwrap(), 6);
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_protocol_version_and_bad_magic_are_refused_with_the_reason() {
    let server = start_default().await;
    for (magic, version, expected) in [
        (wire::MAGIC, 99u16, RefuseReason::UnsupportedVersion),
        // A client of the first protocol (before session tokens rotated) is told so.
        (wire::MAGIC, 1u16, RefuseReason::UnsupportedVersion),
        (*b"HTTP", wire::PROTOCOL_VERSION, RefuseReason::BadMagic),
    ] {
        let mut peer = RawPeer::connect(&server).await;
        peer.send(Envelope::Hello {
            magic,
            version,
            resume: None,
            max_frame: 1024,
        })
        .await;
        let frame = peer.next().await.expect("an answer");
        match Envelope::decode(&frame).unwrap() {
            Envelope::Refused { reason, message } => {
                assert_eq!(reason, expected);
                if expected == RefuseReason::UnsupportedVersion {
                    assert!(
                        message.contains(&format!("the client {version}"))
                            && message.contains(&wire::PROTOCOL_VERSION.to_string()),
                        "{message}"
                    );
                }
            }
            other => panic!("expected Refused, got {other:?}"),
        }
        assert!(peer.next().await.is_none(), "closed after refusing");
    }
    // A client that would accept no reply at all.
    let mut peer = RawPeer::connect(&server).await;
    peer.send(Envelope::Hello {
        magic: wire::MAGIC,
        version: wire::PROTOCOL_VERSION,
        resume: None,
        max_frame: 10,
    })
    .await;
    let said = peer.read_to_close().await.expect("refused");
    assert!(
        said.contains("malformed") && said.contains("below the minimum"),
        "{said}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn silent_connection_is_dropped_after_the_handshake_timeout() {
    let server = start(AsyncServer::new(0).handshake_timeout(Duration::from_millis(200))).await;
    let mut silent = TcpStream::connect(server.local_addr()).await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(PATIENCE, silent.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a word");
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(connect(&server).await.call(add, &(1, 2)).await.unwrap(), 3);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_limit_are_refused_cleanly() {
    let server = start(AsyncServer::new(0).max_connections(2)).await;
    let first = connect(&server).await;
    let second = connect(&server).await;
    let err = fluxon::ConnectionHandler::connect(server.local_addr().to_string())
        .await
        .unwrap_err();
    match err {
        ConnectError::Refused { reason, .. } => {
            assert_eq!(reason, RefuseReason::ServerFull(Capacity::Connections))
        }
        other => panic!("expected ServerFull, got {other}"),
    }
    assert_eq!(first.call(add, &(1, 1)).await.unwrap(), 2);
    assert_eq!(second.call(add, &(2, 1)).await.unwrap(), 3);
    // A freed slot is usable again.
    first.close().await;
    let deadline = Instant::now() + PATIENCE;
    let third = loop {
        match fluxon::ConnectionHandler::connect(server.local_addr().to_string()).await {
            Ok(conn) => break conn,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(err) => panic!("slot never freed: {err}"),
        }
    };
    assert_eq!(third.call(add, &(3, 1)).await.unwrap(), 4);
    server.shutdown().await;
}

#[tokio::test]
async fn peer_that_never_answers_pings_is_closed_but_a_real_idle_client_stays() {
    let server = start(AsyncServer::new(0).idle_timeout(Duration::from_millis(300))).await;
    let idle_client = connect(&server).await;
    let mut mute = RawPeer::connect(&server).await;
    mute.hello(None).await;
    let mut pinged = false;
    let mut goodbye = None;
    while let Some(frame) = mute.next().await {
        match Envelope::decode(&frame).unwrap() {
            Envelope::Ping { .. } => pinged = true,
            Envelope::Goodbye { reason } => goodbye = Some(reason.to_owned()),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pinged, "the server pinged before giving up");
    assert_eq!(goodbye.as_deref(), Some("idle timeout"));
    // The real client answered its pings through the same period and was never dropped.
    assert!(idle_client.is_connected());
    assert_eq!(idle_client.call(add, &(1, 1)).await.unwrap(), 2);
    assert_eq!(idle_client.connect_count(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn unexpected_messages_after_the_handshake_close_only_that_peer() {
    let server = start_default().await;
    let good = connect(&server).await;
    let mut odd = RawPeer::connect(&server).await;
    odd.hello(None).await;
    // A reverse reply nobody asked for is ignored; the connection stays usable.
    odd.send(Envelope::ReverseReply {
        id: 77,
        result: Ok(b""),
    })
    .await;
    assert!(odd.call(1, "add", &(1i64, 1i64)).await.is_ok());
    // A second Hello is a protocol violation.
    odd.send(Envelope::Hello {
        magic: wire::MAGIC,
        version: 1,
        resume: None,
        max_frame: 1024,
    })
    .await;
    let said = odd.read_to_close().await.expect("goodbye");
    assert!(said.contains("unexpected"), "{said}");
    assert_eq!(good.call(add, &(1, 2)).await.unwrap(), 3);
    server.shutdown().await;
}

/// A server that completes the handshake and then says nothing, ever: the client pings it, gives
/// up on it after twice its keepalive, and reconnects presenting the token it was given.
#[tokio::test]
async fn client_drops_a_server_that_stops_answering_and_resumes_elsewhere() {
    use fluxon::wire::SessionTokenBytes;
    use futures_util::{SinkExt, StreamExt};
    use tokio::net::TcpListener;
    use tokio_util::codec::Framed;

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = SessionTokenBytes {
        id: [1; 16],
        mac: [2; 32],
    };
    let silent_server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut first = Some(Framed::new(stream, wire::codec(1 << 20)));
        let hello = first.as_mut().unwrap().next().await.unwrap().unwrap();
        assert!(matches!(
            Envelope::decode(&hello).unwrap(),
            Envelope::Hello { resume: None, .. }
        ));
        let welcome = Envelope::Welcome {
            token,
            resumed: false,
            max_frame: 1 << 20,
        };
        first
            .as_mut()
            .unwrap()
            .send(welcome.encode().unwrap())
            .await
            .unwrap();
        let mut pinged = false;
        let second = loop {
            tokio::select! {
                frame = async { first.as_mut().unwrap().next().await }, if first.is_some() => match frame {
                    Some(Ok(frame)) => {
                        pinged |= matches!(Envelope::decode(&frame), Ok(Envelope::Ping { .. }));
                    }
                    _ => first = None,
                },
                accepted = listener.accept() => break accepted.unwrap().0,
            }
        };
        let mut second = Framed::new(second, wire::codec(1 << 20));
        let hello = second.next().await.unwrap().unwrap();
        let resume = match Envelope::decode(&hello).unwrap() {
            Envelope::Hello { resume, .. } => resume,
            other => panic!("expected Hello, got {other:?}"),
        };
        (pinged, resume)
    });
    let config = ClientConfig::default().keepalive(Duration::from_millis(100));
    let conn = fluxon::ConnectionHandler::connect_with(addr.to_string(), config)
        .await
        .unwrap();
    let (pinged, resume) = tokio::time::timeout(PATIENCE, silent_server)
        .await
        .unwrap()
        .unwrap();
    assert!(pinged, "the client pinged the silent server first");
    assert_eq!(
        resume,
        Some(token),
        "the reconnect presented the session token"
    );
    drop(conn);
}

/// The server looks a call's view name up as the bytes that came (no UTF-8 check first), and
/// remembers the view the connection called last: neither lets a wrong name through.
#[tokio::test]
async fn view_names_match_exactly_and_a_name_that_is_not_utf8_closes_that_peer() {
    let server = start_default().await;
    let good = connect(&server).await;
    let mut peer = RawPeer::connect(&server).await;
    peer.hello(None).await;
    assert_eq!(
        peer.call(1, "add", &(2i64, 3i64)).await,
        Ok(postcard::to_allocvec(&5i64).unwrap())
    );
    // Names next to the one just called (a prefix, a longer one, another case) are not it.
    for (id, name) in [(2, "ad"), (3, "addx"), (4, "Add"), (5, "")] {
        let answer = peer.call(id, name, &(2i64, 3i64)).await;
        assert_eq!(answer, Err(wire::ErrorCode::UnknownView), "{name:?}");
    }
    assert_eq!(
        peer.call(6, "echo", &"hi").await,
        Ok(postcard::to_allocvec(&"hi").unwrap())
    );
    // A call (index 3, id 7) whose name is the bytes FF FE: a malformed message.
    let body = Bytes::from_static(&[3, 7, 2, 0xff, 0xfe, 0]);
    peer.framed.send(body).await.expect("send");
    let said = peer.read_to_close().await.expect("goodbye");
    assert!(said.contains("malformed"), "{said}");
    assert_eq!(good.call(add, &(1, 2)).await.unwrap(), 3);
    server.shutdown().await;
}
