//! The outgoing queue of one connection: frames encoded straight into a shared buffer, bounded in
//! bytes, and a writer task that writes whatever has accumulated with one system call.
//!
//! Compared with a channel of encoded frames, nothing is allocated per frame (the envelope is
//! written into the buffer in place and the writer swaps between two buffers), and the bound is on
//! memory rather than on a count of frames of any size.
//!
//! On the server, what a connection holds beyond its allowance (queued and being written) is also
//! paid for from the server-wide [`Budget`]: a frame that finds the budget spent waits (`send`) or
//! is refused as `Full` (`try_send`), and what is written is given back.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::{Budget, Framed};

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    /// The connection is closing or gone.
    Closed,
    /// The queue is over its limit (only from [`Outbox::try_send`]).
    Full,
    /// The frame's body is this many bytes, over the peer's limit; nothing was queued.
    TooLarge(usize),
}

struct State {
    buf: BytesMut,
    closed: bool,
    /// The writer task has bytes in flight: nobody else may write to the socket.
    writing: bool,
    /// How many bytes the writer has in flight (still in memory until written).
    writing_len: usize,
    /// Bytes taken from the budget for what this queue holds beyond its allowance.
    charged: usize,
    /// Deferred frames are queued that the writer was not woken for (a flush is due).
    unwoken: bool,
}

/// How a frame is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Queued; the writer task is woken if it was idle.
    Wake,
    /// Written to the socket here if nothing else is queued or being written; the rest queued.
    Direct,
    /// Queued without waking the writer: the sender flushes after its batch.
    Defer,
    /// Queued past the limit and the budget (a small control frame).
    Forced,
}

/// The largest frame [`Outbox::try_send_direct`] encodes in its thread's scratch buffer (larger
/// ones are encoded in the queue itself).
const SCRATCH_MAX: usize = 64 * 1024;

/// What [`Outbox::write_through`] did with a frame.
enum Through {
    /// The socket took all of it.
    Written,
    /// The socket took part (or none) of it; the rest is queued for the writer task.
    Left,
    /// Too large to go through the scratch buffer: it is queued, unwritten and not yet paid for.
    Queued,
}

/// The server-wide budget a queue pays from, and what it may hold without paying.
struct Paying {
    budget: Arc<Budget>,
    allowance: usize,
}

/// A socket half that can be written without waiting, from any thread.
pub(crate) trait DirectWrite: Send + Sync {
    /// Writes what the socket takes now (`WouldBlock` when it takes nothing).
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize>;

    /// Loads what a write touches first into the cache; returns a number that depends on it.
    fn warm(&self) -> usize;
}

impl DirectWrite for tokio::net::tcp::OwnedWriteHalf {
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        tokio::net::tcp::OwnedWriteHalf::try_write(self, buf)
    }

    fn warm(&self) -> usize {
        use std::os::fd::AsRawFd;
        let stream: &tokio::net::TcpStream = self.as_ref();
        usize::try_from(stream.as_raw_fd()).unwrap_or(0)
    }
}

/// A write half shared by the writer task and senders that write directly.
pub(crate) struct SharedWriteHalf(pub Arc<tokio::net::tcp::OwnedWriteHalf>);

impl AsyncWrite for SharedWriteHalf {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let stream: &tokio::net::TcpStream = (*self.0).as_ref();
        loop {
            std::task::ready!(stream.poll_write_ready(cx))?;
            match stream.try_write(buf) {
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                other => return std::task::Poll::Ready(other),
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    /// The write side is shut down when the last handle on it is dropped.
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// A connection's outgoing frames.
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer when the buffer stops being empty, or on close.
    wake: Notify,
    /// Wakes senders waiting for the buffer to drain below the limit.
    space: Notify,
    limit: usize,
    max_frame: usize,
    /// The socket, for senders that write directly when the queue is idle.
    direct: std::sync::OnceLock<Arc<dyn DirectWrite>>,
    paying: Option<Paying>,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if let Some(paying) = &self.paying {
            let state = self
                .state
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            paying.budget.give(state.charged);
        }
    }
}

impl Outbox {
    /// A queue that makes senders wait once `limit` bytes are queued, and refuses frames whose body
    /// is over `max_frame` (the peer's limit).
    pub fn new(limit: usize, max_frame: usize) -> Arc<Self> {
        Self::build(limit, max_frame, None)
    }

    /// Like [`new`](Self::new), paying from `budget` for whatever it holds beyond `allowance`.
    pub fn paying(
        limit: usize,
        max_frame: usize,
        budget: Arc<Budget>,
        allowance: usize,
    ) -> Arc<Self> {
        Self::build(limit, max_frame, Some(Paying { budget, allowance }))
    }

    fn build(limit: usize, max_frame: usize, paying: Option<Paying>) -> Arc<Self> {
        Arc::new(Outbox {
            state: Mutex::new(State {
                buf: BytesMut::new(),
                closed: false,
                writing: false,
                writing_len: 0,
                charged: 0,
                unwoken: false,
            }),
            wake: Notify::new(),
            space: Notify::new(),
            limit,
            max_frame,
            direct: std::sync::OnceLock::new(),
            paying,
        })
    }

    /// Brings what the queue has paid in line with what it holds: takes more from the budget
    /// (`false` if the budget does not have it; nothing changes then) or gives back the surplus.
    fn settle(&self, state: &mut State) -> bool {
        let Some(paying) = &self.paying else {
            return true;
        };
        let held = state.buf.len() + state.writing_len;
        let owed = held.saturating_sub(paying.allowance);
        if owed > state.charged {
            if !paying.budget.try_take_raw(owed - state.charged) {
                return false;
            }
        } else {
            paying.budget.give(state.charged - owed);
        }
        state.charged = owed;
        true
    }

    /// Lets [`try_send_direct`](Self::try_send_direct) write to `socket` itself.
    pub fn set_direct(&self, socket: Arc<dyn DirectWrite>) {
        let _ = self.direct.set(socket);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each critical section is an append or a swap: a poisoned lock holds consistent bytes.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `frame`, waiting while the queue is over its limit.
    pub async fn send(&self, frame: &(impl Framed + ?Sized)) -> Result<(), SendError> {
        self.send_as(frame, Mode::Wake).await
    }

    /// Like [`send`](Self::send), but the writer is not woken for it: the caller writes what is
    /// queued with [`flush`](Self::flush) once it has queued a batch (a reader answering every
    /// call that came in one read), so a batch costs one system call and no task wake-up.
    pub async fn send_deferred(&self, frame: &(impl Framed + ?Sized)) -> Result<(), SendError> {
        self.send_as(frame, Mode::Defer).await
    }

    async fn send_as(&self, frame: &(impl Framed + ?Sized), mode: Mode) -> Result<(), SendError> {
        // Usually there is room: no waiter to register.
        match self.queue(frame, mode) {
            Err(SendError::Full) => {}
            done => return done,
        }
        // A full queue may hold deferred frames nobody has woken the writer for.
        self.wake.notify_one();
        loop {
            let space = self.space.notified();
            tokio::pin!(space);
            // Registered before looking, so a drain in between still wakes us.
            space.as_mut().enable();
            // Room may also come from other connections giving back to the budget.
            let freed = self.paying.as_ref().map(|p| p.budget.freed());
            let mut freed = std::pin::pin!(freed);
            if let Some(freed) = freed.as_mut().as_pin_mut() {
                freed.enable();
            }
            match self.queue(frame, mode) {
                Err(SendError::Full) => {
                    let budget_freed = async {
                        match freed.as_mut().as_pin_mut() {
                            Some(freed) => freed.await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        () = space => {}
                        () = budget_freed => {}
                    }
                }
                done => return done,
            }
        }
    }

    /// Queues `frame` if there is room now.
    pub fn try_send(&self, frame: &(impl Framed + ?Sized)) -> Result<(), SendError> {
        self.queue(frame, Mode::Wake)
    }

    /// Like [`send_deferred`](Self::send_deferred) when there is room now; `Full` otherwise.
    pub fn try_send_deferred(&self, frame: &(impl Framed + ?Sized)) -> Result<(), SendError> {
        self.queue(frame, Mode::Defer)
    }

    /// Queues a small control frame (a new session token) even past the limit and the budget:
    /// it must not be lost, and it costs a few dozen bytes.
    pub fn send_control(&self, frame: &(impl Framed + ?Sized)) -> Result<(), SendError> {
        self.queue(frame, Mode::Forced)
    }

    /// The socket that direct writes go to (none for TLS), after loading the outbox's line that
    /// holds it and the socket handle's own: a sender to many connections calls this for several
    /// of them before writing to each, so that their cache misses overlap instead of each waiting
    /// its turn behind the previous one's system call.
    pub fn warm(&self) -> Option<&dyn DirectWrite> {
        let socket = self.direct.get()?;
        std::hint::black_box(Arc::strong_count(socket));
        Some(&**socket)
    }

    /// Like [`try_send`](Self::try_send), but when nothing else is queued or being written, writes
    /// the frame to the socket right here (what the socket takes now), so the writer task is woken
    /// only for what is left. For one-off frames to many connections (a broadcast): no task wake
    /// per connection, and (for a frame within the queue's allowance) no allocation either: the
    /// frame is made in a buffer of the calling thread's. Calls' replies go through the queue,
    /// where they batch.
    pub fn try_send_direct(&self, frame: &(impl Framed + ?Sized)) -> Result<(), SendError> {
        self.queue(frame, Mode::Direct)
    }

    /// Writes what is queued to the socket right here when the writer task is not writing (what
    /// the socket takes now), and wakes the writer only for what is left: the end of a batch
    /// queued with [`send_deferred`](Self::send_deferred).
    pub fn flush(&self) {
        let mut state = self.lock();
        if state.buf.is_empty() || state.writing {
            return;
        }
        if !state.closed {
            self.write_direct(&mut state);
        }
        let left = !state.buf.is_empty();
        state.unwoken = false;
        drop(state);
        if left {
            self.wake.notify_one();
        }
    }

    /// Writes what the socket takes of the queue now, from here (the caller holds the lock and
    /// has checked that the writer task is not writing). `false` when there is no socket to
    /// write directly (TLS).
    fn write_direct(&self, state: &mut State) -> bool {
        let Some(socket) = self.direct.get() else {
            return false;
        };
        // Under the lock, so no other bytes can come between.
        if let Ok(written) = socket.try_write(&state.buf) {
            if written == state.buf.len() {
                // Emptied in place: the next frame is encoded at the buffer's start, with its
                // whole capacity (advancing would shrink it, and cost a reclaim per frame).
                state.buf.clear();
            } else {
                bytes::Buf::advance(&mut state.buf, written);
            }
            self.settle(state);
        }
        true
    }

    /// Encodes `frame` in this thread's scratch buffer and writes what the socket takes, so that
    /// a frame to an idle connection allocates nothing and touches no buffer of the connection's
    /// own (a broadcast writes to thousands of them). The caller holds the lock, has checked that
    /// nothing is queued or being written, and `socket` is this queue's.
    ///
    /// A frame larger than what the queue may hold without paying (or than [`SCRATCH_MAX`]) is
    /// moved into the queue unwritten instead ([`Through::Queued`]), for the usual path to check
    /// against the budget before a byte of it goes out.
    fn write_through(
        &self,
        state: &mut State,
        socket: &dyn DirectWrite,
        frame: &(impl Framed + ?Sized),
    ) -> Result<Through, SendError> {
        thread_local! {
            static SCRATCH: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
        }
        let free = self
            .paying
            .as_ref()
            .map_or(SCRATCH_MAX, |paying| paying.allowance.min(SCRATCH_MAX));
        SCRATCH.with_borrow_mut(|scratch| {
            scratch.clear();
            self.encode(scratch, frame)?;
            if scratch.len() > free {
                // The queue is empty: the frame becomes its contents, without a copy (and the
                // thread does not keep the queue's old buffer, whatever its size).
                state.buf = std::mem::take(scratch);
                return Ok(Through::Queued);
            }
            // Any error (the peer gone) leaves the rest to the writer task, which reports it.
            let written = socket.try_write(scratch).unwrap_or(0);
            if written == scratch.len() {
                return Ok(Through::Written);
            }
            // What is left fits in the allowance: nothing to pay.
            state.buf.extend_from_slice(&scratch[written..]);
            Ok(Through::Left)
        })
    }

    /// Appends `frame` to `buf`, or leaves `buf` as it was if it cannot be encoded or its body is
    /// over the peer's limit.
    fn encode(&self, buf: &mut BytesMut, frame: &(impl Framed + ?Sized)) -> Result<(), SendError> {
        let start = buf.len();
        let refused = match frame.encode_frame_into(buf) {
            Ok(body) if body > self.max_frame => SendError::TooLarge(body),
            Ok(_) => return Ok(()),
            Err(_) => SendError::TooLarge(0),
        };
        buf.truncate(start);
        Err(refused)
    }

    fn queue(&self, frame: &(impl Framed + ?Sized), mode: Mode) -> Result<(), SendError> {
        let forced = mode == Mode::Forced;
        let mut state = self.lock();
        if state.closed {
            return Err(SendError::Closed);
        }
        if state.buf.len() >= self.limit && !forced {
            return Err(SendError::Full);
        }
        let was_empty = state.buf.is_empty();
        let direct = mode == Mode::Direct && was_empty && !state.writing;
        let through = match self.direct.get() {
            Some(socket) if direct => {
                Some(self.write_through(&mut state, socket.as_ref(), frame)?)
            }
            _ => None,
        };
        // Where this frame starts in the queue.
        let start = match through {
            Some(Through::Written) => return Ok(()),
            Some(Through::Left) => {
                drop(state);
                self.wake.notify_one();
                return Ok(());
            }
            Some(Through::Queued) => 0,
            None => {
                let start = state.buf.len();
                self.encode(&mut state.buf, frame)?;
                start
            }
        };
        if !self.settle(&mut state) && !forced {
            // Over the allowance and the server's budget is spent: not now.
            state.buf.truncate(start);
            return Err(SendError::Full);
        }
        if direct && self.write_direct(&mut state) && state.buf.is_empty() {
            return Ok(());
        }
        let wake = match mode {
            Mode::Defer => {
                state.unwoken |= was_empty;
                false
            }
            _ => was_empty || std::mem::take(&mut state.unwoken),
        };
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// No more frames: the writer writes what is queued, then stops.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
        self.space.notify_waiters();
    }

    /// Whether the queue was closed (by [`close`](Self::close), a failed write, or a peer that
    /// took no bytes for the stall limit).
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The writer: writes what accumulates until the queue is closed and drained, a write fails,
    /// or the peer takes no bytes for `stall`; then shuts the write side down.
    ///
    /// `more_coming` is asked before each write: when it says frames are about to be queued (calls
    /// still running, callers just woken), the writer yields once so they join this write. A lone
    /// frame with nothing else in flight is written at once.
    pub async fn write_to<W>(
        &self,
        mut writer: W,
        stall: Duration,
        mut more_coming: impl FnMut() -> bool,
    ) where
        W: AsyncWrite + Unpin,
    {
        let mut spare = BytesMut::new();
        loop {
            let wake = self.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            let (empty, closed) = {
                let state = self.lock();
                (state.buf.is_empty(), state.closed)
            };
            if empty {
                if closed {
                    break;
                }
                wake.await;
                continue;
            }
            if more_coming() {
                tokio::task::yield_now().await;
            }
            {
                let mut state = self.lock();
                std::mem::swap(&mut state.buf, &mut spare);
                state.unwoken = false;
                state.writing = true;
                state.writing_len = spare.len();
            }
            self.space.notify_waiters();
            let written = write_within(&mut writer, &spare, stall).await;
            {
                let mut state = self.lock();
                state.writing = false;
                state.writing_len = 0;
                self.settle(&mut state);
            }
            match written {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    tracing::debug!(%err, "write failed");
                    break;
                }
                Err(_) => {
                    tracing::info!(?stall, "peer took no bytes; closing");
                    break;
                }
            }
            spare.clear();
            if spare.capacity() > 4 * self.limit {
                // One burst of large frames should not pin that much memory for the connection's life.
                spare = BytesMut::new();
            }
        }
        self.close();
        {
            // Never written now: give its share of the budget back at once.
            let mut state = self.lock();
            state.buf = BytesMut::new();
            self.settle(&mut state);
        }
        let _ = writer.shutdown().await;
    }
}

/// `write_all`, giving up after `stall`; the timer is only armed if the socket does not take
/// everything at once (the usual case costs no timer).
async fn write_within<W: AsyncWrite + Unpin>(
    writer: &mut W,
    bytes: &[u8],
    stall: Duration,
) -> Result<std::io::Result<()>, tokio::time::error::Elapsed> {
    let write = writer.write_all(bytes);
    tokio::pin!(write);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(write.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(result) => Ok(result),
        std::task::Poll::Pending => tokio::time::timeout(stall, write).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{codec, Envelope};
    use futures_util::StreamExt;
    use tokio_util::codec::FramedRead;

    fn spawn_writer(
        outbox: &Arc<Outbox>,
        socket: tokio::io::DuplexStream,
        stall: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let outbox = Arc::clone(outbox);
        tokio::spawn(async move { outbox.write_to(socket, stall, || false).await })
    }

    #[tokio::test]
    async fn frames_arrive_in_order_and_close_drains() {
        let outbox = Outbox::new(1 << 20, 1 << 20);
        let (client, server) = tokio::io::duplex(1 << 16);
        let writer = spawn_writer(&outbox, client, Duration::from_secs(5));
        for nonce in 0..100 {
            outbox.send(&Envelope::Ping { nonce }).await.unwrap();
        }
        outbox.close();
        assert_eq!(
            outbox.try_send(&Envelope::Ping { nonce: 0 }),
            Err(SendError::Closed)
        );
        let mut frames = FramedRead::new(server, codec(1024));
        for expected in 0..100 {
            let frame = frames.next().await.unwrap().unwrap();
            assert_eq!(
                Envelope::decode(&frame).unwrap(),
                Envelope::Ping { nonce: expected }
            );
        }
        assert!(frames.next().await.is_none(), "closed after the drain");
        writer.await.unwrap();
    }

    /// The next frame's ping nonce, within a second.
    async fn next_nonce(
        frames: &mut FramedRead<tokio::io::DuplexStream, crate::wire::FrameCodec>,
    ) -> u64 {
        let frame = tokio::time::timeout(Duration::from_secs(1), frames.next())
            .await
            .expect("a frame within a second")
            .unwrap()
            .unwrap();
        match Envelope::decode(&frame).unwrap() {
            Envelope::Ping { nonce } => nonce,
            other => panic!("not a ping: {other:?}"),
        }
    }

    #[tokio::test]
    async fn deferred_frames_go_out_at_the_flush_or_with_the_next_woken_one() {
        let outbox = Outbox::new(64, 1 << 20);
        let (client, server) = tokio::io::duplex(1 << 16);
        let writer = spawn_writer(&outbox, client, Duration::from_secs(5));
        let mut frames = FramedRead::new(server, codec(1024));
        // Once the writer has written this (and used up any wake-up left over), it waits.
        outbox.send(&Envelope::Ping { nonce: 0 }).await.unwrap();
        assert_eq!(next_nonce(&mut frames).await, 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        outbox
            .send_deferred(&Envelope::Ping { nonce: 1 })
            .await
            .unwrap();
        let early = tokio::time::timeout(Duration::from_millis(50), frames.next()).await;
        assert!(early.is_err(), "a deferred frame waits for its flush");
        outbox.flush(); // no socket to write directly: wakes the writer
        assert_eq!(next_nonce(&mut frames).await, 1);

        // A frame queued the usual way behind an unflushed deferred one wakes the writer for both.
        outbox
            .send_deferred(&Envelope::Ping { nonce: 2 })
            .await
            .unwrap();
        outbox.send(&Envelope::Ping { nonce: 3 }).await.unwrap();
        assert_eq!(next_nonce(&mut frames).await, 2);
        assert_eq!(next_nonce(&mut frames).await, 3);

        // Deferred frames past the limit wake the writer rather than wait for a flush forever.
        let burst = async {
            for nonce in 10..110 {
                outbox
                    .send_deferred(&Envelope::Ping { nonce })
                    .await
                    .unwrap();
            }
            outbox.flush();
        };
        let read = async {
            for expected in 10..110 {
                assert_eq!(next_nonce(&mut frames).await, expected);
            }
        };
        tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(burst, read) })
            .await
            .expect("the burst drains");
        outbox.close();
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn senders_wait_at_the_limit_and_oversized_frames_are_refused() {
        let outbox = Outbox::new(64, 100);
        let big = vec![0u8; 200];
        let too_large = outbox.try_send(&Envelope::Reply {
            id: 1,
            result: Ok(&big),
        });
        assert!(matches!(too_large, Err(SendError::TooLarge(n)) if n > 200));
        let payload = [0u8; 60];
        outbox
            .try_send(&Envelope::Reply {
                id: 1,
                result: Ok(&payload),
            })
            .unwrap();
        assert_eq!(
            outbox.try_send(&Envelope::Ping { nonce: 1 }),
            Err(SendError::Full),
            "over the limit until the writer drains"
        );
        let (client, server) = tokio::io::duplex(1 << 16);
        let waiting = tokio::spawn({
            let outbox = Arc::clone(&outbox);
            async move { outbox.send(&Envelope::Ping { nonce: 2 }).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        let writer = spawn_writer(&outbox, client, Duration::from_secs(5));
        assert_eq!(waiting.await.unwrap(), Ok(()));
        outbox.close();
        writer.await.unwrap();
        let mut frames = FramedRead::new(server, codec(1024));
        assert!(matches!(
            Envelope::decode(&frames.next().await.unwrap().unwrap()).unwrap(),
            Envelope::Reply { id: 1, .. }
        ));
        assert_eq!(
            Envelope::decode(&frames.next().await.unwrap().unwrap()).unwrap(),
            Envelope::Ping { nonce: 2 }
        );
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_closes_the_queue_after_the_stall() {
        let outbox = Outbox::new(1 << 10, 1 << 20);
        let (client, _server_never_reads) = tokio::io::duplex(64);
        let writer = spawn_writer(&outbox, client, Duration::from_millis(50));
        let payload = [1u8; 500];
        outbox
            .send(&Envelope::Reply {
                id: 1,
                result: Ok(&payload),
            })
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), writer)
            .await
            .unwrap()
            .unwrap();
        assert!(outbox.is_closed());
        assert_eq!(
            outbox.send(&Envelope::Ping { nonce: 1 }).await,
            Err(SendError::Closed)
        );
    }

    /// A loopback TCP pair: the server's write half shared by the outbox (direct writes) and its
    /// writer task, and the client's end.
    async fn direct_pair(
        outbox: &Arc<Outbox>,
    ) -> (tokio::task::JoinHandle<()>, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        let (_read, write) = accepted.unwrap().0.into_split();
        let write = Arc::new(write);
        outbox.set_direct(Arc::clone(&write) as Arc<dyn DirectWrite>);
        let writer = {
            let outbox = Arc::clone(outbox);
            tokio::spawn(async move {
                let _keep_read_half = _read;
                outbox
                    .write_to(SharedWriteHalf(write), Duration::from_secs(5), || false)
                    .await
            })
        };
        (writer, client.unwrap())
    }

    #[tokio::test]
    async fn direct_frames_cut_short_by_a_full_socket_arrive_whole_and_in_order() {
        let budget = Budget::new(1 << 30);
        let outbox = Outbox::paying(64 << 20, 1 << 20, Arc::clone(&budget), 1024);
        let (writer, client) = direct_pair(&outbox).await;
        // Nobody reads yet: the socket fills, direct writes are cut short and the rest queues.
        // Sizes alternate around the allowance: small frames go through the scratch buffer,
        // large ones through the queue.
        let sizes = [10usize, 3000, 700, 1023, 200_000, 1];
        let mut sent = 0u64;
        for round in 0..400u64 {
            let size = sizes[round as usize % sizes.len()];
            let payload = vec![(round % 251) as u8; size];
            outbox
                .try_send_direct(&Envelope::Reply {
                    id: round,
                    result: Ok(&payload),
                })
                .unwrap();
            sent += 1;
        }
        assert!(
            budget.in_use() > 0,
            "what the socket did not take is paid for"
        );
        outbox.close();
        let mut frames = FramedRead::new(client, codec(1 << 20));
        for round in 0..sent {
            let frame = tokio::time::timeout(Duration::from_secs(5), frames.next())
                .await
                .expect("a frame within 5 s")
                .unwrap()
                .unwrap();
            let size = sizes[round as usize % sizes.len()];
            match Envelope::decode(&frame).unwrap() {
                Envelope::Reply {
                    id,
                    result: Ok(payload),
                } => {
                    assert_eq!(id, round);
                    assert_eq!(payload, vec![(round % 251) as u8; size].as_slice());
                }
                other => panic!("not a reply: {other:?}"),
            }
        }
        writer.await.unwrap();
        assert_eq!(budget.in_use(), 0, "everything written is given back");
    }

    #[tokio::test]
    async fn a_direct_frame_over_the_allowance_is_refused_whole_while_the_budget_is_spent() {
        let budget = Budget::new(64 * 1024);
        let outbox = Outbox::paying(1 << 20, 1 << 20, Arc::clone(&budget), 256);
        let (writer, client) = direct_pair(&outbox).await;
        assert!(
            budget.try_take_raw(64 * 1024),
            "someone else holds the whole budget"
        );
        let big = vec![7u8; 4000];
        assert_eq!(
            outbox.try_send_direct(&Envelope::Reply {
                id: 1,
                result: Ok(&big)
            }),
            Err(SendError::Full)
        );
        // A small one still goes out (within the allowance), and is the first frame the peer sees.
        outbox
            .try_send_direct(&Envelope::Ping { nonce: 9 })
            .unwrap();
        budget.give(64 * 1024);
        outbox
            .try_send_direct(&Envelope::Reply {
                id: 2,
                result: Ok(&big),
            })
            .unwrap();
        outbox.close();
        writer.await.unwrap();
        // The last handle on the socket: the peer sees the end once everything is read.
        drop(outbox);
        let mut frames = FramedRead::new(client, codec(1 << 20));
        assert_eq!(
            Envelope::decode(&frames.next().await.unwrap().unwrap()).unwrap(),
            Envelope::Ping { nonce: 9 }
        );
        assert!(matches!(
            Envelope::decode(&frames.next().await.unwrap().unwrap()).unwrap(),
            Envelope::Reply { id: 2, result: Ok(p) } if p == big.as_slice()
        ));
        assert!(frames.next().await.is_none(), "nothing else was written");
    }
}
