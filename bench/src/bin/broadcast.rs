//! Broadcast benchmark: one fluxon server, N connected clients (1,000 and 10,000) in child
//! processes; the time from `broadcast` until every client has the reverse request, and the
//! server's memory per idle connection.
//!
//! `cargo run --release -p fluxon-bench --bin broadcast [-- --reps N]`
//!
//! The clients are minimal: each opens a connection, says Hello, and waits for one frame (what a
//! real client's reader does first), so the figures are the server's. Clients report the wall-clock
//! time they received the frame; the server's clock is the same machine's. The benchmark raises its
//! open-file limit to the hard limit first, and spreads the clients over child processes so no
//! process needs more descriptors than that.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fluxon::wire::{self, Envelope};
use fluxon::{AsyncServer, Router};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Clients per child process.
const PER_CHILD: usize = 2500;

fn raise_file_limit() -> anyhow::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        anyhow::ensure!(
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0,
            "getrlimit failed"
        );
        limit.rlim_cur = limit.rlim_max;
        anyhow::ensure!(
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0,
            "setrlimit failed"
        );
    }
    Ok(limit.rlim_cur)
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// Child: open `n` connections to `addr`, print "ready", then for each the time its first
/// reverse request arrived; print the latest and how many arrived.
async fn child(addr: String, n: usize) -> anyhow::Result<()> {
    let mut tasks = Vec::with_capacity(n);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n);
    // Connect a few hundred at a time, retrying briefly: a storm of thousands of SYNs at once
    // overflows the listen backlog, which is not what this measures.
    let connecting = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    for _ in 0..n {
        let addr = addr.clone();
        let ready = ready_tx.clone();
        let connecting = std::sync::Arc::clone(&connecting);
        tasks.push(tokio::spawn(async move {
            let permit = connecting.acquire_owned().await?;
            let mut attempt = 0;
            let stream = loop {
                match TcpStream::connect(&addr).await {
                    Ok(stream) => break stream,
                    Err(err) if attempt < 20 => {
                        attempt += 1;
                        let _ = err;
                        tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
                    }
                    Err(err) => return Err(err.into()),
                }
            };
            stream.set_nodelay(true)?;
            let mut framed = Framed::new(stream, wire::codec(1 << 20));
            let hello = Envelope::Hello {
                magic: wire::MAGIC,
                version: wire::PROTOCOL_VERSION,
                resume: None,
                max_frame: 1 << 20,
            };
            framed.send(hello.encode()?).await?;
            let welcome = framed.next().await.context("closed")??;
            anyhow::ensure!(
                matches!(Envelope::decode(&welcome)?, Envelope::Welcome { .. }),
                "not welcomed"
            );
            drop(permit);
            ready.send(()).await.ok();
            loop {
                let frame = framed
                    .next()
                    .await
                    .context("closed before the broadcast")??;
                if let Envelope::ReverseRequest { .. } = Envelope::decode(&frame)? {
                    return Ok::<u128, anyhow::Error>(micros_now());
                }
            }
        }));
    }
    drop(ready_tx);
    for _ in 0..n {
        ready_rx
            .recv()
            .await
            .context("a client failed to connect")?;
    }
    println!("ready");
    std::io::stdout().flush()?;
    let mut latest = 0;
    let mut count = 0;
    for task in tasks {
        latest = latest.max(task.await??);
        count += 1;
    }
    println!("{latest} {count}");
    Ok(())
}

struct Round {
    all_reached_ms: f64,
    send_ms: f64,
    per_connection_bytes: f64,
}

async fn round(exe: &std::path::Path, clients: usize) -> anyhow::Result<Round> {
    let limits = fluxon::Limits {
        max_connections: clients + 100,
        ..fluxon::Limits::default()
    };
    let server = AsyncServer::new(0)
        .limits(limits)
        .router(Router::new())
        .start()
        .await?;
    let addr = server.local_addr().to_string();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = resident_bytes();
    let mut children = Vec::new();
    let mut remaining = clients;
    while remaining > 0 {
        let n = remaining.min(PER_CHILD);
        remaining -= n;
        let mut child = Command::new(exe)
            .args(["--child", &addr, &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = BufReader::new(child.stdout.take().context("child stdout")?);
        children.push((child, stdout.lines()));
    }
    for (_, lines) in &mut children {
        let line = tokio::task::block_in_place(|| lines.next()).context("child ended early")??;
        anyhow::ensure!(line == "ready", "child said {line:?}");
    }
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
    let mut latest = 0u128;
    let mut count = 0usize;
    for (child, lines) in &mut children {
        let line = tokio::task::block_in_place(|| lines.next()).context("child ended early")??;
        let (when, n) = line.split_once(' ').context("bad child line")?;
        latest = latest.max(when.parse()?);
        count += n.parse::<usize>()?;
        child.wait()?;
    }
    anyhow::ensure!(
        count == clients,
        "{count} of {clients} clients got the broadcast"
    );
    server.shutdown().await;
    Ok(Round {
        all_reached_ms: (latest.saturating_sub(start)) as f64 / 1000.0,
        send_ms,
        per_connection_bytes: connected.saturating_sub(before) as f64 / clients as f64,
    })
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        raise_file_limit()?;
        let addr = args.get(2).context("address")?.clone();
        let n: usize = args.get(3).context("count")?.parse()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        return runtime.block_on(child(addr, n));
    }
    let mut reps = 3usize;
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
        "{:>8} {:>22} {:>26} {:>26}",
        "clients",
        "all reached (ms, med)",
        "broadcast() back (ms, med)",
        "server bytes/idle conn (max)"
    );
    let mut results = Vec::new();
    for clients in sizes {
        let mut reached = Vec::new();
        let mut sends = Vec::new();
        let mut per = Vec::new();
        for _ in 0..reps {
            let round = runtime.block_on(round(&exe, clients))?;
            eprintln!(
                "  {clients} clients: all reached {:.1} ms, broadcast returned {:.1} ms, {:.0} bytes/conn",
                round.all_reached_ms, round.send_ms, round.per_connection_bytes
            );
            reached.push(round.all_reached_ms);
            sends.push(round.send_ms);
            per.push(round.per_connection_bytes);
        }
        // Memory: the largest of the reps (a later round reuses memory an earlier one freed).
        let (r, s, p) = (
            fluxon_bench::stats::median(&reached),
            fluxon_bench::stats::median(&sends),
            per.iter().copied().fold(0.0, f64::max),
        );
        println!("{clients:>8} {r:>22.1} {s:>26.1} {p:>28.0}");
        results.push((clients, r, p));
    }
    println!();
    println!("targets (issue #5):");
    for (clients, reached, per) in results {
        let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
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
