//! Cloud storage benchmark: a 1 GiB file uploaded and downloaded through fluxon's cloud endpoint
//! against raw loopback socket copies of the same bytes, in one run, medians of several reps.
//!
//! `cargo run --release -p fluxon-bench --bin cloud [-- --reps N] [-- --mib N]`
//!
//! Contenders, each moving the same file over 127.0.0.1:
//! * fluxon upload: `CloudStorageConnector::write_path` (grant checked, permission and quota
//!   checked, streamed into a partial file, BLAKE3 on both sides, fsync, metadata row and rename).
//! * fluxon download: `read_to_path` (streamed, written to a partial file, BLAKE3 checked against
//!   the recorded one, fsync, rename).
//! * raw file copy: tokio `copy_buf` from the file into the socket, tokio `copy` from the socket
//!   into a file with 1 MiB buffers, then fsync: the same durable end state, with no protocol, no
//!   hashing and no metadata.
//! * raw file copy, threads: the same with plain blocking reads and writes on two threads and a
//!   1 MiB buffer (no runtime in the path): the stronger of the two raw file copies.
//! * raw memory copy: the socket alone, memory to memory: the ceiling of the network path, with
//!   no disk at all.
//!
//! Every transfer writes a new file and starts alike: the file the one before it wrote is deleted
//! and the disk synced first (on a virtual machine, how fast new page cache pages are depends on
//! what was freed just before; see the README's cloud section).
//!
//! Memory: the process's resident size is sampled every 10 ms during each transfer; the table
//! shows the largest growth over the size before it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fluxon::cloud::{CloudOperation, CloudStorageServer, Grant};
use fluxon::db::AsyncDatabase;
use fluxon::{view, views, AsyncServer, ConnectionHandler, OrUser, Request, Router, ViewError};
use fluxon_bench::cloud::{copy_file, copy_file_threads, copy_memory};
use fluxon_bench::stats::{median, paired_ratio, resident_bytes};

#[view]
async fn login_as(req: Request, user: i64) {
    req.login(user);
}

#[view]
async fn create_owner(req: Request, name: String) -> Result<i64, ViewError> {
    let user = req.user_id().or_user("log in first")?;
    Ok(req.cloud()?.create_owner(&name, user, u64::MAX / 2).await?)
}

#[view]
async fn grant(req: Request, (op, path): (CloudOperation, String)) -> Result<Grant, ViewError> {
    Ok(req.grant_access(op, &path)?)
}

/// Runs `transfer`, sampling resident memory meanwhile; (seconds, peak growth in bytes).
async fn measured<F, T>(transfer: F) -> anyhow::Result<(f64, u64)>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let before = resident_bytes();
    let peak = Arc::new(AtomicU64::new(before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
        std::thread::spawn(move || {
            for _ in 0..60_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                peak.fetch_max(resident_bytes(), Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let start = Instant::now();
    let result = transfer.await;
    let took = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    let _ = sampler.join();
    result?;
    Ok((took, peak.load(Ordering::Acquire).saturating_sub(before)))
}

/// Runs a blocking copy on a blocking thread.
async fn blocking(
    copy: fn(&std::path::Path, &std::path::Path) -> anyhow::Result<u64>,
    from: &std::path::Path,
    to: &std::path::Path,
) -> anyhow::Result<u64> {
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    tokio::task::spawn_blocking(move || copy(&from, &to)).await?
}

fn write_source(path: &std::path::Path, mib: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let mut block = vec![0u8; 1 << 20];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for b in block.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..mib {
        block[..8].copy_from_slice(&i.to_le_bytes());
        out.write_all(&block)?;
    }
    out.flush()?;
    out.into_inner()?.sync_all()?;
    Ok(())
}

/// Writes out what the file systems hold before the next contender starts, so that what the last
/// one left (a deleted 1 GiB file to trim, on a file system mounted with `discard` like this
/// machine's; write-back) is not paid for by the next one's fsync.
fn settle_disk() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// The contenders, in the order of the table.
const CONTENDERS: [&str; 7] = [
    "fluxon upload (write_path)",
    "fluxon download (read_to_path)",
    "raw file copy (tokio), up",
    "raw file copy (tokio), down",
    "raw file copy (threads), up",
    "raw file copy (threads), down",
    "raw memory copy",
];

/// Deletes what the last transfer wrote (the uploaded item, if it was fluxon's upload; the local
/// copies), then [`settle_disk`].
async fn forget(
    conn: &ConnectionHandler,
    connector: &fluxon::cloud::CloudStorageConnector,
    uploaded: Option<&str>,
    local: &[&std::path::Path],
) -> anyhow::Result<()> {
    for path in local {
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
            _ => {}
        }
    }
    if let Some(uploaded) = uploaded {
        let gone = conn
            .call(grant, &(CloudOperation::DeleteItem, uploaded.to_owned()))
            .await?;
        connector.delete_item(&gone).await?;
    }
    settle_disk();
    Ok(())
}

/// The most a transfer may grow the process by and still count as flat (its buffers).
const FLAT_MIB: u64 = 16;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut reps = 5usize;
    let mut mib = 1024u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--reps" => reps = args.next().context("--reps needs a value")?.parse()?,
            "--mib" => mib = args.next().context("--mib needs a value")?.parse()?,
            other => anyhow::bail!("unknown option {other}; use --reps N, --mib N"),
        }
    }
    let bytes = mib << 20;
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("source.bin");
    write_source(&source, mib)?;

    let db = AsyncDatabase::open(dir.path().join("meta.sqlite3"))?;
    let router = Router::new()
        .state(db)
        .mapping(views![login_as, create_owner, grant])?;
    let server = AsyncServer::new(0)
        .router(router)
        .cloud_storage(CloudStorageServer::new(0, dir.path().join("cloud")))
        .start()
        .await?;
    let conn = ConnectionHandler::connect(server.local_addr().to_string()).await?;
    conn.call(login_as, &1).await?;
    conn.call(create_owner, &"bench".to_owned()).await?;
    let cloud_addr = server.cloud_addr().context("no cloud endpoint")?;
    let connector = conn.cloud_connector(cloud_addr.to_string());

    println!(
        "fluxon cloud benchmark: {mib} MiB each way over 127.0.0.1, {reps} reps, medians; contenders take turns, in a rotating order"
    );
    // The file fluxon downloads, uploaded once; the raw downloads read `source`, as clean in the
    // page cache as it is.
    let down_path = "bench/down.bin".to_owned();
    let setup = conn
        .call(grant, &(CloudOperation::WriteFile, down_path.clone()))
        .await?;
    connector.write_path(&setup, &source).await?;
    // [fluxon up, fluxon down, raw file up, raw file down, threads up, threads down, raw memory]
    let mut secs: [Vec<f64>; 7] = Default::default();
    let mut grew: [u64; 7] = [0; 7];
    let landed = dir.path().join("landed.bin");
    let fetched = dir.path().join("fetched.bin");
    let up_path = "bench/up.bin".to_owned();
    // Whether the item fluxon's upload wrote is still there.
    let mut uploaded = false;
    for rep in 0..=reps {
        let mut runs = [(0.0, 0u64); 7];
        // The file contenders take turns in an order that rotates every rep. Each writes a file
        // that does not exist yet, and before each one the previous one's file is deleted and the
        // disk synced: every transfer starts with the 1 GiB its predecessor wrote just given back
        // to the kernel and nothing left to write back (on a virtual machine whose free memory
        // the host takes back, what was freed when decides how fast new pages are, so the raw
        // memory copy, which writes no file, goes last rather than in the turns).
        for turn in 0..7 {
            let contender = if turn == 6 { 6 } else { (turn + rep) % 6 };
            let last_upload = std::mem::take(&mut uploaded).then_some(up_path.as_str());
            forget(&conn, &connector, last_upload, &[&landed, &fetched]).await?;
            runs[contender] = match contender {
                0 => {
                    let up = conn
                        .call(grant, &(CloudOperation::WriteFile, up_path.clone()))
                        .await?;
                    uploaded = true;
                    measured(async { Ok(connector.write_path(&up, &source).await?.size) }).await?
                }
                1 => {
                    let down = conn
                        .call(grant, &(CloudOperation::ReadFile, down_path.clone()))
                        .await?;
                    measured(async { Ok(connector.read_to_path(&down, &fetched).await?) }).await?
                }
                2 => measured(copy_file(&source, &landed)).await?,
                3 => measured(copy_file(&source, &fetched)).await?,
                4 => measured(blocking(copy_file_threads, &source, &landed)).await?,
                5 => measured(blocking(copy_file_threads, &source, &fetched)).await?,
                _ => measured(copy_memory(bytes)).await?,
            };
        }
        eprintln!(
            "  rep {rep} (first: {}): seconds {}",
            CONTENDERS[rep % 6],
            runs.map(|(took, _)| format!("{took:.3}")).join(" ")
        );
        // Rep 0 warms up the page cache and the allocator; it is not counted.
        if rep > 0 {
            for (i, (took, growth)) in runs.into_iter().enumerate() {
                secs[i].push(took);
                grew[i] = grew[i].max(growth);
            }
        }
    }
    let last_upload = uploaded.then_some(up_path.as_str());
    forget(&conn, &connector, last_upload, &[&landed, &fetched]).await?;
    let mbps = |i: usize| bytes as f64 / 1e6 / median(&secs[i]);
    println!(
        "{:<34}{:>12}{:>12}{:>16}",
        "contender (median)", "seconds", "MB/s", "peak RSS growth"
    );
    for (i, name) in CONTENDERS.iter().enumerate() {
        println!(
            "{name:<34}{:>12.3}{:>12.0}{:>13} MiB",
            median(&secs[i]),
            mbps(i),
            grew[i] >> 20
        );
    }
    println!();
    let ratios = [
        ("upload / raw file copy (tokio)", 0, 2),
        ("download / raw file copy (tokio)", 1, 3),
        ("upload / raw file copy (threads)", 0, 4),
        ("download / raw file copy (threads)", 1, 5),
        ("upload / raw memory copy", 0, 6),
        ("download / raw memory copy", 1, 6),
    ];
    // Rates within each rep, then the median of their ratios (a rep's contenders side by side).
    let rates = |i: usize| secs[i].iter().map(|s| bytes as f64 / s).collect::<Vec<_>>();
    for (name, ours, theirs) in ratios {
        println!(
            "fluxon {name:<36}{:>6.2}x",
            paired_ratio(&rates(ours), &rates(theirs))
        );
    }
    println!("  (each ratio: the median over the reps of the ratio within a rep)");
    println!();
    println!("targets (issue #12): each way at least 0.9x the stronger raw file copy, memory flat (growth <= {FLAT_MIB} MiB):");
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    for (way, ours, tokio_raw, threads_raw) in [("upload", 0, 2, 4), ("download", 1, 3, 5)] {
        // Within each rep, against the stronger raw copy of that rep.
        let stronger: Vec<f64> = rates(tokio_raw)
            .iter()
            .zip(rates(threads_raw))
            .map(|(a, b)| a.max(b))
            .collect();
        let ratio = paired_ratio(&rates(ours), &stronger);
        let growth = grew[ours] >> 20;
        println!(
            "  {way}: {ratio:.2}x {}; growth {growth} MiB {}",
            verdict(ratio >= 0.9),
            verdict(growth <= FLAT_MIB)
        );
    }
    conn.close().await;
    server.shutdown().await;
    Ok(())
}
