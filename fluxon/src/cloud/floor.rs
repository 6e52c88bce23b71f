//! The rate floor of a transfer: a file's bytes must keep moving at a minimum average rate over
//! a sliding window, or the transfer is cut. The idle timeout alone lets a peer hold a
//! connection slot, a blocking thread and a path's write lock forever by sending one byte just
//! before each timeout; the floor makes such a trickle end within about one window.
//!
//! A [`Pace`] is fed the running byte count as the transfer moves and asked, at every chunk
//! and on a timer while a read or write waits, whether the bytes of the last window reach
//! `bytes_per_sec × window`. The first window after the start is never judged (a TCP window
//! takes a moment to open), so a transfer that ends quickly is never cut.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The least a transfer must move: `bytes_per_sec` on average over every `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateFloor {
    pub bytes_per_sec: u64,
    pub window: Duration,
}

impl RateFloor {
    /// The bytes a window must hold.
    fn per_window(&self) -> u64 {
        let bytes = u128::from(self.bytes_per_sec) * self.window.as_millis() / 1000;
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }
}

/// A transfer cut for going slower than its floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "{moved} bytes in the last {window:?}, under the minimum of {bytes_per_sec} bytes a second"
)]
pub(crate) struct TooSlow {
    /// Bytes moved in the last window.
    pub moved: u64,
    pub window: Duration,
    pub bytes_per_sec: u64,
}

/// How many samples a window keeps: the window's start is known to a sixteenth of it.
const SAMPLES: u32 = 16;

/// One transfer's progress against its floor.
#[derive(Debug)]
pub(crate) struct Pace {
    floor: RateFloor,
    started: Instant,
    /// `(when, bytes moved by then)`, oldest first; at most one per `window / SAMPLES`.
    samples: VecDeque<(Instant, u64)>,
    moved: u64,
}

impl Pace {
    /// Starts judging a transfer now; `None` without a floor.
    pub fn start(floor: Option<RateFloor>) -> Option<Pace> {
        let floor = floor.filter(|f| f.bytes_per_sec > 0 && !f.window.is_zero())?;
        let now = Instant::now();
        Some(Pace {
            floor,
            started: now,
            samples: VecDeque::from([(now, 0)]),
            moved: 0,
        })
    }

    /// How often to look while a read or write waits: often enough that a stalled transfer is
    /// cut within a few percent of a window past the moment it falls under.
    pub fn tick(&self) -> Duration {
        (self.floor.window / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    /// The transfer has moved `moved` bytes in all.
    pub fn moved(&mut self, moved: u64, now: Instant) {
        self.moved = moved;
        let step = self.floor.window / SAMPLES;
        let due = self
            .samples
            .back()
            .is_none_or(|&(at, _)| now.saturating_duration_since(at) >= step);
        if due {
            self.samples.push_back((now, moved));
        }
        self.forget(now);
    }

    /// Drops samples no window will start from again, keeping the newest one at least a window
    /// old: the base the window's bytes are counted from.
    fn forget(&mut self, now: Instant) {
        let Some(cut) = now.checked_sub(self.floor.window) else {
            return;
        };
        while self.samples.len() > 1 && self.samples.get(1).is_some_and(|&(at, _)| at <= cut) {
            self.samples.pop_front();
        }
    }

    /// `Err` if the last window moved less than the floor asks.
    pub fn check(&mut self, now: Instant) -> Result<(), TooSlow> {
        if now.saturating_duration_since(self.started) < self.floor.window {
            return Ok(());
        }
        self.forget(now);
        let base = self.samples.front().map_or(0, |&(_, moved)| moved);
        let moved = self.moved.saturating_sub(base);
        if moved < self.floor.per_window() {
            return Err(TooSlow {
                moved,
                window: self.floor.window,
                bytes_per_sec: self.floor.bytes_per_sec,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floor() -> RateFloor {
        RateFloor {
            bytes_per_sec: 1000,
            window: Duration::from_secs(10),
        }
    }

    #[test]
    fn no_floor_no_pace() {
        assert!(Pace::start(None).is_none());
        let off = RateFloor {
            bytes_per_sec: 0,
            ..floor()
        };
        assert!(Pace::start(Some(off)).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_transfer_passes_and_a_trickle_is_cut_about_a_window_after_it_slows() {
        let mut pace = Pace::start(Some(floor())).unwrap();
        let start = Instant::now();
        // 2000 bytes a second for 30 s: always over the floor.
        for s in 1..=30u64 {
            let now = start + Duration::from_secs(s);
            pace.moved(s * 2000, now);
            pace.check(now).unwrap();
        }
        // Then a byte a second.
        let mut cut = None;
        for s in 31..=60u64 {
            let now = start + Duration::from_secs(s);
            pace.moved(60_000 + (s - 30), now);
            if let Err(slow) = pace.check(now) {
                cut = Some((s, slow));
                break;
            }
        }
        let (at, slow) = cut.expect("the trickle is cut");
        // 10 s windows: from second 36 the last window holds under 10 000 bytes.
        assert!((35..=37).contains(&at), "cut at {at}");
        assert!(slow.moved < 10_000, "{slow}");
        assert!(slow.to_string().contains("1000 bytes a second"), "{slow}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_byte_every_twenty_seconds_is_cut_at_the_default_window() {
        let floor = RateFloor {
            bytes_per_sec: 16 * 1024,
            window: Duration::from_secs(30),
        };
        let mut pace = Pace::start(Some(floor)).unwrap();
        let start = Instant::now();
        let mut cut = None;
        // Checked on every tick, as a waiting read is; a byte arrives every 20 s.
        let mut now = start;
        while now < start + Duration::from_secs(120) {
            now += pace.tick();
            let moved = now.duration_since(start).as_secs() / 20;
            pace.moved(moved, now);
            if pace.check(now).is_err() {
                cut = Some(now.duration_since(start));
                break;
            }
        }
        let cut = cut.expect("the trickle is cut");
        assert!(cut <= Duration::from_secs(31), "cut after {cut:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_window_is_not_judged_and_silence_is_cut_at_the_window() {
        let mut pace = Pace::start(Some(floor())).unwrap();
        let start = Instant::now();
        pace.check(start + Duration::from_secs(9)).unwrap();
        assert!(pace.check(start + Duration::from_secs(10)).is_err());
        assert!(pace.tick() <= Duration::from_secs(1));
    }
}
