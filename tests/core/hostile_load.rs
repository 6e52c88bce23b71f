//! Hostile peers under load: slow handshakes, idle sockets, connection floods, call floods,
//! absurd and truncated frames, stray reverse replies, peers that stop reading. Throughout each
//! attack a well-behaved client (a [`Bystander`]) keeps calling, and every one of its calls must be
//! answered correctly and promptly *while* the attack goes on, not only once it is over.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxon::wire::{self, Capacity, Envelope, ErrorCode, ErrorReply, RefuseReason};
use fluxon::{view, views, AsyncServer, Request, ReverseError, RunningServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::*;
use crate::support::{eventually, mib, proc_status_bytes, rss, Bystander, PROMPT};

/// Growth of this process's resident memory an attack may cause. Each attack below would cost
/// the server far more without its bound (100 MiB of queued calls, 250 MiB of replies, a 4 GiB
/// buffer), while the bounded server keeps a few MiB per connection (its outgoing buffer, one
/// frame, a few calls). The rest is headroom for the allocator and for tests running alongside.
const MEMORY_BOUND: u64 = 64 * 1024 * 1024;

/// Holds the call for `ms` milliseconds; `padding` only makes the call frame bigger.
#[view]
pub async fn hold(_req: Request, (ms, padding): (u64, Vec<u8>)) -> usize {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    padding.len()
}

async fn start_with_hold(server: AsyncServer) -> RunningServer {
    let router = router()
        .mapping(views![hold])
        .expect("the test router is valid");
    server.router(router).start().await.expect("server starts")
}

/// Reads until the server closes (`Ok(0)`, or an error such as a reset); how long that took.
async fn time_to_close(stream: &mut TcpStream, started: Instant) -> Duration {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await {
            Err(_) => panic!("the server did not close within {PATIENCE:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// The frame of a `Hello` this crate's client would send.
fn hello_frame() -> Vec<u8> {
    let body = Envelope::Hello {
        magic: wire::MAGIC,
        version: wire::PROTOCOL_VERSION,
        resume: None,
        max_frame: 1 << 20,
    }
    .encode()
    .expect("encodes");
    framed(&body)
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// A slowloris: the `Hello` one byte a second. The deadline is for the whole handshake, not per
/// byte, so a trickle cannot hold a connection open: each is dropped at the handshake timeout
/// (a per-read timeout of 1.5 s would never fire on bytes a second apart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_one_byte_a_second_is_dropped_at_the_timeout() {
    const HANDSHAKE: Duration = Duration::from_millis(1500);
    const PEERS: usize = 20;
    let server = start(one_address_for_all(
        AsyncServer::new(0).handshake_timeout(HANDSHAKE),
    ))
    .await;
    let bystander = Bystander::connect(&server.local_addr().to_string()).await;
    let before = bystander.calls();

    let hello = hello_frame();
    let slow: Vec<_> = (0..PEERS)
        .map(|_| {
            let hello = hello.clone();
            let addr = server.local_addr();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.expect("tcp connect");
                let started = Instant::now();
                let mut sent = 0;
                let mut buf = [0u8; 64];
                loop {
                    tokio::select! {
                        read = stream.read(&mut buf) => {
                            // The server says nothing to a peer that never finished its Hello.
                            assert!(!matches!(read, Ok(n) if n > 0), "the server wrote to a slowloris");
                            return (started.elapsed(), sent);
                        }
                        () = tokio::time::sleep(Duration::from_secs(1) * sent as u32), if sent < hello.len() => {
                            if stream.write_all(&hello[sent..=sent]).await.is_err() {
                                return (started.elapsed(), sent);
                            }
                            sent += 1;
                        }
                        () = tokio::time::sleep(PATIENCE) => panic!("a slowloris was never dropped"),
                    }
                }
            })
        })
        .collect();
    eventually("the slow peers to be accepted", PATIENCE, || {
        server.handle().connection_count() > PEERS
    })
    .await;
    // The bystander is served while the trickle goes on.
    bystander.served_now(20).await;

    let mut dropped_after = Vec::new();
    for peer in slow {
        let (elapsed, sent) = peer.await.expect("slow peer task");
        assert!(
            sent < hello.len(),
            "sent the whole Hello ({sent} bytes) before being dropped"
        );
        assert!(
            elapsed >= HANDSHAKE - Duration::from_millis(100),
            "dropped after {elapsed:?}, before the handshake timeout"
        );
        assert!(
            elapsed <= HANDSHAKE + Duration::from_millis(1500),
            "dropped after {elapsed:?}, long past the handshake timeout"
        );
        dropped_after.push(elapsed);
    }
    eventually("the slow peers' connections to end", PATIENCE, || {
        server.handle().connection_count() == 1
    })
    .await;
    let served = bystander.finish().await;
    assert!(served.calls > before + 20);
    eprintln!(
        "slowloris: {PEERS} dropped after {:?}..{:?}; bystander {} calls, slowest {:?}",
        dropped_after.iter().min().unwrap(),
        dropped_after.iter().max().unwrap(),
        served.calls,
        served.slowest
    );
    server.shutdown().await;
}

/// Two hundred sockets opened and never used: a new client still connects and calls at once,
/// and each idle socket is closed at the handshake timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_opened_and_never_used_are_closed_at_the_handshake_timeout() {
    const HANDSHAKE: Duration = Duration::from_secs(1);
    const IDLE: usize = 200;
    let server = start(one_address_for_all(
        AsyncServer::new(0).handshake_timeout(HANDSHAKE),
    ))
    .await;
    let handle = server.handle();
    let bystander = Bystander::connect(&server.local_addr().to_string()).await;

    let opened = Instant::now();
    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(
            TcpStream::connect(server.local_addr())
                .await
                .expect("tcp connect"),
        );
    }
    eventually("every idle socket to be accepted", PATIENCE, || {
        handle.connection_count() == IDLE + 1
    })
    .await;
    let peak = handle.connection_count();
    // While they all sit there: a newcomer connects and is answered, the bystander too.
    let started = Instant::now();
    let newcomer = tokio::time::timeout(PROMPT, connect(&server))
        .await
        .expect("a new client connects promptly");
    assert_eq!(newcomer.call(echo, &"hi".to_owned()).await.unwrap(), "hi");
    let newcomer_took = started.elapsed();
    assert!(newcomer_took < PROMPT);
    bystander.served_now(20).await;
    assert!(
        opened.elapsed() < HANDSHAKE,
        "the checks above ran before the idle sockets timed out ({:?}); the test proves nothing",
        opened.elapsed()
    );

    let mut closed_after = Vec::with_capacity(IDLE);
    for stream in &mut idle {
        closed_after.push(time_to_close(stream, opened).await);
    }
    let (first, last) = (
        *closed_after.iter().min().unwrap(),
        *closed_after.iter().max().unwrap(),
    );
    assert!(
        first >= HANDSHAKE - Duration::from_millis(100),
        "closed after {first:?}"
    );
    assert!(
        last <= HANDSHAKE + Duration::from_secs(2),
        "closed after {last:?}"
    );
    eventually("the connection count to go back down", PATIENCE, || {
        handle.connection_count() == 2
    })
    .await;
    assert_eq!(newcomer.call(add, &(2, 2)).await.unwrap(), 4);
    newcomer.close().await;
    let served = bystander.finish().await;
    eprintln!(
        "idle sockets: peak {peak} connections, newcomer served in {newcomer_took:?}, idle ones \
         closed after {first:?}..{last:?}; bystander {} calls, slowest {:?}",
        served.calls, served.slowest
    );
    server.shutdown().await;
}

/// How a connection attempt by a raw peer ended.
enum Attempt {
    Welcomed(Box<RawPeer>),
    Refused(RefuseReason),
}

/// Connects and says `Hello`, then reads the server's first frame, within [`PROMPT`]: being
/// turned away must be quick, never a hang.
async fn attempt(server: &RunningServer) -> Attempt {
    let mut peer = RawPeer::connect(server).await;
    // A refused peer may find the socket closed under its Hello; the Refused is read all the same.
    let _ = futures_util::SinkExt::send(
        &mut peer.framed,
        Envelope::Hello {
            magic: wire::MAGIC,
            version: wire::PROTOCOL_VERSION,
            resume: None,
            max_frame: 1 << 20,
        }
        .encode()
        .unwrap(),
    )
    .await;
    let first = tokio::time::timeout(PROMPT, futures_util::StreamExt::next(&mut peer.framed))
        .await
        .expect("the server answered promptly")
        .expect("the server answered before closing")
        .expect("a readable frame");
    match Envelope::decode(&first).expect("decodes") {
        Envelope::Welcome { .. } => Attempt::Welcomed(Box::new(peer)),
        Envelope::Refused { reason, .. } => {
            assert!(peer.next().await.is_none(), "closed after refusing");
            Attempt::Refused(reason)
        }
        other => panic!("expected Welcome or Refused, got {other:?}"),
    }
}

/// Attempts `n` connections at once; the welcomed peers and the refusal reasons.
async fn attempt_many(server: &RunningServer, n: usize) -> (Vec<RawPeer>, Vec<RefuseReason>) {
    let attempts = futures_util::future::join_all((0..n).map(|_| attempt(server))).await;
    let mut welcomed = Vec::new();
    let mut refused = Vec::new();
    for attempt in attempts {
        match attempt {
            Attempt::Welcomed(peer) => welcomed.push(*peer),
            Attempt::Refused(reason) => refused.push(reason),
        }
    }
    (welcomed, refused)
}

/// Extends `hostile::connections_past_the_limit_are_refused_cleanly` to many peers at once: exactly
/// the limit get in, every one past it is told `ServerFull` promptly, and freed slots are reused
/// exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_up_to_the_limit_get_in_and_the_rest_are_refused_promptly() {
    const LIMIT: usize = 6;
    let server = start(AsyncServer::new(0).max_connections(LIMIT)).await;
    let handle = server.handle();
    let bystander = Bystander::connect(&server.local_addr().to_string()).await;

    // Eight at once for the five slots left.
    let (mut welcomed, refused) = attempt_many(&server, 8).await;
    assert_eq!(welcomed.len(), LIMIT - 1, "exactly the limit get in");
    assert_eq!(
        refused,
        vec![RefuseReason::ServerFull(Capacity::Connections); 3]
    );
    assert_eq!(handle.connection_count(), LIMIT);

    // A storm of attempts past the limit, all refused, the bystander served throughout.
    let before = bystander.calls();
    let storm_started = Instant::now();
    for _ in 0..5 {
        let (extra, refused) = attempt_many(&server, 20).await;
        assert!(extra.is_empty(), "nobody gets in past the limit");
        assert_eq!(
            refused,
            vec![RefuseReason::ServerFull(Capacity::Connections); 20]
        );
    }
    let storm = storm_started.elapsed();
    bystander.served_now(5).await;
    assert!(bystander.calls() > before);
    // The welcomed raw peers are still served too.
    for (i, peer) in welcomed.iter_mut().enumerate() {
        let i = i as i64;
        assert_eq!(
            peer.call(1, "add", &(i, 10i64)).await.unwrap(),
            postcard::to_allocvec(&(i + 10)).unwrap()
        );
    }

    // Two leave: exactly two of three newcomers get in.
    drop(welcomed.pop());
    drop(welcomed.pop());
    eventually("two slots to free", PATIENCE, || {
        handle.connection_count() == LIMIT - 2
    })
    .await;
    let (newcomers, refused) = attempt_many(&server, 3).await;
    assert_eq!(newcomers.len(), 2);
    assert_eq!(
        refused,
        vec![RefuseReason::ServerFull(Capacity::Connections)]
    );
    assert_eq!(handle.connection_count(), LIMIT);

    let served = bystander.finish().await;
    eprintln!(
        "limit: 100 refusals in {storm:?}; bystander {} calls, slowest {:?}",
        served.calls, served.slowest
    );
    server.shutdown().await;
}

/// One peer sends 100,000 calls to a slow view (each frame padded to 1 KiB, 100 MiB in all) and
/// never reads a reply. The server reads only as fast as its in-flight slots free up, so the flood
/// waits in the kernel's socket buffers and then in the attacker itself: the attacker's writes
/// stall, this process's memory stays flat, and another client is answered at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flood_of_calls_past_the_in_flight_limit_is_held_back_by_backpressure() {
    const CALLS: u64 = 100_000;
    const BATCH: u64 = 64;
    const PADDING: usize = 1024;
    let server = start_with_hold(
        AsyncServer::new(0)
            .max_in_flight(4)
            .shutdown_grace(Duration::from_millis(500)),
    )
    .await;
    let bystander = Bystander::connect(&server.local_addr().to_string()).await;
    bystander.served_now(5).await;
    let rss_before = rss();

    let mut attacker = RawPeer::connect(&server).await;
    attacker.hello(None).await;
    let mut stream = attacker.framed.into_inner();
    let sent = Arc::new(AtomicU64::new(0));
    let flood = tokio::spawn({
        let sent = Arc::clone(&sent);
        async move {
            let padding = vec![0xa5u8; PADDING];
            let hold_for = postcard::to_allocvec(&(200u64, &padding)).unwrap();
            let mut batch = Vec::new();
            for first in (0..CALLS).step_by(BATCH as usize) {
                batch.clear();
                for id in first..first + BATCH {
                    let call = Envelope::Call {
                        id,
                        view: "hold",
                        payload: &hold_for,
                    };
                    batch.extend_from_slice(&framed(&call.encode().unwrap()));
                }
                if stream.write_all(&batch).await.is_err() {
                    break;
                }
                sent.fetch_add(BATCH, Ordering::AcqRel);
            }
            stream
        }
    });

    // Let the flood fill every buffer it can, then watch it stand still.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stalled_at = sent.load(Ordering::Acquire);
    let before = bystander.calls();
    bystander.served_now(20).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let later = sent.load(Ordering::Acquire);
    let rss_during = rss();
    assert!(
        !flood.is_finished() && later < CALLS,
        "the attacker wrote all {CALLS} calls: nothing held it back"
    );
    // The server drains 4 calls per 200 ms (20 KiB a second): a few batches at most.
    assert!(
        later - stalled_at <= 16 * BATCH,
        "the attacker went on writing ({stalled_at} then {later} calls): no backpressure"
    );
    let growth = rss_during.saturating_sub(rss_before);
    assert!(
        growth < MEMORY_BOUND,
        "memory grew by {:.1} MiB during the flood",
        mib(growth)
    );
    assert!(bystander.calls() > before + 20);

    // The attacker leaves (dropping its socket) with thousands of calls still unread by the
    // server: its connection ends soon, not after running them all for nobody.
    flood.abort();
    let _ = flood.await;
    let left = Instant::now();
    eventually(
        "the attacker's connection to end",
        Duration::from_secs(3),
        || server.handle().connection_count() == 1,
    )
    .await;
    let gone_after = left.elapsed();
    let served = bystander.finish().await;
    eprintln!(
        "flood: attacker stalled at {stalled_at} calls ({:.1} MiB), {later} a second later; RSS \
         {:.1} -> {:.1} MiB (+{:.1}); connection gone {gone_after:?} after the attacker left; \
         bystander {} calls, slowest {:?}",
        mib(stalled_at * (PADDING as u64 + 20)),
        mib(rss_before),
        mib(rss_during),
        mib(growth),
        served.calls,
        served.slowest
    );
    server.shutdown().await;
}

/// VmSize (address space, not resident memory): a buffer reserved for a declared length shows
/// here even before a byte of it is touched.
fn address_space() -> u64 {
    proc_status_bytes("VmSize:")
}

/// The existing test declares 4 GiB before the handshake; here a welcomed peer does it, mid-stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_length_of_four_gib_after_the_handshake_closes_that_peer_only() {
    let server = start_default().await;
    let bystander = Bystander::connect(&server.local_addr().to_string()).await;
    let space_before = address_space();
    let mut bad = RawPeer::connect(&server).await;
    bad.hello(None).await;
    assert!(bad.call(1, "add", &(1i64, 1i64)).await.is_ok());
    let stream = bad.framed.get_mut();
    stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    stream.write_all(&[0x5a; 4096]).await.unwrap();
    let said = bad.read_to_close().await.expect("goodbye");
    assert!(said.contains("goodbye") && said.contains("frame"), "{said}");
    let space_growth = address_space().saturating_sub(space_before);
    // Thread stacks and allocator arenas of tests running alongside move this by tens of MiB
    // (up to about a GiB at worst); a 4 GiB buffer would not fit under the bound.
    assert!(
        space_growth < 3 * 1024 * 1024 * 1024,
        "the address space grew by {:.0} MiB",
        mib(space_growth)
    );
    bystander.served_now(10).await;
    let served = bystander.finish().await;
    eprintln!(
        "4 GiB header: {said}; address space +{:.1} MiB; bystander {} calls, slowest {:?}",
        mib(space_growth),
        served.calls,
        served.slowest
    );
    server.shutdown().await;
}

/// Frames cut short, then the peer's end of stream: before and after the handshake, in the body
/// and in the middle of the length. Each closes cleanly with a reason; nobody else notices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frames_then_end_of_stream_close_cleanly() {
    let server = start_default().await;
    let handle = server.handle();
    let bystander = Bystander::connect(&server.local_addr().to_string()).await;
    let body_cut: &[u8] = &[0, 0, 0, 100, 3, 1, 3, b'a', b'd', b'd', 2, 2, 4, 0];
    let header_cut: &[u8] = &[0, 0];
    for (cut, after_hello) in [
        (body_cut, true),
        (header_cut, true),
        (body_cut, false),
        (header_cut, false),
    ] {
        let mut peer = RawPeer::connect(&server).await;
        if after_hello {
            peer.hello(None).await;
        }
        let stream = peer.framed.get_mut();
        stream.write_all(cut).await.unwrap();
        // End of stream on our side; we can still read what the server says.
        stream.shutdown().await.unwrap();
        let said = peer
            .read_to_close()
            .await
            .expect("the server said why it closed");
        if after_hello {
            assert!(said.starts_with("goodbye: bad frame"), "{said}");
        } else {
            assert!(
                said.starts_with("refused (malformed handshake): unreadable first frame"),
                "{said}"
            );
        }
        eprintln!(
            "truncated {} bytes {} the handshake: {said}",
            cut.len(),
            if after_hello { "after" } else { "before" }
        );
        bystander.served_now(3).await;
    }
    eventually("the truncating peers' connections to end", PATIENCE, || {
        handle.connection_count() == 1
    })
    .await;
    let served = bystander.finish().await;
    eprintln!(
        "truncated frames: bystander {} calls, slowest {:?}",
        served.calls, served.slowest
    );
    server.shutdown().await;
}

/// Reads frames until a `ReverseRequest` arrives; its id and payload.
async fn next_reverse_request(peer: &mut RawPeer) -> (u64, Vec<u8>) {
    for _ in 0..16 {
        let frame = peer.next().await.expect("a frame");
        match Envelope::decode(&frame).expect("decodes") {
            Envelope::ReverseRequest { id, name, payload } => {
                assert_eq!(name, "double");
                return (id, payload.to_vec());
            }
            Envelope::Ping { nonce } => peer.send(Envelope::Pong { nonce }).await,
            other => panic!("expected a reverse request, got {other:?}"),
        }
    }
    panic!("no reverse request among 16 frames");
}

/// A peer answers reverse requests with ids the server never sent (past, future, duplicates,
/// errors): the server ignores each (`Link::complete` finds nobody waiting), never hands a stray
/// answer to a later request, and keeps that peer and everyone else served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_and_duplicate_reverse_replies_are_ignored() {
    const ODD_USER: i64 = 7;
    const GOOD_USER: i64 = 8;
    let server = start_default().await;
    let handle = server.handle();
    let good = connect(&server).await;
    good.call(login_as, &GOOD_USER).await.unwrap();
    good.on("double", |n: u64| async move { n * 2 });
    let bystander = Bystander::with(good);

    let mut odd = RawPeer::connect(&server).await;
    odd.hello(None).await;
    odd.call(1, "login_as", &ODD_USER).await.unwrap();

    let ask = |user: i64, n: u64| {
        let handle = handle.clone();
        tokio::spawn(async move {
            handle
                .reverse_call::<u64, u64>(user, "double", &n, PATIENCE)
                .await
        })
    };
    let reply_bytes = |n: u64| postcard::to_allocvec(&n).unwrap();

    // First request: a reply for an id never sent, then the real one, then a duplicate.
    let first = ask(ODD_USER, 21);
    let (id, payload) = next_reverse_request(&mut odd).await;
    assert_eq!(payload, reply_bytes(21));
    for (reply_id, n) in [(id + 1000, 1), (id, 42), (id, 0)] {
        odd.send(Envelope::ReverseReply {
            id: reply_id,
            result: Ok(&reply_bytes(n)),
        })
        .await;
    }
    assert_eq!(first.await.unwrap().unwrap(), 42, "the real answer won");
    // A reply for the id the server will use next, and an error for an unknown id, sent early.
    odd.send(Envelope::ReverseReply {
        id: id + 1,
        result: Ok(&reply_bytes(666)),
    })
    .await;
    odd.send(Envelope::ReverseReply {
        id: u64::MAX,
        result: Err(ErrorReply::new(ErrorCode::NoHandler, "nobody asked")),
    })
    .await;
    // The connection is still good for calls...
    assert_eq!(
        odd.call(2, "add", &(20i64, 22i64)).await.unwrap(),
        postcard::to_allocvec(&42i64).unwrap()
    );
    // ...and for reverse requests, whose answers are not the stray ones sent before them.
    let second = ask(ODD_USER, 5);
    let (second_id, _) = next_reverse_request(&mut odd).await;
    assert_eq!(second_id, id + 1, "ids are not reused");
    odd.send(Envelope::ReverseReply {
        id: second_id,
        result: Ok(&reply_bytes(10)),
    })
    .await;
    assert_eq!(
        second.await.unwrap().unwrap(),
        10,
        "not the early stray 666"
    );
    // An answer that is not a u64 fails that request alone.
    let third = ask(ODD_USER, 1);
    let (third_id, _) = next_reverse_request(&mut odd).await;
    odd.send(Envelope::ReverseReply {
        id: third_id,
        result: Ok(&[0xff; 12]),
    })
    .await;
    assert!(matches!(
        third.await.unwrap(),
        Err(ReverseError::BadReply { .. })
    ));
    assert!(odd.call(3, "add", &(1i64, 1i64)).await.is_ok());

    // Meanwhile the well-behaved client's own reverse requests and calls work.
    for n in 0..10u64 {
        assert_eq!(
            handle
                .reverse_call::<u64, u64>(GOOD_USER, "double", &n, PROMPT)
                .await
                .unwrap(),
            n * 2
        );
    }
    bystander.served_now(5).await;
    assert_eq!(handle.connection_count(), 2, "nobody was disconnected");
    let served = bystander.finish().await;
    eprintln!(
        "stray reverse replies: bystander {} calls, slowest {:?}",
        served.calls, served.slowest
    );
    server.shutdown().await;
}

/// A peer asks for 1,000 replies of 256 KiB (250 MiB) and never reads one. The server's outgoing
/// queue for it is bounded in bytes, so its reader stops reading that peer's calls once the queue
/// and the socket are full; its writer gives up on a peer that takes no bytes for the idle timeout
/// and the connection is closed. Memory stays flat, and the bystander never waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_that_stops_reading_is_cut_off_without_memory_growth() {
    const CALLS: u64 = 1000;
    const REPLY: usize = 256 * 1024;
    const IDLE: Duration = Duration::from_secs(1);
    let server = start(
        AsyncServer::new(0)
            .idle_timeout(IDLE)
            .outgoing_buffer(256 * 1024)
            .shutdown_grace(Duration::from_millis(500)),
    )
    .await;
    let handle = server.handle();
    let bystander = Bystander::connect(&server.local_addr().to_string()).await;
    bystander.served_now(5).await;
    let rss_before = rss();

    let mut deaf = RawPeer::connect(&server).await;
    deaf.hello(None).await;
    let mut stream = deaf.framed.into_inner();
    let started = Instant::now();
    let payload = postcard::to_allocvec(&REPLY).unwrap();
    let mut calls = Vec::new();
    for id in 0..CALLS {
        let call = Envelope::Call {
            id,
            view: "big_reply",
            payload: &payload,
        };
        calls.extend_from_slice(&framed(&call.encode().unwrap()));
    }
    // 1,000 small frames: the socket takes them all at once.
    stream.write_all(&calls).await.unwrap();

    // While the server's buffers for the deaf peer fill and it waits on it, the bystander is served.
    let before = bystander.calls();
    let mut rss_peak = rss();
    let deadline = started + IDLE + PATIENCE;
    while handle.connection_count() > 1 {
        assert!(
            Instant::now() < deadline,
            "the deaf peer was never disconnected"
        );
        rss_peak = rss_peak.max(rss());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cut_off_after = started.elapsed();
    assert!(
        cut_off_after >= IDLE,
        "cut off after {cut_off_after:?}, before the stall limit"
    );
    assert!(
        bystander.calls() > before + 20,
        "the bystander was not served while the deaf peer stalled"
    );
    let growth = rss_peak.saturating_sub(rss_before);
    assert!(
        growth < MEMORY_BOUND,
        "memory grew by {:.1} MiB",
        mib(growth)
    );

    // What reached the deaf peer is a fraction of what it asked for, then the end of the stream.
    let mut reader = tokio_util::codec::FramedRead::new(stream, wire::codec(1 << 20));
    let mut replies = 0u64;
    for _ in 0..=CALLS {
        match tokio::time::timeout(PATIENCE, futures_util::StreamExt::next(&mut reader)).await {
            Err(_) => panic!("the deaf peer's connection was left open"),
            Ok(Some(Ok(_))) => replies += 1,
            Ok(_) => break,
        }
    }
    assert!(replies < CALLS / 2, "{replies} replies of {CALLS}");
    let served = bystander.finish().await;
    eprintln!(
        "deaf peer: cut off after {cut_off_after:?} having got {replies} of {CALLS} replies; RSS \
         {:.1} MiB, peak +{:.1} MiB; bystander {} calls, slowest {:?}",
        mib(rss_before),
        mib(growth),
        served.calls,
        served.slowest
    );
    server.shutdown().await;
}
