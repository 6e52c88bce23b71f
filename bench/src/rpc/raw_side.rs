//! The upper bound: a raw tokio length-delimited echo. The server writes back every frame it reads
//! (batching the flush over frames already buffered), in one task per connection.
//!
//! Sequential latency uses the plainest client there is: write a frame, read a frame. Concurrent
//! callers need some way to share a connection; the raw client uses the least there is: each
//! caller appends its frame to a shared buffer and its waiter to a queue under one lock, a writer
//! task writes the buffer out, a reader task hands each echo to the oldest waiter (TCP and the
//! server keep order). No ids, no envelope, no serialization, no dispatch: what is left is the
//! cost of callers as tasks, which every RPC system pays.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};
use tokio_util::codec::{Framed, FramedRead, LengthDelimitedCodec};

use super::{concurrent, connect_all, listen, payload, Load};

type Conn = Framed<TcpStream, LengthDelimitedCodec>;

/// Starts the echo server on a free loopback port; returns its address.
pub async fn start() -> anyhow::Result<SocketAddr> {
    listen(|conn| {
        tokio::spawn(serve(conn));
    })
    .await
}

async fn serve(mut conn: Conn) -> anyhow::Result<()> {
    while let Some(frame) = conn.next().await {
        conn.feed(frame?.freeze()).await?;
        // Echo whatever else is already buffered before flushing once.
        while let Some(Some(frame)) = conn.next().now_or_never() {
            conn.feed(frame?.freeze()).await?;
        }
        SinkExt::<Bytes>::flush(&mut conn).await?;
    }
    Ok(())
}

async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(Framed::new(stream, LengthDelimitedCodec::new()))
}

/// `n` sequential round trips after `warmup` untimed ones.
pub async fn latency(addr: SocketAddr, warmup: usize, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut conn = connect(addr).await?;
    let data = Bytes::from(payload());
    for _ in 0..warmup {
        conn.send(data.clone()).await?;
        conn.next()
            .await
            .ok_or_else(|| anyhow::anyhow!("closed"))??;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        conn.send(data.clone()).await?;
        let reply = conn
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("closed"))??;
        samples.push(start.elapsed());
        anyhow::ensure!(reply[..] == data[..], "wrong echo");
    }
    Ok(samples)
}

/// A connection shared by concurrent callers, matched to echoes in order.
#[derive(Clone)]
pub struct RawClient {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    wake_writer: Notify,
    /// Echoes handed to callers since the last write: when several callers were just woken, the
    /// writer yields once so their next frames share one write (the same batching fluxon does).
    woken: AtomicUsize,
}

#[derive(Default)]
struct State {
    out: BytesMut,
    waiters: VecDeque<oneshot::Sender<Bytes>>,
}

impl RawClient {
    async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read_half, mut write_half) = stream.into_split();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake_writer: Notify::new(),
            woken: AtomicUsize::new(0),
        });
        let writer = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                writer.wake_writer.notified().await;
                if writer.woken.swap(0, Ordering::Relaxed) > 1 {
                    tokio::task::yield_now().await;
                }
                loop {
                    let batch = {
                        let mut state = writer
                            .state
                            .lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?;
                        if state.out.is_empty() {
                            break;
                        }
                        state.out.split()
                    };
                    write_half.write_all(&batch).await?;
                }
                if Arc::strong_count(&writer) == 1 {
                    return Ok::<(), anyhow::Error>(());
                }
            }
        });
        let reader = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut frames = FramedRead::new(read_half, LengthDelimitedCodec::new());
            while let Some(frame) = frames.next().await {
                let frame = frame?.freeze();
                let waiter = reader
                    .state
                    .lock()
                    .map_err(|_| anyhow::anyhow!("poisoned"))?
                    .waiters
                    .pop_front();
                if let Some(waiter) = waiter {
                    if waiter.send(frame).is_ok() {
                        reader.woken.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok::<(), anyhow::Error>(())
        });
        Ok(RawClient { shared })
    }
}

impl super::Echo for RawClient {
    async fn echo(&self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        let (waiter, reply) = oneshot::channel();
        let was_idle = {
            let mut state = self
                .shared
                .state
                .lock()
                .map_err(|_| anyhow::anyhow!("poisoned"))?;
            let was_idle = state.out.is_empty();
            state.out.put_u32(u32::try_from(data.len())?);
            state.out.extend_from_slice(data);
            state.waiters.push_back(waiter);
            was_idle
        };
        if was_idle {
            self.shared.wake_writer.notify_one();
        }
        Ok(reply.await?.to_vec())
    }
}

/// Calls per second with `load.callers` tasks calling in a loop, spread over the connections.
pub async fn throughput(addr: SocketAddr, load: Load) -> anyhow::Result<f64> {
    let clients = connect_all(load.connections, || RawClient::connect(addr)).await?;
    concurrent(&clients, load).await
}

/// Exactly `n` calls: sequential over the latency client when `load.callers` is 1 on one
/// connection, otherwise as [`throughput`] makes them (for the instruction and syscall counts).
pub async fn calls(addr: SocketAddr, load: Load, n: u64) -> anyhow::Result<()> {
    if load.callers == 1 && load.connections == 1 {
        latency(addr, 0, usize::try_from(n)?).await?;
        return Ok(());
    }
    let clients = connect_all(load.connections, || RawClient::connect(addr)).await?;
    super::fixed(&clients, load.callers, n).await
}
