//! Trees too large for one answer: paged within the endpoint's cap, in bounded memory, rebuilt
//! whole by the connector; walks over their bound refused with a typed error, quickly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxon::cloud::{CloudErrorCode, CloudOperation::*, ConnectorError, ItemKind};
use fluxon::Limits;

use crate::common::{grant, refusal, rss, Cloud, Raw, RawRequest, RawResponse};

/// The endpoint's default page: 100 000 items, 8 MiB.
const PAGE_ITEMS: usize = 100_000;
const PAGE_BYTES: usize = 8 << 20;
/// Memory growth allowed over one page while a tree is paged.
const MEMORY_BOUND: u64 = 64 << 20;

/// `dirs` directories of `files` empty files each under `root`, made behind the server's back
/// (on two threads: the machine has two cores).
async fn populate(root: std::path::PathBuf, dirs: usize, files: usize) -> Duration {
    let started = Instant::now();
    let makers: Vec<_> = (0..2)
        .map(|half| {
            let root = root.clone();
            tokio::task::spawn_blocking(move || {
                for d in (half..dirs).step_by(2) {
                    let dir = root.join(format!("d{d:03}"));
                    std::fs::create_dir(&dir).unwrap();
                    for f in 0..files {
                        std::fs::File::create(dir.join(format!("f{f:04}"))).unwrap();
                    }
                }
            })
        })
        .collect();
    for maker in makers {
        maker.await.unwrap();
    }
    started.elapsed()
}

/// Samples this process's resident memory until stopped; the peak.
fn sampler() -> (Arc<AtomicBool>, std::thread::JoinHandle<u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(rss()));
    let handle = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // Bounded: at most a minute of samples.
            for _ in 0..6_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                peak.fetch_max(rss(), Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(10));
            }
            peak.load(Ordering::Acquire)
        })
    };
    (stop, handle)
}

/// A temp dir in memory where there is one: making (and removing) 200 000 files on a virtual
/// disk takes from seconds to a minute, depending on what else the machine is doing.
fn fast_temp_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_of_200_000_entries_comes_page_by_page_within_the_cap_in_bounded_memory() {
    let _memory = crate::common::MEMORY.lock().await;
    let cloud = Cloud::start_in(fast_temp_dir(), fluxon::AsyncServer::new(0), |c| c).await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 20).await;
    let made = populate(cloud.folder().join("jack"), 200, 1000).await;
    let bystander = crate::bystander::start(&cloud, true).await;
    let tree_grant = grant(&conn, ReadTree, "jack").await;

    // Page after page on one connection, as the protocol says, keeping nothing but counts.
    let before = rss();
    let (stop, peak) = sampler();
    let rounds_before = bystander.calls();
    let started = Instant::now();
    let mut raw = Raw::connect(&cloud).await;
    let (mut pages, mut files, mut dirs) = (0, 0, 0);
    let (mut largest_items, mut largest_bytes) = (0, 0);
    let mut after: Option<String> = None;
    loop {
        assert!(pages < 20, "the tree ends");
        let request = RawRequest::ReadTree {
            grant: tree_grant.clone(),
            path: "jack".into(),
            after: after.clone(),
        };
        raw.request(&conn, request).await;
        let (response, bytes) = raw.response_sized().await;
        let RawResponse::Tree { items, more } = response else {
            panic!("{response:?}");
        };
        pages += 1;
        assert!(items.len() <= PAGE_ITEMS, "{} items in a page", items.len());
        assert!(bytes <= PAGE_BYTES, "a page of {bytes} bytes");
        largest_items = largest_items.max(items.len());
        largest_bytes = largest_bytes.max(bytes);
        for (path, kind, _, _) in &items {
            // Pre-order with items by name: with these names, plain text order.
            assert!(
                after.as_deref() < Some(path.as_str()),
                "{after:?} then {path}"
            );
            match kind {
                ItemKind::File => files += 1,
                ItemKind::Directory => dirs += 1,
            }
            after = Some(path.clone());
        }
        if !more {
            break;
        }
    }
    let paged = started.elapsed();
    stop.store(true, Ordering::Release);
    let grew = peak.join().unwrap().saturating_sub(before);
    let rounds_during = bystander.calls() - rounds_before;
    assert_eq!((files, dirs), (200_000, 201));
    assert!(pages >= 3, "{pages} pages");
    assert!(
        grew < PAGE_BYTES as u64 + MEMORY_BOUND,
        "memory grew by {} MiB paging the tree",
        grew >> 20
    );
    assert!(
        rounds_during >= 1,
        "the bystander was served while the tree was read"
    );

    // The connector pages by itself and rebuilds the whole tree...
    let started = Instant::now();
    let tree = connector.read_tree(&tree_grant).await.unwrap();
    let rebuilt = started.elapsed();
    assert_eq!(tree.children.len(), 200);
    assert!(tree.children.iter().all(|d| d.children.len() == 1000));
    assert_eq!(tree.files().len(), 200_000);
    drop(tree);
    // ... within the bound it accepts.
    let err = connector
        .clone()
        .max_tree_items(150_000)
        .read_tree(&tree_grant)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectorError::TreeTooLarge { limit: 150_000 }),
        "{err}"
    );
    // A stat's walk of 200 201 entries is within the default bound.
    let stat = connector
        .stat(&grant(&conn, Stat, "jack").await)
        .await
        .unwrap();
    assert_eq!(stat.size, 0);
    bystander.served_now(2).await;
    let served = bystander.finish().await;
    eprintln!(
        "200 000 files made in {made:?}; paged in {paged:?} ({pages} pages, largest {largest_items} \
         items / {} KiB), memory growth {} MiB; connector's whole tree in {rebuilt:?}; \
         bystander {rounds_during} rounds meanwhile, slowest {:?}",
        largest_bytes >> 10,
        grew >> 20,
        served.slowest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_over_its_bound_is_refused_quickly_and_pages_shrink_to_fit_it() {
    let cloud = Cloud::start_with(Limits::default(), |c| {
        c.walk_limits(1500, Duration::from_secs(5))
    })
    .await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 20).await;
    populate(cloud.folder().join("jack"), 3, 1000).await;

    let started = Instant::now();
    let (code, message) = refusal(connector.stat(&grant(&conn, Stat, "jack").await).await);
    assert_eq!(code, CloudErrorCode::TreeTooLarge, "{message}");
    assert!(message.contains("more than 1500 entries"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // One directory at a time fits: the pages are cut to the bound, the tree still arrives.
    let tree = connector
        .read_tree(&grant(&conn, ReadTree, "jack").await)
        .await
        .unwrap();
    assert_eq!(tree.files().len(), 3000);
    let g = grant(&conn, ReadTree, "jack").await;
    let mut raw = Raw::connect(&cloud).await;
    let mut after = None;
    let mut sizes = Vec::new();
    loop {
        let request = RawRequest::ReadTree {
            grant: g.clone(),
            path: "jack".into(),
            after: after.clone(),
        };
        raw.request(&conn, request).await;
        let RawResponse::Tree { items, more } = raw.response().await else {
            panic!("a page");
        };
        sizes.push(items.len());
        after = items.last().map(|item| item.0.clone());
        if !more || sizes.len() > 10 {
            break;
        }
    }
    assert_eq!(sizes, [1003, 1001, 1000]);
}
