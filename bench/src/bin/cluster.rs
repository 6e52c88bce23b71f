//! Cluster benchmark: what being a node of a cluster costs, in one run on one machine, against
//! the same node alone and against Redis's own round trip. The benchmark starts its own
//! `redis-server` (Debian's package; `./scripts/test` installs it) on a free loopback port.
//!
//! `cargo run --release -p fluxon-bench --bin cluster [-- --reps N]` (5 reps unless told)
//!
//! * calls/s: 64 concurrent callers over 4 connections to one node, the node alone and the
//!   same node in a cluster of three (taking turns, the order alternating every rep). Target:
//!   the cluster node at least 0.95x the lone one.
//! * reverse calls: the server asks a client and awaits its reply, the client on the asking
//!   node and on another node; the floor is Redis's own round trip (PING), since a call across
//!   nodes crosses Redis twice (the request, the reply). p50 and p99.
//! * a node's death: a node with 100 logged-in clients is killed (its runtime dropped: no
//!   goodbye); the time until another node reports one of its users offline, and until every
//!   client is served again (reconnected to the others, session resumed).
//!
//! * broadcast: 10,000 clients (in child processes, as in the `broadcast` benchmark) on one node
//!   alone, and spread over three nodes of a cluster with the broadcast sent from one of them;
//!   the time from `broadcast` until the last client has it. Target: within 1.3x of one node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fluxon::{
    view, views, AsyncServer, Cluster, ConnectionHandler, Request, Router, RunningServer,
};
use fluxon_bench::doomed::Doomed;
use fluxon_bench::fanout::{self, collect, micros_now, raise_file_limit, spawn_clients};
use fluxon_bench::redis::Redis;
use fluxon_bench::stats::{median, paired_ratio, percentile_us};

const KEY: [u8; 32] = [3; 32];

#[view]
async fn add(_req: Request, (a, b): (i64, i64)) -> i64 {
    a + b
}

#[view]
async fn login_as(req: Request, user: i64) {
    req.login(user);
}

fn router() -> anyhow::Result<Router> {
    Ok(Router::new()
        .private_key(KEY)?
        .mapping(views![add, login_as])?)
}

fn cluster(redis: &Redis) -> Cluster {
    Cluster::redis(redis.url())
        .prefix("bench")
        .heartbeat(Duration::from_millis(200))
}

async fn node(redis: Option<&Redis>) -> anyhow::Result<RunningServer> {
    // Every client connects from 127.0.0.1, many at once: no per-address limits.
    let limits = fluxon::Limits::default()
        .max_connections(12_000)
        .max_connections_per_peer(None)
        .max_handshakes(12_000)
        .max_handshakes_per_peer(None);
    let mut server = AsyncServer::new(0).router(router()?).limits(limits);
    if let Some(redis) = redis {
        server = server.cluster(cluster(redis));
    }
    Ok(server.start().await?)
}

/// Calls per second: `callers` tasks over `conns` connections, `calls` calls in all.
async fn calls_per_second(
    addr: &str,
    conns: usize,
    callers: usize,
    calls: usize,
) -> anyhow::Result<f64> {
    let mut handlers = Vec::new();
    for _ in 0..conns {
        handlers.push(ConnectionHandler::connect(addr).await?);
    }
    let left = Arc::new(AtomicUsize::new(calls));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..callers {
        let conn = handlers[i % conns].clone();
        let left = Arc::clone(&left);
        tasks.push(tokio::spawn(async move {
            while left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            {
                let sum = conn.call(add, &(2, 3)).await?;
                anyhow::ensure!(sum == 5, "answered {sum}");
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let rate = calls as f64 / start.elapsed().as_secs_f64();
    for conn in handlers {
        conn.close().await;
    }
    Ok(rate)
}

async fn section_calls(redis: &Redis, reps: usize) -> anyhow::Result<()> {
    let alone = node(None).await?;
    let member = node(Some(redis)).await?;
    let others = [node(Some(redis)).await?, node(Some(redis)).await?];
    let (alone_addr, member_addr) = (
        alone.local_addr().to_string(),
        member.local_addr().to_string(),
    );
    let calls = 40_000;
    // Warm-up.
    calls_per_second(&alone_addr, 4, 64, calls / 4).await?;
    calls_per_second(&member_addr, 4, 64, calls / 4).await?;
    let (mut lone, mut clustered) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        let order = if rep % 2 == 0 { [0, 1] } else { [1, 0] };
        for who in order {
            if who == 0 {
                lone.push(calls_per_second(&alone_addr, 4, 64, calls).await?);
            } else {
                clustered.push(calls_per_second(&member_addr, 4, 64, calls).await?);
            }
        }
    }
    // Ratio of rates: the cluster node's over the lone node's (higher is better).
    let ratio = paired_ratio(&clustered, &lone);
    println!();
    println!("calls/s, 64 callers over 4 connections to one node ({reps} reps, medians):");
    println!("  node alone            {:>10.0}", median(&lone));
    println!("  node in a cluster     {:>10.0}", median(&clustered));
    println!(
        "  cluster/alone         {ratio:>10.2}x   target >= 0.95x: {}",
        if ratio >= 0.95 { "met" } else { "NOT MET" }
    );
    for server in [alone, member] {
        server.shutdown().await;
    }
    for server in others {
        server.shutdown().await;
    }
    Ok(())
}

/// `n` reverse calls from `asker` to `user`, one after another: each one's time.
async fn reverse_calls(
    asker: &RunningServer,
    user: i64,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let handle = asker.handle();
    let mut times = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let start = Instant::now();
        let back: u64 = handle
            .reverse_call(user, "echo", &i, Duration::from_secs(5))
            .await?;
        times.push(start.elapsed());
        anyhow::ensure!(back == i, "echoed {back}");
    }
    Ok(times)
}

async fn section_reverse(redis: &Redis, reps: usize) -> anyhow::Result<()> {
    let a = node(Some(redis)).await?;
    let b = node(Some(redis)).await?;
    let client = ConnectionHandler::connect(a.local_addr().to_string()).await?;
    client.call(login_as, &1).await?;
    client.on("echo", |n: u64| async move { n });
    let mut ping = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let per_rep = 500;
    let (mut same, mut across, mut pings) = (Vec::new(), Vec::new(), Vec::new());
    reverse_calls(&a, 1, 100).await?;
    reverse_calls(&b, 1, 100).await?;
    for _ in 0..reps {
        same.extend(reverse_calls(&a, 1, per_rep).await?);
        across.extend(reverse_calls(&b, 1, per_rep).await?);
        for _ in 0..per_rep {
            let start = Instant::now();
            let () = redis::cmd("PING")
                .query_async(&mut ping)
                .await
                .map(|_: String| ())?;
            pings.push(start.elapsed());
        }
    }
    println!();
    println!(
        "reverse call to a client, {} calls each (us):      p50      p99",
        reps * per_rep
    );
    for (label, samples) in [
        ("  client on the asking node       ", &mut same),
        ("  client on another node          ", &mut across),
        ("  Redis PING (the floor, 1 trip)  ", &mut pings),
    ] {
        println!(
            "{label}{:>9.1}{:>9.1}",
            percentile_us(samples, 50.0),
            percentile_us(samples, 99.0)
        );
    }
    let across_p50 = percentile_us(&mut across, 50.0);
    let ping_p50 = percentile_us(&mut pings, 50.0);
    println!(
        "  across nodes / 2 Redis trips (p50): {:.2}x (a call across nodes is published, then answered)",
        across_p50 / (2.0 * ping_p50)
    );
    client.close().await;
    a.shutdown().await;
    b.shutdown().await;
    Ok(())
}

async fn section_death(redis: &Redis, reps: usize) -> anyhow::Result<()> {
    let survivor = node(Some(redis)).await?;
    let survivor_addr = survivor.local_addr().to_string();
    let (mut offline, mut served) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        let server = AsyncServer::new(0)
            .router(router()?)
            .max_connections_per_peer(None)
            .cluster(cluster(redis));
        let mut doomed = Doomed::start(server).context("the doomed node did not start")?;
        let mut clients = Vec::new();
        for i in 0..100i64 {
            let conn = ConnectionHandler::connect_any([doomed.addr.clone(), survivor_addr.clone()])
                .await?;
            conn.call(login_as, &(1000 * rep as i64 + i)).await?;
            conn.on("ping", |_: u64| async {});
            clients.push(conn);
        }
        let user = 1000 * rep as i64;
        anyhow::ensure!(survivor.handle().reverse_request(user, "ping", &0u64).await);
        let killed = Instant::now();
        doomed.kill();
        // Offline: the first send from the survivor that finds nobody.
        let deadline = killed + Duration::from_secs(20);
        loop {
            if !survivor.handle().reverse_request(user, "ping", &0u64).await {
                offline.push(killed.elapsed().as_secs_f64() * 1e3);
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "never offline");
            tokio::task::yield_now().await;
        }
        // Served again: every client reconnected, resumed, and answered by the survivor.
        for conn in &clients {
            while !(conn.connect_count() >= 2 && conn.is_connected()) {
                anyhow::ensure!(Instant::now() < deadline, "a client never came back");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            anyhow::ensure!(conn.session_resumed(), "a session was lost");
            conn.call(add, &(1, 1)).await?;
        }
        served.push(killed.elapsed().as_secs_f64() * 1e3);
        for conn in clients {
            conn.close().await;
        }
    }
    println!();
    println!("a node with 100 logged-in clients killed (no goodbye), {reps} reps (ms, medians):");
    println!(
        "  until another node reports its user offline   {:>8.1}",
        median(&offline)
    );
    println!(
        "  until all 100 clients are served again        {:>8.1}",
        median(&served)
    );
    survivor.shutdown().await;
    Ok(())
}

/// One broadcast to `clients` clients spread over `nodes` (the first sends it): from the call
/// until the last client has it, in ms.
async fn broadcast_round(
    exe: &std::path::Path,
    nodes: &[RunningServer],
    clients: usize,
) -> anyhow::Result<f64> {
    let addrs: Vec<String> = nodes.iter().map(|n| n.local_addr().to_string()).collect();
    let children = spawn_clients(exe, &addrs.join(","), clients)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let connected: usize = nodes.iter().map(|n| n.handle().connection_count()).sum();
    anyhow::ensure!(connected == clients, "{connected} of {clients} connected");
    let start = micros_now();
    let sent = nodes[0]
        .handle()
        .broadcast("news", &"extra, extra".to_owned())
        .await;
    anyhow::ensure!(sent == clients, "broadcast counted {sent} of {clients}");
    let latest = collect(children, clients)?;
    Ok(latest.saturating_sub(start) as f64 / 1000.0)
}

async fn section_broadcast(redis: &Redis, reps: usize) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let clients = 10_000;
    let (mut one, mut three) = (Vec::new(), Vec::new());
    for rep in 0..reps {
        for who in if rep % 2 == 0 { [0, 1] } else { [1, 0] } {
            if who == 0 {
                let alone = [node(None).await?];
                one.push(broadcast_round(&exe, &alone, clients).await?);
                for n in alone {
                    n.shutdown().await;
                }
            } else {
                let nodes = [
                    node(Some(redis)).await?,
                    node(Some(redis)).await?,
                    node(Some(redis)).await?,
                ];
                three.push(broadcast_round(&exe, &nodes, clients).await?);
                for n in nodes {
                    n.shutdown().await;
                }
            }
        }
    }
    let ratio = paired_ratio(&three, &one);
    println!();
    println!("broadcast to {clients} clients, until the last has it ({reps} reps, ms, medians):");
    println!("  one node                      {:>8.1}", median(&one));
    println!("  three nodes (sent from one)   {:>8.1}", median(&three));
    println!(
        "  three/one                     {ratio:>8.2}x   target <= 1.3x: {}",
        if ratio <= 1.3 { "met" } else { "NOT MET" }
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let all: Vec<String> = std::env::args().collect();
    if fanout::is_child(&all) {
        return fanout::child_main(&all);
    }
    raise_file_limit()?;
    let mut reps = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--reps" => reps = args.next().context("--reps needs a value")?.parse()?,
            other => anyhow::bail!("unknown option {other}; use --reps N"),
        }
    }
    let redis = Redis::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "fluxon cluster benchmark: {reps} reps, one redis-server on 127.0.0.1:{}",
        redis.port
    );
    runtime.block_on(async {
        section_calls(&redis, reps).await?;
        section_reverse(&redis, reps).await?;
        section_death(&redis, reps).await?;
        section_broadcast(&redis, reps).await
    })
}
