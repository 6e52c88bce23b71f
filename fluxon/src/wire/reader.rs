//! Reading a peer's frames under the server's memory rules: a frame whose length is over the
//! connection's allowance is paid for from the server-wide [`Budget`] as soon as its length is
//! read, and its body is read only once the reservation is held. While the budget is spent the
//! reader reads nothing: the peer's bytes wait in its socket (backpressure), never in our memory.
//!
//! The client reads the server's frames with the same reader and no budget.
//!
//! Small frames (up to the allowance) are read with a little read-ahead, so a burst of calls costs
//! one system call; a large frame's body is read exactly, so no unpaid bytes of the next frame come
//! with it. The frame format is the one in the module docs of [`wire`](super): a big-endian `u32`
//! length, then the body.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::budget::{Budget, Reservation};

/// The most bytes read ahead at once for small frames.
const READ_CHUNK: usize = 16 * 1024;

/// The least spare room a read-ahead goes into before the buffer is reclaimed or regrown.
const MIN_SPARE: usize = 2 * 1024;

/// One frame's body, and the share of the budget paid for it (held until whoever handles the
/// frame is done with it: a call keeps it until its reply is queued).
#[derive(Debug)]
pub(crate) struct Frame {
    pub body: Bytes,
    pub held: Option<Reservation>,
}

/// A peer's frames, read under a frame limit, an allowance and (optionally) a budget.
pub(crate) struct FrameReader<R> {
    io: R,
    buf: BytesMut,
    max_frame: usize,
    allowance: usize,
    budget: Option<Arc<Budget>>,
    /// The reservation for the frame whose body is being read.
    held: Option<Reservation>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Frames of at most `max_frame` bytes; frames over `allowance` are paid for from `budget`.
    pub fn new(io: R, max_frame: usize, allowance: usize, budget: Option<Arc<Budget>>) -> Self {
        FrameReader {
            io,
            buf: BytesMut::new(),
            max_frame,
            allowance,
            budget,
            held: None,
        }
    }

    /// Changes the largest frame accepted from now on (the handshake is read under a small one).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// The length the buffered header announces, checked against the limit.
    fn header(&self) -> Option<std::io::Result<usize>> {
        let header: [u8; 4] = self.buf.get(..4)?.try_into().ok()?;
        let len = u32::from_be_bytes(header) as usize;
        if len > self.max_frame {
            return Some(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "a frame of {len} bytes is over the limit of {}",
                    self.max_frame
                ),
            )));
        }
        Some(Ok(len))
    }

    /// Whether a frame of `len` bytes must be paid for before its body is read.
    fn needs_budget(&self, len: usize) -> bool {
        len > self.allowance && self.budget.is_some() && self.held.is_none()
    }

    /// The next frame if it is already in the buffer (and paid for): no system call. Lets a
    /// reader handle every frame that came in one read before waiting again.
    pub fn buffered(&mut self) -> Option<std::io::Result<Frame>> {
        let len = match self.header()? {
            Ok(len) => len,
            Err(err) => return Some(Err(err)),
        };
        if self.buf.len() < 4 + len || self.needs_budget(len) {
            return None;
        }
        self.buf.advance(4);
        let body = self.buf.split_to(len).freeze();
        if len > self.allowance {
            // The buffer grew for a large frame: keep only what is left (at most a read-ahead),
            // in a buffer of its own, so the large allocation goes with the frame. Otherwise the
            // buffer would take the allocation back once the frame is dropped, and every
            // connection that once got a 16 MiB frame would hold 16 MiB for good.
            self.buf = BytesMut::from(&self.buf[..]);
        }
        Some(Ok(Frame {
            body,
            held: self.held.take(),
        }))
    }

    /// The next frame; `None` when the peer closed between frames. A peer that closes in the
    /// middle of a frame gets `UnexpectedEof`; one over the frame limit `InvalidData`.
    ///
    /// Cancel safe: bytes read and a reservation taken stay with the reader for the next call.
    pub async fn next(&mut self) -> Option<std::io::Result<Frame>> {
        loop {
            if let Some(frame) = self.buffered() {
                return Some(frame);
            }
            // `want`: the most to read now; `need`: what the frame under way still lacks.
            let (want, need) = match self.header() {
                Some(Err(err)) => return Some(Err(err)),
                Some(Ok(len)) => {
                    if self.needs_budget(len) {
                        if let Some(budget) = &self.budget {
                            // Nothing more is read from this peer until its frame is paid for.
                            self.held = Some(budget.take(len).await);
                        }
                        continue;
                    }
                    let rest = 4 + len - self.buf.len();
                    if len > self.allowance {
                        (rest, rest) // exactly the body: nothing unpaid of the next frame
                    } else {
                        (rest.max(READ_CHUNK), rest)
                    }
                }
                None => (READ_CHUNK, 4),
            };
            // Room is made only when the spare room will not do, since a reserve reclaims or
            // reallocates: read-ahead goes into what is left until that runs low.
            if self.buf.capacity() - self.buf.len() < need.max(MIN_SPARE).min(want) {
                self.buf.reserve(want);
            }
            let read = self.io.read_buf(&mut (&mut self.buf).limit(want)).await;
            match read {
                Ok(0) if self.buf.is_empty() => return None,
                Ok(0) => {
                    return Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the peer closed the connection in the middle of a frame",
                    )))
                }
                Ok(_) => {}
                Err(err) => return Some(Err(err)),
            }
        }
    }
}

/// Bytes handed out at most `chunk` at a time, as a socket may: for the property tests and the
/// fuzz target that drive [`FrameReader`].
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) struct Chunked<'a> {
    pub data: &'a [u8],
    pub chunk: usize,
}

#[cfg(any(test, feature = "fuzzing"))]
impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn frames_come_out_whole_and_a_clean_end_is_none() {
        let mut bytes = framed(b"a");
        bytes.extend(framed(b""));
        bytes.extend(framed(&[7u8; 40_000]));
        let mut reader = FrameReader::new(&bytes[..], 1 << 20, 1024, None);
        assert_eq!(&reader.next().await.unwrap().unwrap().body[..], b"a");
        assert!(reader.buffered().unwrap().unwrap().body.is_empty());
        assert_eq!(reader.next().await.unwrap().unwrap().body.len(), 40_000);
        assert!(reader.next().await.is_none());
    }

    #[tokio::test]
    async fn over_the_limit_and_cut_short_are_errors() {
        let big = framed(&[0u8; 100]);
        let mut reader = FrameReader::new(&big[..], 99, 1024, None);
        let err = reader.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        let cut = &framed(b"hello")[..6];
        let mut reader = FrameReader::new(cut, 99, 1024, None);
        let err = reader.next().await.unwrap().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    /// A large frame's body is not read until the budget has room for it; small frames never wait.
    #[tokio::test]
    async fn a_large_frame_waits_for_the_budget_and_holds_it_until_handled() {
        let budget = Budget::new(1_000);
        let taken = budget.try_take(900).unwrap();
        let (mut peer, server) = tokio::io::duplex(64 * 1024);
        let mut reader = FrameReader::new(server, 1 << 20, 100, Some(Arc::clone(&budget)));
        peer.write_all(&framed(b"small")).await.unwrap();
        assert_eq!(&reader.next().await.unwrap().unwrap().body[..], b"small");
        peer.write_all(&framed(&[1u8; 500])).await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), reader.next()).await;
        assert!(waiting.is_err(), "no room for 500 bytes yet");
        drop(taken);
        let frame = reader.next().await.unwrap().unwrap();
        assert_eq!(frame.body.len(), 500);
        assert_eq!(budget.in_use(), 500, "held by the frame");
        drop(frame);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn the_buffer_shrinks_back_after_a_large_frame() {
        let mut bytes = framed(&[5u8; 200_000]);
        bytes.extend(framed(b"next"));
        let mut reader = FrameReader::new(&bytes[..], 1 << 20, 100, None);
        let large = reader.next().await.unwrap().unwrap();
        assert_eq!(large.body.len(), 200_000);
        drop(large);
        let next = reader.next().await.unwrap().unwrap();
        assert_eq!(&next.body[..], b"next");
        assert!(
            reader.buf.capacity() <= 2 * READ_CHUNK,
            "{} bytes kept after the large frame went",
            reader.buf.capacity()
        );
    }

    #[tokio::test]
    async fn unpaid_bytes_stay_within_the_read_ahead() {
        let budget = Budget::new(10_000);
        let mut bytes = framed(&[3u8; 5_000]);
        bytes.extend(framed(&[4u8; 5_000]));
        let mut reader = FrameReader::new(&bytes[..], 1 << 20, 100, Some(Arc::clone(&budget)));
        let first = reader.next().await.unwrap().unwrap();
        assert!(reader.buf.len() <= READ_CHUNK, "read-ahead bounded");
        let second = reader.next().await.unwrap().unwrap();
        assert_eq!((first.body[0], second.body[0]), (3, 4));
        assert_eq!(budget.in_use(), 10_000);
    }
}
