//! The server-wide memory budget: many connections sending the largest frames to a slow view make
//! the server hold at most the budget (plus a fixed margin), the rest waits in their sockets, and a
//! small call from someone else is answered meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxon::wire::{self, Envelope};
use fluxon::AsyncServer;
use tokio::io::AsyncWriteExt;

use crate::app::*;
use crate::support::{mib, rss, Bystander, PeakRss, PATIENCE, PROMPT};
use crate::ALONE;

const MIB: usize = 1024 * 1024;
/// The budget the flood runs against (the default is 512 MiB; a smaller one keeps the test fast).
const BUDGET: usize = 64 * MIB;
/// What the server may hold beyond the budget: each connection's allowance and read-ahead, a
/// frame being decoded next to its copy, the allocator's slack, the test's own clients. (Without
/// the server's fixed mmap threshold, `Limits::malloc_mmap_threshold`, glibc kept 60 to 120 MiB
/// more than this in freed frames.)
const MARGIN: u64 = 48 * MIB as u64;

/// A `Call` of `hold` for `ms` with `len` bytes of padding, framed.
fn hold_call(id: u64, ms: u64, len: usize) -> Vec<u8> {
    let payload = postcard::to_allocvec(&(ms, "p".repeat(len))).expect("encodes");
    let body = Envelope::Call {
        id,
        view: "hold",
        payload: &payload,
    }
    .encode()
    .expect("encodes");
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_connections_of_sixteen_mib_frames_stay_within_the_budget() {
    let _alone = ALONE.lock().await;
    let app = start(
        AsyncServer::new(0)
            .memory_budget(BUDGET)
            .max_connections_per_peer(None),
    )
    .await;
    let handle = app.server.handle();
    let bystander = Bystander::connect(&app.addr()).await;
    // One frame in memory for every attacker: they all write the same bytes.
    let frame: Arc<Vec<u8>> = Arc::new(hold_call(1, 300, 16 * MIB - 64));
    assert!(frame.len() > 16 * MIB - 64 && frame.len() <= 16 * MIB + 4);

    let before = rss();
    let peak = PeakRss::start();
    let mut peers = Vec::new();
    for (i, ip) in addresses(2, 5).iter().cycle().take(200).enumerate() {
        let mut peer = RawPeer::connect_from(&app, ip).await;
        peer.hello()
            .await
            .unwrap_or_else(|e| panic!("attacker {i}: {e}"));
        peers.push(peer);
    }
    let attack: Vec<_> = peers
        .into_iter()
        .map(|peer| {
            let frame = Arc::clone(&frame);
            tokio::spawn(async move {
                let mut stream = peer.framed.into_inner();
                // Each sends its frame once; most wait in their sockets for the budget.
                let sent = tokio::time::timeout(PATIENCE, stream.write_all(&frame)).await;
                (stream, sent.is_ok())
            })
        })
        .collect();
    let started = Instant::now();
    let mut most_held = 0;
    let mut waited = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let stats = handle.stats();
        most_held = most_held.max(stats.budget_in_use);
        waited = stats.budget_waits;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bystander.served_now(10).await;
    let peak = peak.finish().await;
    for task in attack {
        task.abort();
    }
    let served = bystander.finish().await;

    assert!(most_held <= BUDGET, "held {most_held} of {BUDGET}");
    assert!(
        most_held > BUDGET / 2,
        "the flood did reach the budget: {most_held}"
    );
    assert!(waited > 0, "frames waited for the budget");
    let growth = peak.saturating_sub(before);
    let bound = BUDGET as u64 + MARGIN;
    assert!(
        growth < bound,
        "grew {:.1} MiB; budget {} MiB + margin {:.0} MiB (200 frames would be 3200 MiB)",
        mib(growth),
        BUDGET / MIB,
        mib(MARGIN)
    );
    assert!(served.slowest < PROMPT, "{served:?}");
    eprintln!(
        "frame flood: 200 x 16 MiB; budget held at most {:.1} MiB, {waited} frames waited; RSS \
         +{:.1} MiB; bystander {} calls, p99 {:?}, slowest {:?}",
        mib(most_held as u64),
        mib(growth),
        served.calls,
        served.p99,
        served.slowest
    );
    assert_eq!(wire::DEFAULT_MAX_FRAME, 16 * MIB);
}

/// A large frame's share of the budget is held while its call runs (its payload is in memory
/// that long) and given back when the call is done, also when its peer has left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_keep_their_share_while_their_calls_run_and_give_it_back() {
    let _alone = ALONE.lock().await;
    let app = start(
        AsyncServer::new(0)
            .memory_budget(32 * MIB)
            .idle_timeout(Duration::from_secs(1)),
    )
    .await;
    let handle = app.server.handle();
    let bystander = Bystander::connect(&app.addr()).await;
    // Forty 1 MiB frames to a view that holds each for two seconds: more than the budget.
    let mut peer = RawPeer::connect_from(&app, "127.0.0.2").await;
    peer.hello().await.expect("hello");
    let mut stream = peer.framed.into_inner();
    for id in 0..40 {
        let frame = hold_call(id, 2_000, MIB);
        if tokio::time::timeout(Duration::from_secs(2), stream.write_all(&frame))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut most_held = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(800) {
        most_held = most_held.max(handle.stats().budget_in_use);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(most_held <= 32 * MIB, "{most_held}");
    assert!(
        most_held >= 16 * MIB,
        "the calls held their frames' share: {most_held}"
    );
    drop(stream);
    crate::support::eventually("the budget to be given back", PATIENCE, || {
        handle.stats().budget_in_use == 0
    })
    .await;
    let served = bystander.finish().await;
    assert!(served.slowest < PROMPT, "{served:?}");
}
