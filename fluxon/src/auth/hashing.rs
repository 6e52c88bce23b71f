//! Password hashing off the runtime, bounded: [`PasswordHasher`].
//!
//! An argon2id hash (the [`Password`] default: 19 MiB of memory, two passes) takes tens of
//! milliseconds of one core and 19 MiB while it runs. Run unbounded, a few hundred logins in flight
//! take gigabytes and every core; run on a runtime worker, each one stalls every connection on that
//! worker. Here every hash runs on a thread of the hasher's own, at most a fixed number at once
//! server-wide (shared by hashing and verifying), and at most a few at once for one peer address,
//! so one peer cannot queue the whole server behind its attempts. A hash that cannot start within a
//! short wait fails with [`HashError::Busy`] rather than pile up.
//!
//! Threads of its own rather than tokio's blocking pool: the allocator keeps a freed 19 MiB block
//! with the thread that used it, so hashes spread over the blocking pool's hundreds of threads
//! would keep hundreds of them resident. A fixed set of threads keeps the memory at the bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::db::password::Memory;
use crate::db::Password;

/// Why a hash was not computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// Every hashing slot (server-wide, or this peer's) stayed taken for the whole wait.
    #[error("the server is busy hashing passwords; try again shortly (waited {waited:?})")]
    Busy {
        /// How long it waited for a slot.
        waited: Duration,
    },
    /// The hash itself failed (no randomness, a task that died).
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Runs password hashes on the blocking pool, a bounded number at once. Cheap to clone; clones
/// share the bound. A server makes one from its
/// [`LoginLimits`](crate::LoginLimits); views reach it with
/// [`Request::hash_password`](crate::Request::hash_password) and
/// [`ServerHandle::password_hasher`](crate::ServerHandle::password_hasher).
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    slots: Arc<Semaphore>,
    max: usize,
    per_peer: Option<usize>,
    peers: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
    wait: Duration,
    /// Hashes for the hasher's threads (at most `max` wait or run: each holds a slot).
    jobs: crossbeam_channel::Sender<Job>,
    queue: crossbeam_channel::Receiver<Job>,
    /// Threads started so far (started as they are first needed, up to `max`).
    threads: Arc<std::sync::atomic::AtomicUsize>,
}

/// A hash to compute on a hashing thread, with the thread's argon2 work space.
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("max_concurrent", &self.inner.max)
            .field("per_peer", &self.inner.per_peer)
            .field("wait", &self.inner.wait)
            .finish()
    }
}

/// The number of hashes a server runs at once by default: two per core.
pub fn default_concurrent_hashes() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

/// A hash being computed: its slots go back when it is done.
struct Slot {
    _global: OwnedSemaphorePermit,
    _peer: Option<PeerSlot>,
}

struct PeerSlot {
    inner: Arc<Inner>,
    ip: IpAddr,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut peers = lock(&self.inner.peers);
        drop(self.permit.take());
        // The map's own handle is the only one left: nobody of this peer holds or waits.
        if peers
            .get(&self.ip)
            .is_some_and(|sem| Arc::strong_count(sem) == 1)
        {
            peers.remove(&self.ip);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is one map operation: a poisoned lock holds consistent data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PasswordHasher {
    /// At most `max_concurrent` hashes at once (at least one), at most `per_peer` of them for one
    /// peer address, each waiting at most `wait` to start.
    pub fn new(max_concurrent: usize, per_peer: Option<usize>, wait: Duration) -> Self {
        let max = max_concurrent.max(1);
        let (jobs, queue) = crossbeam_channel::unbounded();
        PasswordHasher {
            inner: Arc::new(Inner {
                slots: Arc::new(Semaphore::new(max)),
                max,
                per_peer: per_peer.map(|n| n.max(1)),
                peers: Mutex::new(HashMap::new()),
                wait,
                jobs,
                queue,
                threads: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            }),
        }
    }

    /// Starts one more hashing thread if fewer than `max` run; they end when the hasher goes.
    fn grow(&self) -> Result<(), HashError> {
        use std::sync::atomic::Ordering;
        let inner = &self.inner;
        let started = inner.threads.load(Ordering::Acquire);
        if started >= inner.max
            || inner
                .threads
                .compare_exchange(started, started + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return Ok(());
        }
        let queue = inner.queue.clone();
        let threads = Arc::clone(&inner.threads);
        std::thread::Builder::new()
            .name(format!("fluxon-hash-{started}"))
            .spawn(move || {
                /// A thread that ends (the hasher dropped, or a hash panicked) makes room for
                /// another.
                struct Leaving(Arc<std::sync::atomic::AtomicUsize>);
                impl Drop for Leaving {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                    }
                }
                let _leaving = Leaving(threads);
                // One work space for every hash this thread computes (19 MiB, allocated once).
                let mut memory = Memory::new();
                while let Ok(job) = queue.recv() {
                    job(&mut memory);
                }
            })
            .map(drop)
            .map_err(|e| {
                inner.threads.fetch_sub(1, Ordering::AcqRel);
                HashError::Failed(format!("cannot start a hashing thread: {e}"))
            })
    }

    /// Hashes `plain` with argon2id and a fresh salt, off the runtime's threads.
    ///
    /// # Errors
    /// [`HashError::Busy`] when no slot freed up within the wait; [`HashError::Failed`] if the
    /// hash itself failed.
    ///
    /// # Cancel safety
    /// Cancel safe: a hash that has started finishes on its thread, and its slot is given back.
    pub async fn hash(&self, plain: &str) -> Result<Password, HashError> {
        self.hash_for(None, plain).await
    }

    /// Whether `plain` is the password `hash` holds, checked off the runtime's threads.
    ///
    /// # Errors
    /// As [`hash`](Self::hash).
    pub async fn verify(&self, hash: &Password, plain: &str) -> Result<bool, HashError> {
        self.verify_for(None, hash, plain).await
    }

    /// [`hash`](Self::hash), counted against `peer`'s share of the slots.
    pub(crate) async fn hash_for(
        &self,
        peer: Option<IpAddr>,
        plain: &str,
    ) -> Result<Password, HashError> {
        let plain = zeroize::Zeroizing::new(plain.to_owned());
        self.run(peer, move |memory| Password::hash_in(&plain, memory))
            .await?
            .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// [`verify`](Self::verify), counted against `peer`'s share of the slots.
    pub(crate) async fn verify_for(
        &self,
        peer: Option<IpAddr>,
        hash: &Password,
        plain: &str,
    ) -> Result<bool, HashError> {
        let plain = zeroize::Zeroizing::new(plain.to_owned());
        let hash = hash.clone();
        self.run(peer, move |memory| hash.verify_in(&plain, memory))
            .await
    }

    /// Runs `work` on a hashing thread once a slot is free.
    async fn run<T: Send + 'static>(
        &self,
        peer: Option<IpAddr>,
        work: impl FnOnce(&mut Memory) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let slot = self.slot(peer).await?;
        self.grow()?;
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |memory| {
            let out = work(memory);
            drop(slot);
            let _ = done.send(out);
        });
        self.inner
            .jobs
            .send(job)
            .map_err(|_| HashError::Failed("the hashing threads are gone".to_owned()))?;
        result
            .await
            .map_err(|_| HashError::Failed("a hash did not finish (it panicked)".to_owned()))
    }

    /// A free slot (the peer's first, then the server's), within the wait.
    async fn slot(&self, peer: Option<IpAddr>) -> Result<Slot, HashError> {
        let inner = &self.inner;
        let started = tokio::time::Instant::now();
        let deadline = started + inner.wait;
        let busy = || HashError::Busy {
            waited: started.elapsed(),
        };
        let peer_slot = match (peer, inner.per_peer) {
            (Some(ip), Some(max)) => {
                let semaphore = Arc::clone(
                    lock(&inner.peers)
                        .entry(ip)
                        .or_insert_with(|| Arc::new(Semaphore::new(max))),
                );
                let mut slot = PeerSlot {
                    inner: Arc::clone(inner),
                    ip,
                    permit: None,
                };
                let acquired = tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await;
                match acquired {
                    Ok(Ok(permit)) => slot.permit = Some(permit),
                    // The slot's drop tidies the map either way.
                    _ => return Err(busy()),
                }
                Some(slot)
            }
            _ => None,
        };
        let global = tokio::time::timeout_at(deadline, Arc::clone(&inner.slots).acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| busy())?;
        Ok(Slot {
            _global: global,
            _peer: peer_slot,
        })
    }

    /// Hashes running or waiting for a peer slot now (for tests and figures).
    pub fn running(&self) -> usize {
        self.inner.max - self.inner.slots.available_permits()
    }

    /// The most hashes run at once.
    pub fn max_concurrent(&self) -> usize {
        self.inner.max
    }

    /// Peers with a hash running or waiting now.
    #[cfg(test)]
    pub(crate) fn peers_waiting(&self) -> usize {
        lock(&self.inner.peers).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_verify_and_the_bound_turns_the_rest_away_busy() {
        let hasher = PasswordHasher::new(1, Some(1), Duration::from_millis(1));
        let password = hasher.hash("correct horse").await.unwrap();
        assert!(hasher.verify(&password, "correct horse").await.unwrap());
        assert!(!hasher.verify(&password, "wrong").await.unwrap());
        // One slot: of several at once, some are busy, none runs beside another.
        let peer: IpAddr = "127.0.0.2".parse().unwrap();
        let attempts: Vec<_> = (0..6)
            .map(|_| {
                let hasher = hasher.clone();
                let password = password.clone();
                tokio::spawn(async move { hasher.verify_for(Some(peer), &password, "x").await })
            })
            .collect();
        let mut busy = 0;
        for attempt in attempts {
            match attempt.await.unwrap() {
                Ok(ok) => assert!(!ok),
                Err(HashError::Busy { .. }) => busy += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert!(busy >= 4, "{busy} of 6 busy with one slot and a 1 ms wait");
        assert_eq!(hasher.running(), 0);
        assert_eq!(hasher.peers_waiting(), 0, "the peer's entry is gone");
    }
}
