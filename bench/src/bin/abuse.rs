//! Attacks against a server running with the shipped defaults, each for a fixed time, while a
//! well-behaved client is served: what the attacker got, and what the bystander saw.
//!
//! `cargo run --release -p fluxon-bench --bin abuse [-- --seconds 30]`
//!
//! The server runs in a child process (this binary with `--serve`), so its memory (read from
//! `/proc/<pid>/status` every 50 ms) is its own. Attackers connect from 127.0.0.2 and up; the
//! bystander from 127.0.0.1 calls a small view every 5 ms and logs in as jill every 15 s.
//!
//! * login flood: 8 connections x 64 logins in flight at once, all guessing jack's password (the
//!   review's case that grew a server to 6.1 GiB);
//! * connection flood: one address opening connections (Hello, then holding them) as fast as it
//!   can, 16 at a time, and ten more addresses opening sockets that never say Hello;
//! * frame flood: 200 connections from four addresses sending 16 MiB calls to a view that holds
//!   each for a second.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use fluxon::auth::PasswordHasher;
use fluxon::client::Reconnect;
use fluxon::db::{AsyncDatabase, Executor, Model, Password};
use fluxon::wire::{self, Envelope};
use fluxon::{
    view, views, AsyncServer, ClientConfig, ConnectionHandler, Request, Router, ViewError,
};
use fluxon_bench::stats::percentile_us;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MIB: f64 = 1024.0 * 1024.0;

#[derive(Model, Debug)]
#[model(authorized_user)]
struct Member {
    #[field(max_length = 64, unique)]
    username: String,
    password: Password,
}

#[view]
async fn login(req: Request, (username, password): (String, String)) -> Result<i64, ViewError> {
    Ok(req
        .login_with_password::<Member>(&username, &password)
        .await?)
}

#[view]
async fn add(_req: Request, (a, b): (i64, i64)) -> i64 {
    a.wrapping_add(b)
}

#[view]
async fn hold(_req: Request, (ms, padding): (u64, String)) -> usize {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    padding.len()
}

/// The server side: the shipped defaults, members jack and jill; serves until stdin closes.
async fn serve() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = AsyncDatabase::open(dir.path().join("abuse.sqlite3"))?;
    db.create_tables(&[Member::SCHEMA]).await?;
    let hasher = PasswordHasher::new(1, None, Duration::from_secs(60));
    for (username, password) in [("jack", "jack-password"), ("jill", "jill-password")] {
        let password = hasher.hash(password).await?;
        db.insert(&Member {
            username: username.into(),
            password,
        })
        .await?;
    }
    let router = Router::new().state(db).mapping(views![login, add, hold])?;
    let server = AsyncServer::new(0).router(router).start().await?;
    println!("addr {}", server.local_addr());
    let handle = server.handle();
    let stdin_closed = fluxon_bench::child::stdin_closed();
    tokio::pin!(stdin_closed);
    loop {
        tokio::select! {
            _ = &mut stdin_closed => break,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
        let s = handle.stats();
        println!(
            "stats {} {} {} {} {} {} {}",
            s.connections,
            s.refused.total(),
            s.logins_throttled,
            s.logins_failed,
            s.logins_busy,
            s.budget_in_use,
            s.budget_waits
        );
    }
    server.shutdown().await;
    Ok(())
}

/// The server's counters as last printed.
#[derive(Debug, Clone, Copy, Default)]
struct ServerCounts {
    connections: u64,
    refused: u64,
    throttled: u64,
    failed: u64,
    busy: u64,
    budget_in_use: u64,
    budget_waits: u64,
}

fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn config_from(ip: &str) -> anyhow::Result<ClientConfig> {
    Ok(ClientConfig::default()
        .local_addr(Some(ip.parse()?))
        .reconnect(Reconnect::default().enabled(false))
        .call_timeout(Duration::from_secs(30)))
}

async fn socket_from(addr: SocketAddr, ip: &str) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    // The attacker's unsent bytes would be in its own kernel; here that is the server's, and 200
    // flooding sockets with the usual send buffers push loopback TCP toward its memory limit.
    socket.set_send_buffer_size(64 * 1024)?;
    socket.bind(format!("{ip}:0").parse()?)?;
    Ok(socket.connect(addr).await?)
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

fn hello() -> anyhow::Result<Vec<u8>> {
    let body = Envelope::Hello {
        magic: wire::MAGIC,
        version: wire::PROTOCOL_VERSION,
        resume: None,
        max_frame: 1 << 20,
    }
    .encode()?;
    Ok(framed(&body))
}

/// Sends `Hello` on `stream`; whether the server answered `Welcome`.
async fn handshake(stream: &mut TcpStream, hello: &[u8]) -> bool {
    if stream.write_all(hello).await.is_err() {
        return false;
    }
    let mut len = [0u8; 4];
    if tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len))
        .await
        .map_or(true, |r| r.is_err())
    {
        return false;
    }
    let mut body = vec![0u8; (u32::from_be_bytes(len) as usize).min(4096)];
    if stream.read_exact(&mut body).await.is_err() {
        return false;
    }
    matches!(Envelope::decode(&body), Ok(Envelope::Welcome { .. }))
}

/// What the bystander saw.
struct Seen {
    answered: u64,
    failed: u64,
    p99_us: f64,
    slowest_us: f64,
    logins: u64,
    login_failures: u64,
}

/// The bystander: `add` every 5 ms and a login as jill every 15 s (as often as a person might;
/// every attempt counts against jill's bucket at her address, 5 a minute), from 127.0.0.1, until
/// `stop`.
async fn bystander(addr: String, stop: Arc<AtomicBool>) -> anyhow::Result<Seen> {
    let conn = ConnectionHandler::connect(addr.clone()).await?;
    let mut latencies = Vec::new();
    let (mut failed, mut logins, mut login_failures) = (0, 0, 0);
    let mut next_login = Instant::now();
    let mut n = 0i64;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let started = Instant::now();
        match tokio::time::timeout(Duration::from_secs(5), conn.call(add, &(n, 1))).await {
            Ok(Ok(got)) if got == n + 1 => latencies.push(started.elapsed()),
            _ => failed += 1,
        }
        if Instant::now() >= next_login {
            next_login += Duration::from_secs(15);
            let jill = ConnectionHandler::connect(addr.clone()).await?;
            match jill
                .call(login, &("jill".to_owned(), "jill-password".to_owned()))
                .await
            {
                Ok(_) => logins += 1,
                Err(_) => login_failures += 1,
            }
            jill.close().await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    conn.close().await;
    let answered = latencies.len() as u64;
    let p99_us = percentile_us(&mut latencies, 99.0);
    let slowest_us = percentile_us(&mut latencies, 100.0);
    Ok(Seen {
        answered,
        failed,
        p99_us,
        slowest_us,
        logins,
        login_failures,
    })
}

/// What one attack achieved: connections it held at the end (or used), attempts made, attempts
/// the attacker saw turned away.
struct Got {
    held: u64,
    attempts: u64,
    refused: u64,
    what: &'static str,
}

async fn login_flood(addr: SocketAddr, until: Instant) -> anyhow::Result<Got> {
    let mut conns = Vec::new();
    let mut refused = 0;
    for _ in 0..8 {
        match ConnectionHandler::connect_with(addr.to_string(), config_from("127.0.0.2")?).await {
            Ok(conn) => conns.push(conn),
            Err(_) => refused += 1,
        }
    }
    let attempts = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for conn in &conns {
        for lane in 0..64 {
            let (conn, attempts) = (conn.clone(), Arc::clone(&attempts));
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while Instant::now() < until {
                    i += 1;
                    let guess = (String::from("jack"), format!("guess {lane}-{i}"));
                    let _ = conn.call(login, &guess).await;
                    attempts.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for task in tasks {
        let _ = task.await;
    }
    let held = conns.len() as u64;
    for conn in conns {
        conn.close().await;
    }
    Ok(Got {
        held,
        attempts: attempts.load(Ordering::Relaxed),
        refused,
        what: "logins",
    })
}

async fn connection_flood(addr: SocketAddr, until: Instant) -> anyhow::Result<Got> {
    let hello = Arc::new(hello()?);
    let held = Arc::new(Mutex::new(Vec::new()));
    let (attempts, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    // One address opening and holding full connections, 16 at a time.
    for _ in 0..16 {
        let (hello, held, attempts, refused) = (
            Arc::clone(&hello),
            Arc::clone(&held),
            Arc::clone(&attempts),
            Arc::clone(&refused),
        );
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                attempts.fetch_add(1, Ordering::Relaxed);
                let Ok(mut stream) = socket_from(addr, "127.0.0.2").await else {
                    refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if handshake(&mut stream, &hello).await {
                    if let Ok(mut held) = held.lock() {
                        held.push(stream);
                    }
                } else {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // Ten addresses opening sockets that never say Hello (a slowloris of handshakes).
    for n in 3..13u8 {
        let (attempts, refused) = (Arc::clone(&attempts), Arc::clone(&refused));
        tasks.push(tokio::spawn(async move {
            let ip = format!("127.0.0.{n}");
            let mut silent = std::collections::VecDeque::new();
            while Instant::now() < until {
                attempts.fetch_add(1, Ordering::Relaxed);
                match socket_from(addr, &ip).await {
                    Ok(mut stream) => {
                        let mut buf = [0u8; 64];
                        // A refusal arrives at once; an admitted socket reads nothing.
                        match tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buf))
                            .await
                        {
                            Ok(_) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => silent.push_back(stream),
                        }
                    }
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if silent.len() > 200 {
                    silent.pop_front();
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let held = held.lock().map(|h| h.len() as u64).unwrap_or(0);
    Ok(Got {
        held,
        attempts: attempts.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        what: "connections",
    })
}

async fn frame_flood(addr: SocketAddr, until: Instant) -> anyhow::Result<Got> {
    let payload = postcard::to_allocvec(&(1000u64, "p".repeat(16 * 1024 * 1024 - 64)))?;
    let body = Envelope::Call {
        id: 1,
        view: "hold",
        payload: &payload,
    }
    .encode()?;
    let frame = Arc::new(framed(&body));
    let hello = Arc::new(hello()?);
    let (sent, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::new();
    for i in 0..200u8 {
        let (frame, hello, sent, refused) = (
            Arc::clone(&frame),
            Arc::clone(&hello),
            Arc::clone(&sent),
            Arc::clone(&refused),
        );
        tasks.push(tokio::spawn(async move {
            let ip = format!("127.0.0.{}", 2 + i % 4);
            let Ok(mut stream) = socket_from(addr, &ip).await else {
                refused.fetch_add(1, Ordering::Relaxed);
                return false;
            };
            if !handshake(&mut stream, &hello).await {
                refused.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            let (mut read, mut write) = stream.into_split();
            // Replies are read and thrown away, so the server is never held up by an unread
            // socket: what is measured is the frames.
            let drain = tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while read.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            });
            while Instant::now() < until {
                let left = until.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, write.write_all(&frame)).await {
                    Ok(Ok(())) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => break,
                }
            }
            drain.abort();
            true
        }));
    }
    let mut held = 0;
    for task in tasks {
        held += u64::from(task.await.unwrap_or(false));
    }
    Ok(Got {
        held,
        attempts: sent.load(Ordering::Relaxed),
        refused: refused.load(Ordering::Relaxed),
        what: "16 MiB frames",
    })
}

fn main() -> anyhow::Result<()> {
    let mut seconds = 30u64;
    let mut serving = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--seconds" => seconds = args.next().context("--seconds needs a value")?.parse()?,
            "--serve" => serving = true,
            other => anyhow::bail!("unknown option {other}; use --seconds N"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if serving {
        return runtime.block_on(serve());
    }
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let first = lines.next().context("the server said nothing")??;
    let addr: SocketAddr = first
        .split_whitespace()
        .nth(1)
        .context("no address")?
        .parse()?;
    let counts = Arc::new(Mutex::new(ServerCounts::default()));
    std::thread::spawn({
        let counts = Arc::clone(&counts);
        move || {
            for line in lines.map_while(Result::ok) {
                let n: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|w| w.parse().ok())
                    .collect();
                if let (Ok(mut counts), [c, r, t, f, b, u, w]) = (counts.lock(), n.as_slice()) {
                    *counts = ServerCounts {
                        connections: *c,
                        refused: *r,
                        throttled: *t,
                        failed: *f,
                        busy: *b,
                        budget_in_use: *u,
                        budget_waits: *w,
                    };
                }
            }
        }
    });

    let attacks = ["login flood", "connection flood", "frame flood"];
    let mut rows = Vec::new();
    for attack in attacks {
        let before = rss_of(pid);
        let start_counts = *counts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(before));
        let sampler = {
            let (stop, peak) = (Arc::clone(&stop), Arc::clone(&peak));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    peak.fetch_max(rss_of(pid), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let seen = runtime.spawn(bystander(addr.to_string(), Arc::clone(&stop)));
        let until = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let got = runtime.block_on(async {
            match attack {
                "login flood" => login_flood(addr, until).await,
                "connection flood" => connection_flood(addr, until).await,
                _ => frame_flood(addr, until).await,
            }
        })?;
        let took = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Release);
        let seen = runtime.block_on(seen)??;
        let _ = sampler.join();
        let end_counts = *counts.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        rows.push((
            attack,
            got,
            took,
            before,
            peak.load(Ordering::Relaxed),
            seen,
            start_counts,
            end_counts,
        ));
        // Let the server drop what the attack left before the next one.
        std::thread::sleep(Duration::from_secs(3));
    }
    drop(child.stdin.take());
    let _ = child.wait();

    println!("{seconds} s per attack, server with the default limits, in a child process");
    println!(
        "{:<17} {:>9} {:>12} {:>10} {:>16} {:>10} {:>8} {:>9} {:>9} {:>7}",
        "attack",
        "held",
        "attempts/s",
        "refused",
        "server MiB",
        "calls ok",
        "failed",
        "p99 ms",
        "max ms",
        "logins"
    );
    for (attack, got, took, before, peak, seen, start, end) in &rows {
        println!(
            "{:<17} {:>9} {:>12.0} {:>10} {:>7.1} -> {:>6.1} {:>10} {:>8} {:>9.2} {:>9.1} {:>3}/{:<3}",
            attack,
            got.held,
            got.attempts as f64 / took,
            end.refused - start.refused,
            *before as f64 / MIB,
            *peak as f64 / MIB,
            seen.answered,
            seen.failed,
            seen.p99_us / 1000.0,
            seen.slowest_us / 1000.0,
            seen.logins,
            seen.logins + seen.login_failures,
        );
        println!(
            "{:<17} ({}, {} turned away as the attacker saw it; server counted: {} throttled, {} wrong, {} busy logins; budget waits {}; {} connections at the end; budget in use {:.1} MiB)",
            "",
            got.what,
            got.refused,
            end.throttled - start.throttled,
            end.failed - start.failed,
            end.busy - start.busy,
            end.budget_waits - start.budget_waits,
            end.connections,
            end.budget_in_use as f64 / MIB,
        );
    }

    // The targets of issue 11, from the shipped defaults; the same bounds the tests assert.
    let limits = fluxon::Limits::default();
    let hashes = limits.logins.max_concurrent_hashes as f64;
    let margin = 64.0;
    println!();
    println!("targets (issue #11):");
    let report = |what: String, met: bool| {
        println!("  {what}: {}", if met { "met" } else { "NOT met" });
    };
    for (attack, got, _, before, peak, seen, _, _) in &rows {
        let growth = peak.saturating_sub(*before) as f64 / MIB;
        report(
            format!(
                "{attack}: bystander answered every call ({} failed), each within 1 s (slowest {:.1} ms), every login ({}/{})",
                seen.failed,
                seen.slowest_us / 1000.0,
                seen.logins,
                seen.logins + seen.login_failures
            ),
            seen.failed == 0 && seen.slowest_us < 1e6 && seen.login_failures == 0,
        );
        let (bound, of) = match *attack {
            "login flood" => (
                margin + hashes * 19.0,
                format!("{margin} MiB + {hashes} hashes x 19 MiB"),
            ),
            "connection flood" => (margin, format!("{margin} MiB")),
            _ => (
                limits.memory_budget as f64 / MIB + 96.0,
                "the memory budget + 96 MiB".to_owned(),
            ),
        };
        report(
            format!("{attack}: server memory growth {growth:.0} MiB <= {bound:.0} MiB ({of})"),
            growth <= bound,
        );
        if *attack == "connection flood" {
            let cap = limits.max_connections_per_peer.unwrap_or(usize::MAX) as u64;
            report(
                format!(
                    "{attack}: one address held {} connections <= its cap of {cap}",
                    got.held
                ),
                got.held <= cap,
            );
        }
    }
    Ok(())
}
