//! Broadcast benchmark: one fluxon server, N connected clients (1,000 and 10,000) in child
//! processes; the time from `broadcast` until every client has the reverse request, and the
//! server's memory per idle connection.
//!
//! `cargo run --release -p fluxon-bench --bin broadcast [-- --reps N]`
//!
//! The clients are minimal: each opens a connection, says Hello, and waits for one frame (what a
//! real client's reader does first), then keeps its connection open until every client of its
//! process has reported (a client that left at once would have the server tearing connections
//! down while the others still wait, which the raw floor, reading nothing, never does). In the same run, interleaved, a raw floor: a bare tokio
//! server that keeps the same number of sockets and writes one pre-encoded frame to each, over the
//! same number of threads: what the machine itself allows. Clients report the wall-clock
//! time they received the frame; the server's clock is the same machine's. The benchmark raises its
//! open-file limit to the hard limit first, and spreads the clients over child processes so no
//! process needs more descriptors than that.

use std::time::Duration;

use anyhow::Context;
use fluxon::wire::{self, Envelope};
use fluxon::{AsyncServer, Router};
use fluxon_bench::fanout::{self, collect, micros_now, raise_file_limit, spawn_clients, PER_CHILD};
use fluxon_bench::stats::resident_bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

struct Round {
    all_reached_ms: f64,
    send_ms: f64,
    per_connection_bytes: f64,
}

async fn round(exe: &std::path::Path, clients: usize) -> anyhow::Result<Round> {
    // Every client connects from 127.0.0.1, many at once: the per-address limits would
    // (rightly) take them for one host.
    let limits = fluxon::Limits::default()
        .max_connections(clients + 100)
        .max_connections_per_peer(None)
        .max_handshakes(clients + 100)
        .max_handshakes_per_peer(None);
    let server = AsyncServer::new(0)
        .limits(limits)
        .router(Router::new())
        .start()
        .await?;
    let addr = server.local_addr().to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = resident_bytes();
    let children = spawn_clients(exe, &addr, clients)?;
    // Let the server settle, then weigh it with every connection idle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    anyhow::ensure!(
        server.handle().connection_count() == clients,
        "not every client is connected"
    );
    let connected = resident_bytes();
    let start = micros_now();
    let sent = server
        .handle()
        .broadcast("news", &"extra, extra".to_owned())
        .await;
    let send_ms = (micros_now() - start) as f64 / 1000.0;
    anyhow::ensure!(
        sent == clients,
        "broadcast reached {sent} of {clients} queues"
    );
    let latest = collect(children, clients)?;
    server.shutdown().await;
    Ok(Round {
        all_reached_ms: (latest.saturating_sub(start)) as f64 / 1000.0,
        send_ms,
        per_connection_bytes: connected.saturating_sub(before) as f64 / clients as f64,
    })
}

/// The floor on this machine: a bare tokio server that answers each Hello with a Welcome and keeps
/// the socket; its "broadcast" writes one pre-encoded frame to every socket, spread over the same
/// number of threads. No sessions, no queues, no protocol beyond that frame.
async fn raw_round(exe: &std::path::Path, clients: usize) -> anyhow::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let sockets = std::sync::Arc::new(std::sync::Mutex::new(Vec::<TcpStream>::new()));
    let accept = tokio::spawn({
        let sockets = std::sync::Arc::clone(&sockets);
        async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sockets = std::sync::Arc::clone(&sockets);
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let mut framed = Framed::new(stream, wire::codec(1 << 20));
                    if framed.next().await.is_none() {
                        return;
                    }
                    let token = wire::SessionTokenBytes {
                        id: [0; 16],
                        mac: [0; 32],
                    };
                    let welcome = Envelope::Welcome {
                        token,
                        resumed: false,
                        max_frame: 1 << 20,
                    };
                    if let Ok(body) = welcome.encode() {
                        if framed.send(body).await.is_ok() {
                            if let Ok(mut all) = sockets.lock() {
                                all.push(framed.into_inner());
                            }
                        }
                    }
                });
            }
        }
    });
    let children = spawn_clients(exe, &addr, clients)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all: Vec<TcpStream> =
        std::mem::take(&mut *sockets.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    anyhow::ensure!(all.len() == clients, "not every client is connected");
    let body = Envelope::ReverseRequest {
        id: 1,
        name: "news",
        payload: b"extra, extra",
    }
    .encode()?;
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    let frame = std::sync::Arc::new(frame);
    let all = std::sync::Arc::new(all);
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = clients.div_ceil(workers);
    let start = micros_now();
    let writers: Vec<_> = (0..clients)
        .step_by(chunk)
        .map(|from| {
            let (all, frame) = (std::sync::Arc::clone(&all), std::sync::Arc::clone(&frame));
            tokio::spawn(async move {
                for socket in &all[from..(from + chunk).min(all.len())] {
                    let mut written = 0;
                    while written < frame.len() {
                        socket.writable().await?;
                        match socket.try_write(&frame[written..]) {
                            Ok(n) => written += n,
                            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                            Err(err) => return Err(err),
                        }
                    }
                }
                Ok::<(), std::io::Error>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    let latest = collect(children, clients)?;
    accept.abort();
    Ok((latest.saturating_sub(start)) as f64 / 1000.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if fanout::is_child(&args) {
        return fanout::child_main(&args);
    }
    let mut reps = 5usize;
    if let Some(i) = args.iter().position(|a| a == "--reps") {
        reps = args.get(i + 1).context("--reps needs a value")?.parse()?;
    }
    let sizes: Vec<usize> = match args.iter().position(|a| a == "--clients") {
        Some(i) => vec![args
            .get(i + 1)
            .context("--clients needs a value")?
            .parse()?],
        None => vec![1000, 10_000],
    };
    let limit = raise_file_limit()?;
    let exe = std::env::current_exe()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("fluxon broadcast benchmark: {reps} reps, open-file limit {limit}, clients in child processes of {PER_CHILD}");
    println!();
    println!(
        "{:>8} {:>20} {:>20} {:>12} {:>24} {:>30}",
        "clients",
        "raw floor (ms, med)",
        "fluxon (ms, med)",
        "fluxon/raw",
        "broadcast() back (ms)",
        "server bytes/idle conn (max)"
    );
    let mut results = Vec::new();
    for clients in sizes {
        let mut reached = Vec::new();
        let mut floors = Vec::new();
        let mut sends = Vec::new();
        let mut per = Vec::new();
        for rep in 0..reps {
            // Interleaved: the floor and fluxon take turns, each going first every other rep.
            let floor_first = rep % 2 == 0;
            if floor_first {
                floors.push(runtime.block_on(raw_round(&exe, clients))?);
            }
            let round = runtime.block_on(round(&exe, clients))?;
            if !floor_first {
                floors.push(runtime.block_on(raw_round(&exe, clients))?);
            }
            eprintln!(
                "  {clients} clients: raw floor {:.1} ms; fluxon all reached {:.1} ms, broadcast returned {:.1} ms, {:.0} bytes/conn",
                floors.last().copied().unwrap_or(0.0),
                round.all_reached_ms,
                round.send_ms,
                round.per_connection_bytes
            );
            reached.push(round.all_reached_ms);
            sends.push(round.send_ms);
            per.push(round.per_connection_bytes);
        }
        // Memory: the largest of the reps (a later round reuses memory an earlier one freed).
        let (f, r, s, p) = (
            fluxon_bench::stats::median(&floors),
            fluxon_bench::stats::median(&reached),
            fluxon_bench::stats::median(&sends),
            per.iter().copied().fold(0.0, f64::max),
        );
        // Ratios within each rep (the floor and fluxon seconds apart), then their median.
        let vs_floor = fluxon_bench::stats::paired_ratio(&reached, &floors);
        let back = fluxon_bench::stats::paired_ratio(&sends, &reached);
        println!("{clients:>8} {f:>20.1} {r:>20.1} {vs_floor:>11.2}x {s:>24.1} {p:>30.0}");
        results.push((clients, r, p, vs_floor, back));
    }
    println!(
        "  ratios: the median over the reps of each rep's ratio (its two rounds side by side)"
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!();
    println!("targets (issue #12):");
    for (clients, _, _, vs_floor, back) in &results {
        println!(
            "  {clients} clients: all reached within 1.1x of the raw floor: {vs_floor:.2}x {}",
            verdict(*vs_floor <= 1.1)
        );
        println!(
            "  {clients} clients: broadcast() back within 1.1x of the last delivery: {back:.2}x {}",
            verdict(*back <= 1.1)
        );
    }
    println!("targets (issue #5):");
    for (clients, reached, per, _, _) in results {
        if clients == 10_000 {
            println!(
                "  10,000 clients all reached within 100 ms: {reached:.1} ms {}",
                verdict(reached <= 100.0)
            );
        }
        println!(
            "  {clients} clients: at most 16 KiB per idle connection: {:.1} KiB {}",
            per / 1024.0,
            verdict(per <= 16.0 * 1024.0)
        );
    }
    Ok(())
}
