//! The outgoing queue of one connection: frames encoded straight into a shared buffer, bounded in
//! bytes, and a writer task that writes whatever has accumulated with one system call.
//!
//! Compared with a channel of encoded frames, nothing is allocated per frame (the envelope is
//! written into the buffer in place and the writer swaps between two buffers), and the bound is on
//! memory rather than on a count of frames of any size.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

use super::Envelope;

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
}

impl Outbox {
    /// A queue that makes senders wait once `limit` bytes are queued, and refuses frames whose body
    /// is over `max_frame` (the peer's limit).
    pub fn new(limit: usize, max_frame: usize) -> Arc<Self> {
        Arc::new(Outbox {
            state: Mutex::new(State {
                buf: BytesMut::new(),
                closed: false,
            }),
            wake: Notify::new(),
            space: Notify::new(),
            limit,
            max_frame,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each critical section is an append or a swap: a poisoned lock holds consistent bytes.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `envelope`, waiting while the queue is over its limit.
    pub async fn send(&self, envelope: &Envelope<'_>) -> Result<(), SendError> {
        // Usually there is room: no waiter to register.
        match self.try_send(envelope) {
            Err(SendError::Full) => {}
            done => return done,
        }
        loop {
            let space = self.space.notified();
            tokio::pin!(space);
            // Registered before looking, so a drain in between still wakes us.
            space.as_mut().enable();
            match self.try_send(envelope) {
                Err(SendError::Full) => space.await,
                done => return done,
            }
        }
    }

    /// Queues `envelope` if there is room now.
    pub fn try_send(&self, envelope: &Envelope<'_>) -> Result<(), SendError> {
        let mut state = self.lock();
        if state.closed {
            return Err(SendError::Closed);
        }
        if state.buf.len() >= self.limit {
            return Err(SendError::Full);
        }
        let was_empty = state.buf.is_empty();
        let start = state.buf.len();
        let body = match envelope.encode_frame_into(&mut state.buf) {
            Ok(body) => body,
            Err(_) => {
                state.buf.truncate(start);
                return Err(SendError::TooLarge(0));
            }
        };
        if body > self.max_frame {
            state.buf.truncate(start);
            return Err(SendError::TooLarge(body));
        }
        drop(state);
        if was_empty {
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

    /// Whether the queue was closed (by [`close`](Self::close) or a failed write).
    #[cfg(test)]
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
            std::mem::swap(&mut self.lock().buf, &mut spare);
            self.space.notify_waiters();
            match tokio::time::timeout(stall, writer.write_all(&spare)).await {
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
        let _ = writer.shutdown().await;
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
}
