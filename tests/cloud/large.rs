//! A 1 GiB file up and down, with the process's memory watched all along.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxon::cloud::CloudOperation::*;

use crate::common::{grant, pattern, rss, Cloud};

const GIB: u64 = 1 << 30;
const LIMIT: u64 = 64 << 20;

fn hash_file(path: &std::path::Path) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    let mut file = std::fs::File::open(path).unwrap();
    std::io::copy(&mut file, &mut hasher).unwrap();
    hasher.finalize()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_goes_up_and_down_in_constant_memory() {
    let _memory = crate::common::MEMORY.lock().await;
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 2 * GIB).await;

    // 1024 different 1 MiB blocks.
    let source = cloud.dir.path().join("source.bin");
    let expected = {
        let block = pattern(1 << 20, 3);
        let mut hasher = blake3::Hasher::new();
        let mut out = std::io::BufWriter::new(std::fs::File::create(&source).unwrap());
        let mut numbered = block.clone();
        for i in 0..1024u64 {
            numbered[..8].copy_from_slice(&i.to_le_bytes());
            hasher.update(&numbered);
            out.write_all(&numbered).unwrap();
        }
        out.flush().unwrap();
        hasher.finalize()
    };

    let before = rss();
    let peak = Arc::new(AtomicU64::new(before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (Arc::clone(&peak), Arc::clone(&stop));
        std::thread::spawn(move || {
            // Bounded: at most 10 minutes of samples.
            for _ in 0..30_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                peak.fetch_max(rss(), Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };

    let started = Instant::now();
    let stat = connector
        .write_path(&grant(&conn, WriteFile, "jack/big.bin").await, &source)
        .await
        .unwrap();
    let up = started.elapsed();
    assert_eq!(stat.size, GIB);
    assert_eq!(stat.blake3.unwrap(), expected.to_hex().as_str());

    let copy = cloud.dir.path().join("copy.bin");
    let started = Instant::now();
    let n = connector
        .read_to_path(&grant(&conn, ReadFile, "jack/big.bin").await, &copy)
        .await
        .unwrap();
    let down = started.elapsed();
    assert_eq!(n, GIB);

    stop.store(true, Ordering::Release);
    sampler.join().unwrap();
    let grew = peak.load(Ordering::Acquire).saturating_sub(before);
    eprintln!(
        "1 GiB: up {up:?}, down {down:?}; memory before {} MiB, peak growth {} MiB",
        before >> 20,
        grew >> 20
    );
    assert!(
        grew < LIMIT,
        "memory grew by {} MiB moving 1 GiB each way",
        grew >> 20
    );
    let copied = tokio::task::spawn_blocking(move || hash_file(&copy))
        .await
        .unwrap();
    assert_eq!(
        copied, expected,
        "the download is the upload, byte for byte"
    );
}
