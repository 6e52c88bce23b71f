//! Moving file contents between a socket and a file in constant memory: a blocking thread does
//! the disk and the hashing, the async side does the socket, and a few fixed-size buffers go back
//! and forth between them, so a 1 GiB file costs the same memory as a 1 KiB one and the network
//! never waits on the disk longer than the buffers allow.
//!
//! The socket side is bounded in time twice: a read or write that waits longer than the idle
//! timeout fails, and a transfer under its rate floor ([`floor`](super::floor)) is cut, judged at
//! every chunk and on a timer while a read or write waits.

use std::fs::File;
use std::io::{Read, Write};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::floor::{Pace, RateFloor, TooSlow};
use super::protocol::CHUNK;

/// Buffers in flight per transfer (so at most `BUFFERS * CHUNK` bytes of memory).
const BUFFERS: usize = 4;

/// Where chunks go on the blocking side.
pub(crate) trait Sink: Send + 'static {
    /// Takes the next chunk.
    fn put(&mut self, chunk: &[u8]) -> std::io::Result<()>;
}

/// Where chunks come from on the blocking side.
pub(crate) trait Source: Send + 'static {
    /// Fills `buf` entirely (it is never longer than what is left to send); an early end is an
    /// error.
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<()>;
}

/// A file (or any blocking reader or writer) being written or read, hashed on the way.
pub(crate) struct Hashing<T> {
    pub inner: T,
    pub hasher: blake3::Hasher,
}

impl<T> Hashing<T> {
    pub fn new(inner: T) -> Self {
        Hashing {
            inner,
            hasher: blake3::Hasher::new(),
        }
    }
}

impl<T: Write + Send + 'static> Sink for Hashing<T> {
    fn put(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.hasher.update(chunk);
        self.inner.write_all(chunk)
    }
}

impl<T: Read + Send + 'static> Source for Hashing<T> {
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_exact(buf)?;
        self.hasher.update(buf);
        Ok(())
    }
}

/// Why a transfer stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PumpError {
    /// The socket failed, ended early, or went quiet for the idle timeout.
    #[error("the peer: {0}")]
    Peer(std::io::Error),
    /// The file side failed.
    #[error("the file: {0}")]
    Local(std::io::Error),
    /// The peer moved the bytes slower than the rate floor.
    #[error("the transfer was too slow: {0}")]
    TooSlow(TooSlow),
}

/// How a pump bounds the socket's side in time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// The longest one read or write may wait.
    pub idle: Duration,
    /// The least the transfer must move over a window, if anything.
    pub floor: Option<RateFloor>,
}

impl Bounds {
    /// Only the idle timeout (the connector's side).
    pub fn idle(idle: Duration) -> Bounds {
        Bounds { idle, floor: None }
    }
}

/// Waits for `io` (one socket read or write), failing it after `idle` or as soon as `pace`
/// (with `done` bytes moved so far) falls under its floor.
async fn paced<T>(
    io: impl std::future::Future<Output = std::io::Result<T>>,
    bounds: Bounds,
    pace: &mut Option<Pace>,
    done: u64,
) -> Result<T, PumpError> {
    let idle_until = crate::timer::after(Instant::now(), bounds.idle);
    let mut io = std::pin::pin!(io);
    loop {
        let tick = pace.as_ref().map_or(idle_until, |p| {
            crate::timer::after(Instant::now(), p.tick()).min(idle_until)
        });
        tokio::select! {
            result = &mut io => return result.map_err(PumpError::Peer),
            () = tokio::time::sleep_until(tick) => {
                let now = Instant::now();
                if let Some(pace) = pace.as_mut() {
                    pace.moved(done, now);
                    pace.check(now).map_err(PumpError::TooSlow)?;
                }
                if now >= idle_until {
                    return Err(PumpError::Peer(stalled()));
                }
            }
        }
    }
}

fn stalled() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "no data for the idle timeout")
}

/// Reads exactly `len` bytes from `reader` into `sink`. Whatever arrived before a failure has been
/// handed to the sink when this returns (a partial upload keeps every byte that came).
pub(crate) async fn socket_to_sink<R, S>(
    reader: &mut R,
    len: u64,
    mut sink: S,
    bounds: Bounds,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<S, PumpError>
where
    R: AsyncRead + Unpin,
    S: Sink,
{
    let (full_tx, mut full_rx) = mpsc::channel::<(Vec<u8>, usize)>(BUFFERS);
    let (empty_tx, mut empty_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
    let disk = tokio::task::spawn_blocking(move || {
        while let Some((buf, n)) = full_rx.blocking_recv() {
            sink.put(&buf[..n])?;
            let _ = empty_tx.try_send(buf);
        }
        Ok::<S, std::io::Error>(sink)
    });
    let mut allocated = 0;
    let mut moved = 0u64;
    let mut pace = Pace::start(bounds.floor);
    let network = async {
        while moved < len {
            let mut buf = match empty_rx.try_recv() {
                Ok(buf) => buf,
                Err(_) if allocated < BUFFERS => {
                    allocated += 1;
                    vec![0u8; CHUNK]
                }
                Err(_) => match empty_rx.recv().await {
                    Some(buf) => buf,
                    None => return Ok(()), // the disk side stopped: its error says why
                },
            };
            let want = usize::try_from(len - moved).map_or(CHUNK, |left| left.min(CHUNK));
            let mut filled = 0;
            while filled < want {
                let done = moved + filled as u64;
                let read = paced(reader.read(&mut buf[filled..want]), bounds, &mut pace, done);
                let failure = match read.await {
                    Ok(0) => PumpError::Peer(std::io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => {
                        filled += n;
                        if let Some(pace) = pace.as_mut() {
                            let now = Instant::now();
                            pace.moved(moved + filled as u64, now);
                            match pace.check(now) {
                                Ok(()) => continue,
                                Err(slow) => PumpError::TooSlow(slow),
                            }
                        } else {
                            continue;
                        }
                    }
                    Err(failure) => failure,
                };
                // Hand over what did arrive before saying so.
                if filled > 0 && full_tx.send((buf, filled)).await.is_ok() {
                    moved += filled as u64;
                    progress(moved);
                }
                return Err(failure);
            }
            if full_tx.send((buf, filled)).await.is_err() {
                return Ok(());
            }
            moved += filled as u64;
            progress(moved);
        }
        Ok(())
    };
    let network = network.await;
    drop(full_tx);
    let disk = disk
        .await
        .map_err(|e| PumpError::Local(std::io::Error::other(e.to_string())))?
        .map_err(PumpError::Local);
    network?;
    disk
}

/// Writes exactly `len` bytes from `source` to `writer` (not flushed).
pub(crate) async fn source_to_socket<W, S>(
    writer: &mut W,
    len: u64,
    mut source: S,
    bounds: Bounds,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<S, PumpError>
where
    W: AsyncWrite + Unpin,
    S: Source,
{
    let (full_tx, mut full_rx) = mpsc::channel::<(Vec<u8>, usize)>(BUFFERS);
    let (empty_tx, mut empty_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
    let disk = tokio::task::spawn_blocking(move || {
        let mut left = len;
        let mut allocated = 0;
        while left > 0 {
            let mut buf = match empty_rx.try_recv() {
                Ok(buf) => buf,
                Err(_) if allocated < BUFFERS => {
                    allocated += 1;
                    vec![0u8; CHUNK]
                }
                Err(_) => match empty_rx.blocking_recv() {
                    Some(buf) => buf,
                    None => break, // the network side stopped
                },
            };
            let n = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
            source.fill(&mut buf[..n])?;
            if full_tx.blocking_send((buf, n)).is_err() {
                break;
            }
            left -= n as u64;
        }
        Ok::<S, std::io::Error>(source)
    });
    let mut moved = 0u64;
    let mut pace = Pace::start(bounds.floor);
    let network = async {
        while let Some((buf, n)) = full_rx.recv().await {
            // Write by write, not write_all: what a slow reader takes is what the floor judges.
            let mut written = 0;
            while written < n {
                let done = moved + written as u64;
                let wrote = paced(writer.write(&buf[written..n]), bounds, &mut pace, done).await?;
                if wrote == 0 {
                    return Err(PumpError::Peer(std::io::ErrorKind::WriteZero.into()));
                }
                written += wrote;
                if let Some(pace) = pace.as_mut() {
                    let now = Instant::now();
                    pace.moved(moved + written as u64, now);
                    pace.check(now).map_err(PumpError::TooSlow)?;
                }
            }
            moved += n as u64;
            progress(moved);
            let _ = empty_tx.try_send(buf);
        }
        Ok(())
    };
    let network: Result<(), PumpError> = network.await;
    // Either way the disk thread must not wait for us any more.
    drop(full_rx);
    drop(empty_tx);
    let disk = disk
        .await
        .map_err(|e| PumpError::Local(std::io::Error::other(e.to_string())))?
        .map_err(PumpError::Local);
    network?;
    let source = disk?;
    if moved < len {
        return Err(PumpError::Local(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(source)
}

impl Source for File {
    fn fill(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.read_exact(buf)
    }
}

/// The BLAKE3 of `len` bytes of `file` from where it stands (for a resume or a stat), read in
/// chunks.
pub(crate) fn hash_prefix(file: &mut File, len: u64) -> std::io::Result<blake3::Hasher> {
    let mut hasher = blake3::Hasher::new();
    let copied = std::io::copy(&mut file.take(len), &mut hasher)?;
    if copied < len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(hasher)
}
