//! The upper bound: a raw tokio length-delimited echo. The server writes back every frame it reads
//! (batching the flush over frames already buffered); the client keeps `callers` frames in flight
//! per connection from a single task, with no ids, no envelope and no per-call task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::{payload, Load, Meter};

type Conn = Framed<TcpStream, LengthDelimitedCodec>;

/// Starts the echo server on a free loopback port; returns its address.
pub async fn start() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(Framed::new(stream, LengthDelimitedCodec::new())));
        }
    });
    Ok(addr)
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

/// Echoes per second with `load.callers / load.connections` frames kept in flight per connection.
pub async fn throughput(addr: SocketAddr, load: Load) -> anyhow::Result<f64> {
    let meter = Arc::new(Meter::default());
    let depth = (load.callers / load.connections).max(1);
    let mut tasks = Vec::new();
    for _ in 0..load.connections {
        let mut conn = connect(addr).await?;
        let meter = Arc::clone(&meter);
        tasks.push(tokio::spawn(async move {
            let data = Bytes::from(payload());
            for _ in 0..depth {
                conn.feed(data.clone()).await?;
            }
            SinkExt::<Bytes>::flush(&mut conn).await?;
            let mut outstanding = depth;
            while outstanding > 0 {
                // Take every reply already here, then refill the pipeline with one flush.
                let mut arrived = 0;
                let reply = conn
                    .next()
                    .await
                    .ok_or_else(|| anyhow::anyhow!("closed"))??;
                anyhow::ensure!(reply.len() == data.len(), "wrong echo");
                arrived += 1;
                while let Some(Some(reply)) = conn.next().now_or_never() {
                    anyhow::ensure!(reply?.len() == data.len(), "wrong echo");
                    arrived += 1;
                }
                for _ in 0..arrived {
                    meter.tick();
                }
                outstanding -= arrived;
                if !meter.stopped() {
                    for _ in 0..arrived {
                        conn.feed(data.clone()).await?;
                    }
                    SinkExt::<Bytes>::flush(&mut conn).await?;
                    outstanding += arrived;
                }
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    let rate = meter.measure(load).await;
    for task in tasks {
        task.await??;
    }
    Ok(rate)
}
