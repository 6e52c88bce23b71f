//! Timers kept off the runtime: the long timeouts that sit beside every connection (a server
//! connection's idle check, a client's keepalive and its calls' deadlines, the periodic sweeps)
//! wait on one thread of their own instead of in tokio's timer wheel.
//!
//! While any timer is in tokio's wheel, every park of a worker looks for the next expiry and
//! parks with a timeout: about 350 instructions a park (callgrind: the raw echo of the rpc
//! benchmark costs 7,186 instructions a sequential call, and 7,540 with one 30 s sleep
//! registered beside it), and a sequential call parks twice. These timeouts are seconds long and
//! almost never fire while calls flow; here they cost nothing until one is set, reset or fires.
//!
//! One thread serves the process: it sleeps on a condition variable until the earliest deadline,
//! marks what is due as fired and wakes its task. Precision is the thread's wake-up latency (well
//! under a millisecond on an idle machine), enough for timeouts of tens of milliseconds and up.
//! Time is the real clock: tokio's paused test clock does not move these timers.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

/// One timer's shared half: fired once its deadline passed, and the task to wake.
#[derive(Default)]
struct Entry {
    fired: AtomicBool,
    waker: AtomicWaker,
}

/// The timers waiting, by deadline (ties broken by a serial number).
#[derive(Default)]
struct Waiting {
    due: BTreeMap<(Instant, u64), Arc<Entry>>,
    /// When the thread will look next; `None` while it waits for a first timer.
    wakes_at: Option<Instant>,
}

struct Timers {
    waiting: Mutex<Waiting>,
    changed: Condvar,
    serial: AtomicU64,
}

impl Timers {
    /// The process's timers, their thread started on first use.
    fn get() -> &'static Timers {
        static TIMERS: OnceLock<&'static Timers> = OnceLock::new();
        TIMERS.get_or_init(|| {
            let timers: &'static Timers = Box::leak(Box::new(Timers {
                waiting: Mutex::new(Waiting::default()),
                changed: Condvar::new(),
                serial: AtomicU64::new(0),
            }));
            let started = std::thread::Builder::new()
                .name("fluxon-timers".to_owned())
                .spawn(move || timers.run());
            if let Err(err) = started {
                // Nothing can fire without the thread: say so loudly, once. Timers still
                // register, so a later poll never panics; their deadlines pass unnoticed.
                tracing::error!(%err, "cannot start the timer thread; timeouts will not fire");
            }
            timers
        })
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        // Nothing is left half-done under this lock: a poisoned one is still consistent.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `entry` at `deadline`; returns its key.
    fn insert(
        &self,
        waiting: &mut Waiting,
        deadline: Instant,
        entry: &Arc<Entry>,
    ) -> (Instant, u64) {
        let key = (deadline, self.serial.fetch_add(1, Ordering::Relaxed));
        waiting.due.insert(key, Arc::clone(entry));
        if waiting.wakes_at.is_none_or(|at| deadline < at) {
            self.changed.notify_one();
        }
        key
    }

    /// The thread: fires what is due, then sleeps until the next deadline or a change.
    fn run(&self) {
        let mut waiting = self.lock();
        loop {
            let now = Instant::now();
            let mut fired = Vec::new();
            while let Some(entry) = waiting.due.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                let entry = entry.remove();
                // Under the lock, so a reset (which clears it under the lock) is never undone.
                entry.fired.store(true, Ordering::Release);
                fired.push(entry);
            }
            let next = waiting.due.first_key_value().map(|(key, _)| key.0);
            waiting.wakes_at = next;
            if !fired.is_empty() {
                drop(waiting);
                for entry in fired {
                    entry.waker.wake();
                }
                waiting = self.lock();
                continue;
            }
            waiting = match next {
                None => self
                    .changed
                    .wait(waiting)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(at) => {
                    self.changed
                        .wait_timeout(waiting, at.saturating_duration_since(now))
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

/// A future done at its deadline; [`reset`](Sleep::reset) moves the deadline. Dropping it
/// removes the timer.
pub(crate) struct Sleep {
    entry: Arc<Entry>,
    /// The key in the thread's map while the timer waits there.
    key: Option<(Instant, u64)>,
}

/// Done at `deadline`.
pub(crate) fn sleep_until(deadline: tokio::time::Instant) -> Sleep {
    let entry = Arc::new(Entry::default());
    let timers = Timers::get();
    let key = timers.insert(&mut timers.lock(), deadline.into_std(), &entry);
    Sleep {
        entry,
        key: Some(key),
    }
}

/// Done `duration` from now.
pub(crate) fn sleep(duration: Duration) -> Sleep {
    sleep_until(after(tokio::time::Instant::now(), duration))
}

/// `duration` after `from`, or some thirty years on when that is past what an instant can hold
/// (a timeout of `Duration::MAX` means never, and must not overflow).
pub(crate) fn after(from: tokio::time::Instant, duration: Duration) -> tokio::time::Instant {
    from.checked_add(duration)
        .unwrap_or_else(|| from + Duration::from_secs(30 * 365 * 86_400))
}

impl Sleep {
    /// Whether the deadline has passed (one atomic load).
    pub fn is_elapsed(&self) -> bool {
        self.entry.fired.load(Ordering::Acquire)
    }

    /// Moves the deadline (earlier or later), and makes the timer wait again if it had fired.
    pub fn reset(&mut self, deadline: tokio::time::Instant) {
        let timers = Timers::get();
        let mut waiting = timers.lock();
        if let Some(key) = self.key.take() {
            waiting.due.remove(&key);
        }
        self.entry.fired.store(false, Ordering::Release);
        self.key = Some(timers.insert(&mut waiting, deadline.into_std(), &self.entry));
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_elapsed() {
            return Poll::Ready(());
        }
        self.entry.waker.register(cx.waker());
        // Looked at again after registering: a firing in between is never missed.
        if self.is_elapsed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            if !self.is_elapsed() {
                Timers::get().lock().due.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant as TokioInstant;

    fn waiting_with(key: (Instant, u64)) -> bool {
        Timers::get().lock().due.contains_key(&key)
    }

    #[tokio::test]
    async fn fires_at_its_deadline_and_not_before() {
        let start = Instant::now();
        let mut sleep = sleep(Duration::from_millis(60));
        assert!(!sleep.is_elapsed());
        let early = tokio::time::timeout(Duration::from_millis(20), &mut sleep).await;
        assert!(early.is_err(), "done before its deadline");
        tokio::time::timeout(Duration::from_secs(5), &mut sleep)
            .await
            .expect("fired");
        assert!(sleep.is_elapsed());
        assert!(start.elapsed() >= Duration::from_millis(60));
    }

    #[tokio::test]
    async fn a_reset_moves_the_deadline_both_ways_and_rearms_a_fired_timer() {
        let mut sleep = sleep(Duration::from_secs(3600));
        sleep.reset(TokioInstant::now() + Duration::from_millis(30));
        tokio::time::timeout(Duration::from_secs(5), &mut sleep)
            .await
            .expect("an earlier deadline fires");
        sleep.reset(TokioInstant::now() + Duration::from_millis(80));
        assert!(!sleep.is_elapsed(), "waits again after a reset");
        let early = tokio::time::timeout(Duration::from_millis(30), &mut sleep).await;
        assert!(early.is_err());
        tokio::time::timeout(Duration::from_secs(5), &mut sleep)
            .await
            .expect("fired again");
    }

    #[tokio::test]
    async fn many_timers_fire_each_once_and_a_dropped_one_leaves_nothing() {
        let now = TokioInstant::now();
        let sleeps: Vec<Sleep> = (0..50u64)
            .map(|i| sleep_until(now + Duration::from_millis(10 + i)))
            .collect();
        let dropped = sleep(Duration::from_secs(3600));
        let key = dropped.key.expect("waiting");
        assert!(waiting_with(key));
        drop(dropped);
        assert!(!waiting_with(key), "a dropped timer is removed");
        let all = futures_util::future::join_all(sleeps);
        tokio::time::timeout(Duration::from_secs(5), all)
            .await
            .expect("every timer fired");
    }

    #[tokio::test]
    async fn a_timeout_too_long_for_an_instant_means_never() {
        let mut never = sleep(Duration::MAX);
        let now = TokioInstant::now();
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(365 * 86_400));
        let early = tokio::time::timeout(Duration::from_millis(20), &mut never).await;
        assert!(early.is_err());
        never.reset(after(now, Duration::MAX));
        assert!(!never.is_elapsed());
    }

    #[test]
    fn wakes_a_task_on_another_runtime_thread() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let done = runtime.block_on(async {
            let task = tokio::spawn(sleep(Duration::from_millis(20)));
            tokio::time::timeout(Duration::from_secs(5), task).await
        });
        assert!(matches!(done, Ok(Ok(()))));
    }
}
