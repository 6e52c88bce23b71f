//! Reading a link's frames, by whoever waits for them.
//!
//! While calls wait for replies, one of them reads for all (a leader/follower scheme): the socket
//! wakes that call directly, the call takes every frame that came, keeps its own reply and hands
//! the others' replies to their calls through the table of pending calls. So a reply usually
//! reaches its call with no hop through another task. While no call reads, the link's task does
//! (pings, reverse requests, the server's goodbye, replies to calls that found the reader busy).
//!
//! Whoever reads holds one lock, never across a wait; a call that finds it taken leaves its waker
//! in its table entry instead. The socket keeps the waker of the last reader that found it empty.
//! A call that stops reading (its reply came, it timed out, its future was dropped) hands the
//! socket back to the link's task: it reads on with the task's waker until the socket is empty,
//! so the socket holds that waker again, and the task is not woken for it.

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::time::Instant;

use super::pending::Delivery;
use super::shared::Inner;
use super::CallError;
use crate::wire::{self, Envelope, ErrorCode, FrameReader, Outbox};

pub(super) type Reader = FrameReader<wire::BoxRead>;

/// The reading side of one link, shared by its task and the calls waiting on it.
pub(super) struct ReadSide {
    state: Mutex<ReadState>,
    outbox: Arc<Outbox>,
    /// The link is over (the server left, broke the protocol, or the link's task ended it):
    /// nobody reads any more.
    ended: AtomicBool,
    /// The call whose waker the socket holds; 0 when it is the link task's (call ids start at 1).
    reading: AtomicU64,
    /// Wakes the link's task when it found the reader taken before it ever left its waker.
    link_missed: AtomicWaker,
}

struct ReadState {
    reader: Reader,
    /// The link task's waker, for the socket to hold while no call reads.
    link: Option<Waker>,
    /// When a frame last came, for the keepalive.
    last_heard: Instant,
}

/// How a turn of reading ended.
enum Read {
    /// The socket has nothing more now; it holds the reader's waker.
    Empty,
    /// The reader's own reply came.
    Mine(Delivery),
    /// The link is over.
    Ended,
}

/// What one frame asks for.
enum Handled {
    Go,
    Mine(Delivery),
    End,
}

impl ReadSide {
    /// The reading side of a link whose replies go out through `outbox`.
    pub fn new(reader: Reader, outbox: Arc<Outbox>) -> Arc<Self> {
        Arc::new(ReadSide {
            state: Mutex::new(ReadState {
                reader,
                link: None,
                last_heard: Instant::now(),
            }),
            outbox,
            ended: AtomicBool::new(false),
            reading: AtomicU64::new(0),
            link_missed: AtomicWaker::new(),
        })
    }

    fn try_lock(&self) -> Option<MutexGuard<'_, ReadState>> {
        match self.state.try_lock() {
            Ok(state) => Some(state),
            // Nothing in the state is left half-changed by a panic: the reader is cancel safe.
            Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    /// When a frame last came from the server.
    pub fn last_heard(&self) -> Instant {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .last_heard
    }

    /// Ends the link for its readers (the link's task is done with it).
    pub fn close(&self) {
        self.ended.store(true, Ordering::Release);
    }

    /// For the link's task: reads what has come until the socket is empty. Ready once the link is
    /// over. If a call is reading, leaves it to that call.
    pub fn poll_link(&self, inner: &Inner, cx: &mut Context<'_>) -> Poll<()> {
        if self.ended.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        // Before the lock: a call that holds it wakes this once it lets go (see `hand_back`).
        self.link_missed.register(cx.waker());
        let Some(mut state) = self.try_lock() else {
            return Poll::Pending;
        };
        if !state.link.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.link = Some(cx.waker().clone());
        }
        match self.read(inner, &mut state, cx, None) {
            Read::Empty | Read::Mine(_) => {
                self.reading.store(0, Ordering::Relaxed);
                Poll::Pending
            }
            Read::Ended => {
                self.ended_by_reader(state);
                Poll::Ready(())
            }
        }
    }

    /// For call `id`: reads, if nobody else is, until its reply comes or the socket is empty.
    fn poll_reply(&self, inner: &Inner, id: u64, cx: &mut Context<'_>) -> Poll<Delivery> {
        if self.ended.load(Ordering::Acquire) {
            // The link's end fails every waiting call through the table.
            return Poll::Pending;
        }
        let Some(mut state) = self.try_lock() else {
            return Poll::Pending;
        };
        match self.read(inner, &mut state, cx, Some(id)) {
            Read::Empty => {
                self.reading.store(id, Ordering::Relaxed);
                Poll::Pending
            }
            Read::Mine(delivery) => {
                self.hand_back(inner, state);
                Poll::Ready(delivery)
            }
            Read::Ended => {
                self.ended_by_reader(state);
                Poll::Pending
            }
        }
    }

    /// Call `id` stops waiting: if the socket holds its waker, the link's task takes over.
    fn release(&self, inner: &Inner, id: u64) {
        if self.reading.load(Ordering::Relaxed) != id {
            return;
        }
        // Taken: whoever holds it leaves its own waker in the socket, or hands it back.
        if let Some(state) = self.try_lock() {
            if self.reading.load(Ordering::Relaxed) == id {
                self.hand_back(inner, state);
            }
        }
    }

    /// Gives the socket back to the link's task: reads on with its waker until the socket is
    /// empty, so the socket holds that waker and the task need not be woken.
    fn hand_back(&self, inner: &Inner, mut state: MutexGuard<'_, ReadState>) {
        self.reading.store(0, Ordering::Relaxed);
        if self.ended.load(Ordering::Acquire) {
            return;
        }
        let Some(link) = state.link.take() else {
            // The task has not read yet: it will, once woken.
            drop(state);
            self.link_missed.wake();
            return;
        };
        let read = self.read(inner, &mut state, &mut Context::from_waker(&link), None);
        state.link = Some(link);
        if matches!(read, Read::Ended) {
            self.ended_by_reader(state);
        }
    }

    /// A reader saw the link end: no more reading, and the link's task is told.
    fn ended_by_reader(&self, state: MutexGuard<'_, ReadState>) {
        self.ended.store(true, Ordering::Release);
        let link = state.link.clone();
        drop(state);
        if let Some(link) = link {
            link.wake();
        }
        self.link_missed.wake();
    }

    /// Reads and handles frames until the socket is empty (leaving `cx`'s waker with it), the
    /// reply to `mine` comes, or the link ends.
    fn read(
        &self,
        inner: &Inner,
        state: &mut ReadState,
        cx: &mut Context<'_>,
        mine: Option<u64>,
    ) -> Read {
        let mut heard = false;
        let read = loop {
            let polled = pin!(state.reader.next()).poll(cx);
            let frame = match polled {
                Poll::Pending => break Read::Empty,
                Poll::Ready(Some(Ok(frame))) => frame.body,
                Poll::Ready(Some(Err(err))) => {
                    tracing::warn!(%err, "bad frame from the server; dropping the connection");
                    break Read::Ended;
                }
                Poll::Ready(None) => {
                    tracing::debug!("the server closed the connection");
                    break Read::Ended;
                }
            };
            heard = true;
            match on_frame(inner, &self.outbox, frame, mine) {
                Handled::Go => {}
                Handled::Mine(delivery) => break Read::Mine(delivery),
                Handled::End => break Read::Ended,
            }
        };
        if heard {
            state.last_heard = Instant::now();
        }
        read
    }
}

/// Handles one frame from the server; the reply to `mine` is returned, not handed over.
fn on_frame(inner: &Inner, outbox: &Arc<Outbox>, frame: Bytes, mine: Option<u64>) -> Handled {
    match Envelope::decode(&frame) {
        Ok(Envelope::Reply { id, result }) => {
            let delivery = result
                .map(|bytes| wire::detach(&frame, bytes))
                .map_err(|e| match e.code {
                    ErrorCode::Rejected => CallError::View(wire::detach(&frame, e.detail)),
                    code => CallError::Remote {
                        code,
                        message: e.message.to_owned(),
                    },
                });
            if mine == Some(id) {
                // Counted as a wake-up: its caller, too, will mostly call again at once.
                inner.pending.woken.fetch_add(1, Ordering::Relaxed);
                return Handled::Mine(delivery);
            }
            inner.pending.complete(id, delivery);
            Handled::Go
        }
        Ok(Envelope::Ping { nonce }) => {
            let _ = outbox.try_send(&Envelope::Pong { nonce });
            Handled::Go
        }
        Ok(Envelope::Pong { .. }) => Handled::Go,
        Ok(Envelope::ReverseRequest { id, name, payload }) => {
            let payload = wire::detach(&frame, payload);
            inner.handlers.dispatch(id, name, payload, outbox);
            Handled::Go
        }
        Ok(Envelope::Goodbye { reason }) => {
            tracing::info!(%reason, "the server said goodbye");
            Handled::End
        }
        Ok(Envelope::Token { token }) => {
            // A login or logout rotated the session's token: the old one resumes nothing now.
            inner.set_token(token);
            Handled::Go
        }
        Ok(_) => {
            tracing::warn!("unexpected message from the server; dropping the connection");
            Handled::End
        }
        Err(err) => {
            tracing::warn!(%err, "malformed message from the server; dropping the connection");
            Handled::End
        }
    }
}

/// A call's reply, as a future: filled in its table entry by another reader, or read by the call
/// itself when nobody else is reading.
pub(super) struct Reply<'a> {
    inner: &'a Inner,
    id: u64,
    read: Option<Arc<ReadSide>>,
    /// The call's entry has this poll's waker already: the first poll need not look at it.
    registered: bool,
}

impl<'a> Reply<'a> {
    /// The reply to call `id` (already in the table), awaited.
    pub fn new(inner: &'a Inner, id: u64) -> Self {
        Reply {
            inner,
            id,
            read: None,
            registered: false,
        }
    }

    /// The reply to call `id`, registered with the waker of the poll that is about to poll this
    /// (in that same poll); read by the call itself from `read`'s link if given.
    pub fn registered(inner: &'a Inner, id: u64, read: Option<Arc<ReadSide>>) -> Self {
        Reply {
            inner,
            id,
            read,
            registered: true,
        }
    }
}

impl Future for Reply<'_> {
    type Output = Delivery;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Delivery> {
        let this = self.get_mut();
        // Reading first: the usual wake-up is the socket's, with the reply in it. The table is
        // looked at after, so a reply handed over meanwhile (or a timeout) is never missed.
        if let Some(read) = &this.read {
            if let Poll::Ready(delivery) = read.poll_reply(this.inner, this.id, cx) {
                // Read here, never handed over: the table still has the call's entry.
                this.inner.pending.remove(this.id);
                // The socket went back to the link's task already.
                this.read = None;
                return Poll::Ready(delivery);
            }
        }
        if std::mem::take(&mut this.registered) {
            // A reply handed over since it was registered has woken this task: polled again.
            return Poll::Pending;
        }
        this.inner.pending.poll_slot(this.id, cx)
    }
}

impl Drop for Reply<'_> {
    fn drop(&mut self) {
        if let Some(read) = &self.read {
            read.release(self.inner, self.id);
        }
    }
}
