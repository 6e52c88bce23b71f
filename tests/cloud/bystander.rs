//! A well-behaved user of the cloud endpoint who keeps working while a test attacks it: every
//! round asks the main port for a grant, stats its own file on the cloud port (and, if asked,
//! replaces another), and calls a view; each step must be answered within [`PROMPT`] *while*
//! the attack goes on, not only once it is over.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxon::cloud::CloudOperation::*;

use crate::common::{grant, Cloud, PATIENCE};

/// The longest one step of the bystander may take during an attack. Loopback operations take
/// milliseconds; a second leaves room for a debug build on a shared two-core machine.
pub const PROMPT: Duration = Duration::from_secs(1);

/// The owner root the bystander works in (user 99).
pub const ROOT: &str = "bystander";

pub struct Bystander {
    rounds: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Duration>,
}

/// What the bystander saw.
#[derive(Debug)]
pub struct Served {
    pub rounds: u64,
    pub slowest: Duration,
}

/// `step` within [`PROMPT`], or a panic naming it.
async fn prompt<T>(what: &str, round: u64, step: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PROMPT, step)
        .await
        .unwrap_or_else(|_| {
            panic!("bystander round {round}: {what} not answered within {PROMPT:?}")
        })
}

impl Bystander {
    /// Starts working as user 99 in its own root; with `writes`, each round also uploads.
    pub async fn start(cloud: &Cloud, writes: bool) -> Bystander {
        let (conn, connector) = cloud.owner(99, ROOT, 1 << 30).await;
        let seen = format!("{ROOT}/seen.txt");
        connector
            .write_bytes(&grant(&conn, WriteFile, &seen).await, b"seen")
            .await
            .unwrap();
        let rounds = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (rounds, stop) = (Arc::clone(&rounds), Arc::clone(&stop));
            async move {
                let mut slowest = Duration::ZERO;
                // A backstop: no test runs this long, but no loop here runs unbounded either.
                let give_up = Instant::now() + Duration::from_secs(90);
                while !stop.load(Ordering::Acquire) && Instant::now() < give_up {
                    let n = rounds.load(Ordering::Acquire);
                    let started = Instant::now();
                    let g = prompt("a stat grant", n, grant(&conn, Stat, &seen)).await;
                    let stat = prompt("a stat", n, connector.stat(&g))
                        .await
                        .unwrap_or_else(|err| panic!("bystander round {n}: stat failed: {err}"));
                    assert_eq!(stat.size, 4, "bystander round {n}: stat answered wrongly");
                    if writes {
                        let path = format!("{ROOT}/w.txt");
                        let g = prompt("a write grant", n, grant(&conn, WriteFile, &path)).await;
                        let body = n.to_le_bytes();
                        let stat = prompt("a write", n, connector.write_bytes(&g, &body))
                            .await
                            .unwrap_or_else(|e| panic!("bystander round {n}: write failed: {e}"));
                        assert_eq!(stat.size, 8);
                    }
                    let echoed: String = prompt("a call", n, conn.send_request("echo", "here"))
                        .await
                        .unwrap_or_else(|err| panic!("bystander round {n}: call failed: {err}"));
                    assert_eq!(echoed, "here");
                    slowest = slowest.max(started.elapsed());
                    rounds.fetch_add(1, Ordering::AcqRel);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                slowest
            }
        });
        Bystander { rounds, stop, task }
    }

    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Acquire)
    }

    /// Waits until `more` further rounds are done: proof the bystander is served right now.
    pub async fn served_now(&self, more: u64) {
        let target = self.rounds() + more;
        let deadline = Instant::now() + PATIENCE;
        while self.rounds() < target {
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

    pub async fn finish(self) -> Served {
        self.stop.store(true, Ordering::Release);
        let slowest = match self.task.await {
            Ok(slowest) => slowest,
            Err(err) => std::panic::resume_unwind(err.into_panic()),
        };
        Served {
            rounds: self.rounds.load(Ordering::Acquire),
            slowest,
        }
    }
}
