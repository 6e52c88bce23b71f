//! Soak test: many clients making calls, answering reverse requests and uploading files for
//! minutes on end, with random disconnects; then checks that nothing was lost and nothing stayed.
//!
//! `cargo run --release -p fluxon-bench --bin soak -- --clients 50 --minutes 10`
//!
//! The server runs in a child process (this binary with `--serve`), so its memory is its own; it
//! prints its connection and session counts and its resident memory every second. Each client
//! (a task here) loops: a call whose reply must echo a number it has never sent before, every
//! 20th iteration an upload of 32 KiB through the cloud endpoint read back and compared, and
//! about every 200th iteration it closes its connection and opens a new one (a new session). The
//! server sends reverse requests to its users in turn, one after another 10 ms apart, and checks
//! each answer.
//!
//! A lost reply is a call that timed out or came back with another call's answer, or a reverse
//! request whose client was connected and never answered. Errors are everything else that failed.
//! At the end every client leaves, and the run waits (at most a minute) for the server's
//! connections and sessions (TTL 5 s) to go back to 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fluxon::cloud::{CloudOperation, CloudStorageServer, Grant};
use fluxon::db::AsyncDatabase;
use fluxon::server::ReverseError;
use fluxon::{
    view, views, AsyncServer, CallError, ClientConfig, ConnectionHandler, Limits, Request, Router,
    ViewError,
};
use fluxon_bench::stats::resident_bytes;

#[view]
async fn echo(_req: Request, n: u64) -> u64 {
    n
}

#[view]
async fn login_as(req: Request, user: i64) -> Result<(), ViewError> {
    req.login(user);
    match req
        .cloud()?
        .create_owner(&format!("u{user}"), user, 1 << 30)
        .await
    {
        Ok(_) | Err(fluxon::cloud::CloudError::AlreadyExists(_)) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

#[view]
async fn grant(req: Request, (op, path): (CloudOperation, String)) -> Result<Grant, ViewError> {
    Ok(req.grant_access(op, &path)?)
}

/// Counts of what happened, shared by the tasks that do it.
#[derive(Default)]
struct Counts {
    calls: AtomicU64,
    call_errors: AtomicU64,
    lost: AtomicU64,
    uploads: AtomicU64,
    upload_errors: AtomicU64,
    reconnects: AtomicU64,
}

/// The server's reverse requests, by how they ended.
#[derive(Default)]
struct ReverseCounts {
    sent: AtomicU64,
    answered: AtomicU64,
    offline: AtomicU64,
    lost: AtomicU64,
    failed: AtomicU64,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// The server side: serves until stdin closes, printing its state every second.
async fn serve(clients: i64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = AsyncDatabase::open(dir.path().join("soak.sqlite3"))?;
    let router = Router::new()
        .state(db)
        .mapping(views![echo, login_as, grant])?;
    // Every client connects from 127.0.0.1: the per-address limits would take them for one
    // host.
    let limits = Limits::default()
        .session_ttl(Duration::from_secs(5))
        .max_connections_per_peer(None)
        .max_handshakes_per_peer(None);
    let server = AsyncServer::new(0)
        .router(router)
        .limits(limits)
        // Every client is on 127.0.0.1: the cloud's per-address caps would turn the soak away.
        .cloud_storage(
            CloudStorageServer::new(0, dir.path().join("cloud"))
                .max_connections_per_peer(None)
                .max_handshakes(256, None),
        )
        .start()
        .await?;
    let cloud = server.cloud_addr().context("no cloud endpoint")?;
    println!("addr {} {cloud}", server.local_addr());
    let handle = server.handle();
    let reverse = Arc::new(ReverseCounts::default());
    let pinger = {
        let (handle, reverse) = (handle.clone(), Arc::clone(&reverse));
        tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                n += 1;
                let user = (n % clients as u64) as i64 + 1;
                add(&reverse.sent);
                let reply = handle
                    .reverse_call::<_, u64>(user, "ping", &n, Duration::from_secs(5))
                    .await;
                match reply {
                    Ok(m) if m == n + 1 => add(&reverse.answered),
                    Ok(_) | Err(ReverseError::Timeout(_)) => add(&reverse.lost),
                    Err(ReverseError::Offline | ReverseError::Disconnected) => {
                        add(&reverse.offline)
                    }
                    Err(_) => add(&reverse.failed),
                }
            }
        })
    };
    let stdin_closed = fluxon_bench::child::stdin_closed();
    tokio::pin!(stdin_closed);
    loop {
        tokio::select! {
            _ = &mut stdin_closed => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        println!(
            "state {} {} {} {} {} {} {} {}",
            handle.connection_count(),
            handle.session_count(),
            resident_bytes(),
            load(&reverse.sent),
            load(&reverse.answered),
            load(&reverse.offline),
            load(&reverse.lost),
            load(&reverse.failed),
        );
    }
    pinger.abort();
    server.shutdown().await;
    Ok(())
}

/// One client's loop until `until`.
async fn client(
    user: i64,
    addr: String,
    cloud: String,
    until: Instant,
    counts: Arc<Counts>,
) -> anyhow::Result<()> {
    let config = ClientConfig::default().call_timeout(Duration::from_secs(10));
    let mut n = (user as u64) << 40;
    let mut rng = (user as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let payload: Vec<u8> = (0..32 * 1024)
        .map(|i| (i as u64 * user as u64) as u8)
        .collect();
    while Instant::now() < until {
        let conn = ConnectionHandler::connect_with(addr.clone(), config.clone()).await?;
        conn.on("ping", |n: u64| async move { n + 1 });
        conn.call(login_as, &user).await?;
        let storage = conn.cloud_connector(cloud.clone());
        loop {
            n += 1;
            add(&counts.calls);
            match conn.call(echo, &n).await {
                Ok(m) if m == n => {}
                Ok(_) | Err(CallError::Timeout(_)) => add(&counts.lost),
                Err(_) => add(&counts.call_errors),
            }
            if n.is_multiple_of(20) {
                add(&counts.uploads);
                let path = format!("u{user}/f{}", n % 5);
                let ok = async {
                    let up = conn
                        .call(grant, &(CloudOperation::WriteFile, path.clone()))
                        .await?;
                    storage.write_bytes(&up, &payload).await?;
                    let down = conn.call(grant, &(CloudOperation::ReadFile, path)).await?;
                    anyhow::ensure!(storage.read_bytes(&down).await? == payload, "corrupt");
                    Ok::<_, anyhow::Error>(())
                }
                .await;
                if ok.is_err() {
                    add(&counts.upload_errors);
                }
            }
            if Instant::now() >= until {
                break;
            }
            if next().is_multiple_of(200) {
                add(&counts.reconnects);
                break;
            }
        }
        conn.close().await;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut clients = 50i64;
    let mut minutes = 10.0f64;
    let mut args = std::env::args().skip(1);
    let mut serving = false;
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--clients" => clients = args.next().context("--clients needs a value")?.parse()?,
            "--minutes" => minutes = args.next().context("--minutes needs a value")?.parse()?,
            "--serve" => serving = true,
            other => anyhow::bail!("unknown option {other}; use --clients N --minutes M"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if serving {
        return runtime.block_on(serve(clients));
    }

    let mut child = Command::new(std::env::current_exe()?)
        .args(["--serve", "--clients", &clients.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let first = lines.next().context("the server said nothing")??;
    let mut words = first.split_whitespace().skip(1);
    let addr = words.next().context("no address")?.to_owned();
    let cloud = words.next().context("no cloud address")?.to_owned();
    // Server state lines, read on a thread: (connections, sessions, rss, reverse counts).
    let state = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let reader = {
        let state = Arc::clone(&state);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let numbers: Vec<u64> = line
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|w| w.parse().ok())
                    .collect();
                if let Ok(mut state) = state.lock() {
                    *state = numbers;
                }
            }
        })
    };
    let read =
        |state: &std::sync::Mutex<Vec<u64>>| state.lock().map(|s| s.clone()).unwrap_or_default();
    std::thread::sleep(Duration::from_millis(1500));
    let rss_start = read(&state).get(2).copied().unwrap_or(0);

    println!("soak: {clients} clients for {minutes} minutes against {addr} (cloud {cloud})");
    let counts = Arc::new(Counts::default());
    let until = Instant::now() + Duration::from_secs_f64(minutes * 60.0);
    let started = Instant::now();
    let mut rss_warm = 0;
    let mut series = Vec::new();
    runtime.block_on(async {
        let tasks: Vec<_> = (1..=clients)
            .map(|user| {
                let (addr, cloud, counts) = (addr.clone(), cloud.clone(), Arc::clone(&counts));
                tokio::spawn(client(user, addr, cloud, until, counts))
            })
            .collect();
        // Memory at every tenth of the run; "warm" is the first, when every client is up.
        for tenth in 1..=10u32 {
            let at = started + Duration::from_secs_f64(minutes * 6.0 * f64::from(tenth));
            tokio::time::sleep_until(at.into()).await;
            let rss = read(&state).get(2).copied().unwrap_or(0);
            if tenth == 1 {
                rss_warm = rss;
            }
            series.push(rss >> 20);
        }
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => eprintln!("a client stopped: {err:#}"),
                Err(err) => eprintln!("a client panicked: {err}"),
            }
        }
    });
    let rss_end = read(&state).get(2).copied().unwrap_or(0);
    let ran = started.elapsed();
    // Everyone has left: wait for the server to let go of every connection and session.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut left = read(&state);
    while Instant::now() < deadline && left.get(..2) != Some(&[0, 0][..]) {
        std::thread::sleep(Duration::from_millis(500));
        left = read(&state);
    }
    drop(child.stdin.take());
    let _ = child.wait();
    let _ = reader.join();

    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let at = |i: usize| left.get(i).copied().unwrap_or(0);
    println!("ran {:.1} minutes", ran.as_secs_f64() / 60.0);
    println!(
        "calls made {}, errors {}, lost replies {}",
        get(&counts.calls),
        get(&counts.call_errors),
        get(&counts.lost)
    );
    println!(
        "uploads (32 KiB, read back and compared) {}, failed {}",
        get(&counts.uploads),
        get(&counts.upload_errors)
    );
    println!(
        "reverse requests sent {}, answered {}, to a user offline or leaving {}, lost {}, other errors {}",
        at(3),
        at(4),
        at(5),
        at(6),
        at(7)
    );
    println!("random disconnects {}", get(&counts.reconnects));
    println!(
        "server memory: start {} MiB, after warm-up {} MiB, end {} MiB (growth since warm-up {} KiB)",
        rss_start >> 20,
        rss_warm >> 20,
        rss_end >> 20,
        (rss_end as i64 - rss_warm as i64) / 1024
    );
    println!("server memory at each tenth of the run (MiB): {series:?}");
    println!("left at the end: {} connections, {} sessions", at(0), at(1));
    let lost = get(&counts.lost) + at(6);
    anyhow::ensure!(lost == 0, "{lost} replies lost");
    anyhow::ensure!(at(0) == 0 && at(1) == 0, "connections or sessions left");
    Ok(())
}
