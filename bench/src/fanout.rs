//! Clients in child processes that each wait for one reverse request: what the broadcast
//! benchmarks fan out to. A benchmark binary re-runs itself as `--child <addrs> <n>` (see
//! [`is_child`], [`child_main`]); each child opens `n` connections (spread over the
//! comma-separated addresses), says Hello on each, prints "ready", then the latest time one of
//! its connections got its first reverse request, and how many did.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fluxon::wire::{self, Envelope};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Whether this process was started as a child (`--child <addrs> <n>`).
pub fn is_child(args: &[String]) -> bool {
    args.get(1).map(String::as_str) == Some("--child")
}

/// Runs the child: its connections, until each got its reverse request.
pub fn child_main(args: &[String]) -> anyhow::Result<()> {
    raise_file_limit()?;
    let addrs: Vec<String> = args
        .get(2)
        .context("addresses")?
        .split(',')
        .map(str::to_owned)
        .collect();
    let n: usize = args.get(3).context("count")?.parse()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(child(addrs, n))
}

/// Clients per child process.
pub const PER_CHILD: usize = 2500;

pub fn raise_file_limit() -> anyhow::Result<u64> {
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

pub fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// Child: open `n` connections, spread over `addrs` in turn, print "ready", then for each the time its first
/// reverse request arrived; print the latest and how many arrived.
async fn child(addrs: Vec<String>, n: usize) -> anyhow::Result<()> {
    let mut tasks = Vec::with_capacity(n);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n);
    // Connect a few hundred at a time, retrying briefly: a storm of thousands of SYNs at once
    // overflows the listen backlog, which is not what this measures.
    let connecting = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    for i in 0..n {
        let addr = addrs[i % addrs.len()].clone();
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
                    // The connection stays open until every client has reported: a client
                    // leaving at once would make the server close connections while others
                    // still wait for the broadcast (the raw floor reads nothing, so never does).
                    return Ok::<_, anyhow::Error>((micros_now(), framed));
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
    let mut connections = Vec::with_capacity(n);
    for task in tasks {
        let (at, connection) = task.await??;
        latest = latest.max(at);
        count += 1;
        connections.push(connection);
    }
    println!("{latest} {count}");
    std::io::stdout().flush()?;
    drop(connections);
    Ok(())
}

/// Starts `clients` clients in child processes against `addr` (several addresses: comma-separated,
/// each child's connections spread over them); returns them once all are ready.
pub fn spawn_clients(
    exe: &std::path::Path,
    addr: &str,
    clients: usize,
) -> anyhow::Result<
    Vec<(
        std::process::Child,
        std::io::Lines<BufReader<std::process::ChildStdout>>,
    )>,
> {
    let mut children = Vec::new();
    let mut remaining = clients;
    while remaining > 0 {
        let n = remaining.min(PER_CHILD);
        remaining -= n;
        let mut child = Command::new(exe)
            .args(["--child", addr, &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = BufReader::new(child.stdout.take().context("child stdout")?);
        children.push((child, stdout.lines()));
    }
    for (_, lines) in &mut children {
        let line = tokio::task::block_in_place(|| lines.next()).context("child ended early")??;
        anyhow::ensure!(line == "ready", "child said {line:?}");
    }
    Ok(children)
}

/// Waits for every child's report; the latest arrival (µs since the epoch).
pub fn collect(
    children: Vec<(
        std::process::Child,
        std::io::Lines<BufReader<std::process::ChildStdout>>,
    )>,
    clients: usize,
) -> anyhow::Result<u128> {
    let mut latest = 0u128;
    let mut count = 0usize;
    for (mut child, mut lines) in children {
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
    Ok(latest)
}
