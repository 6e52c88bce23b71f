//! What the attack tests of several test binaries share: a well-behaved client that keeps calling
//! during an attack ([`Bystander`]), this process's memory, and bounded waiting. Included with
//! `#[path = "../support/mod.rs"] mod support;`.
//!
//! The bystander calls the view named `add` with `(i64, i64)` and expects the sum: every binary
//! that uses it serves such a view.

#![allow(dead_code)] // each binary uses a part

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fluxon::ConnectionHandler;

/// Upper bound for anything a test waits on.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The longest one call of the well-behaved client may take while the server is under attack.
/// Loopback calls take well under a millisecond; a second leaves room for a debug build on a
/// shared two-core machine, and is still far below what a stalled reader or runtime would cost.
pub const PROMPT: Duration = Duration::from_secs(1);

/// A well-behaved client doing one round of work after another (by default: calling `add` and
/// checking the sum) until [`finish`](Bystander::finish). A wrong, failed or late round panics,
/// and `finish` re-raises it.
pub struct Bystander {
    conn: Option<ConnectionHandler>,
    rounds: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    latencies: Arc<Mutex<Vec<Duration>>>,
    task: tokio::task::JoinHandle<Duration>,
}

/// What the bystander saw.
#[derive(Debug)]
pub struct Served {
    /// Rounds done (for the default bystander: calls answered).
    pub calls: u64,
    /// The slowest round.
    pub slowest: Duration,
    /// The 99th percentile of its rounds' times.
    pub p99: Duration,
}

impl Bystander {
    /// A bystander calling `add` on its own connection to `addr`.
    pub async fn connect(addr: &str) -> Bystander {
        let conn = ConnectionHandler::connect(addr)
            .await
            .expect("the bystander connects");
        Bystander::with(conn)
    }

    /// A bystander calling `add` over `conn`, each call within [`PROMPT`].
    pub fn with(conn: ConnectionHandler) -> Bystander {
        let caller = conn.clone();
        let mut bystander = Bystander::rounds(PROMPT, move |round| {
            let conn = caller.clone();
            async move {
                let n = round as i64;
                let got: i64 = conn
                    .send_request("add", &(n, 1))
                    .await
                    .unwrap_or_else(|err| panic!("call {n} failed: {err}"));
                assert_eq!(got, n + 1, "call {n} answered wrongly");
            }
        });
        bystander.conn = Some(conn);
        bystander
    }

    /// A bystander doing `round(n)` for n = 0, 1, ... a few milliseconds apart, each within
    /// `bound` (or it panics).
    pub fn rounds<F, Fut>(bound: Duration, mut round: F) -> Bystander
    where
        F: FnMut(u64) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let rounds = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let (rounds, stop, latencies) = (
                Arc::clone(&rounds),
                Arc::clone(&stop),
                Arc::clone(&latencies),
            );
            async move {
                let mut slowest = Duration::ZERO;
                // A backstop: no test runs this long, but no loop here runs unbounded either.
                let give_up = Instant::now() + Duration::from_secs(120);
                while !stop.load(Ordering::Acquire) && Instant::now() < give_up {
                    let n = rounds.load(Ordering::Acquire);
                    let started = Instant::now();
                    tokio::time::timeout(bound, round(n))
                        .await
                        .unwrap_or_else(|_| panic!("round {n} not done within {bound:?}"));
                    let took = started.elapsed();
                    slowest = slowest.max(took);
                    if let Ok(mut all) = latencies.lock() {
                        all.push(took);
                    }
                    rounds.fetch_add(1, Ordering::AcqRel);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                slowest
            }
        });
        Bystander {
            conn: None,
            rounds,
            stop,
            latencies,
            task,
        }
    }

    /// Rounds done so far.
    pub fn calls(&self) -> u64 {
        self.rounds.load(Ordering::Acquire)
    }

    /// Waits until the bystander has done `more` further rounds: proof that it is served at this
    /// very moment.
    pub async fn served_now(&self, more: u64) {
        let target = self.calls() + more;
        let deadline = Instant::now() + PATIENCE;
        while self.calls() < target {
            assert!(
                !self.task.is_finished(),
                "the bystander stopped (its panic follows in finish)"
            );
            assert!(
                Instant::now() < deadline,
                "the bystander is not being served"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops; what it saw. Panics if a round failed, and (for a bystander with a connection) if
    /// that connection was ever dropped.
    pub async fn finish(self) -> Served {
        self.stop.store(true, Ordering::Release);
        let slowest = match self.task.await {
            Ok(slowest) => slowest,
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        };
        if let Some(conn) = &self.conn {
            assert_eq!(conn.connect_count(), 1, "the bystander was never dropped");
            conn.close().await;
        }
        let mut all = self.latencies.lock().map(|l| l.clone()).unwrap_or_default();
        all.sort();
        let p99 = all
            .get((all.len() * 99 / 100).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default();
        Served {
            calls: self.rounds.load(Ordering::Acquire),
            slowest,
            p99,
        }
    }
}

/// A field of `/proc/self/status`, in bytes.
pub fn proc_status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a number of kB");
    kib * 1024
}

/// This process's resident memory: the server runs in it.
pub fn rss() -> u64 {
    proc_status_bytes("VmRSS:")
}

/// Bytes in MiB, for messages.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Samples this process's resident memory every few milliseconds until stopped; the highest seen.
pub struct PeakRss {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl PeakRss {
    /// Starts sampling.
    pub fn start() -> PeakRss {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = Arc::clone(&stop);
            async move {
                let mut peak = rss();
                let give_up = Instant::now() + Duration::from_secs(300);
                while !stop.load(Ordering::Acquire) && Instant::now() < give_up {
                    peak = peak.max(rss());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                peak.max(rss())
            }
        });
        PeakRss { stop, task }
    }

    /// Stops; the highest resident memory seen.
    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("the sampler does not panic")
    }
}

/// Polls `done` every few milliseconds until it holds, failing after `within`.
pub async fn eventually(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
