//! The RPC contenders. Each serves an echo of a byte vector on `127.0.0.1:0` and offers the same
//! two measurements: sequential round trips (one caller), and calls completed while `callers`
//! tasks call concurrently over `connections` connections.

pub mod fluxon_side;
pub mod raw_side;
pub mod tarpc_side;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Settings of one throughput measurement.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Concurrent callers in total.
    pub callers: usize,
    /// Connections they are spread over (callers / connections each).
    pub connections: usize,
    /// Time run before counting.
    pub warmup: Duration,
    /// Time counted.
    pub window: Duration,
}

/// Shared between a measurement and its caller tasks: a completed-call counter and a stop flag.
#[derive(Default)]
pub struct Meter {
    /// Calls completed so far.
    pub done: AtomicU64,
    /// Set when callers must stop.
    pub stop: AtomicBool,
}

impl Meter {
    /// Counts one completed call.
    pub fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether callers should stop.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Waits the warm-up, counts calls over the window, stops the callers; calls per second.
    pub async fn measure(self: &Arc<Self>, load: Load) -> f64 {
        tokio::time::sleep(load.warmup).await;
        let (start, before) = (Instant::now(), self.done.load(Ordering::Relaxed));
        tokio::time::sleep(load.window).await;
        let (elapsed, after) = (start.elapsed(), self.done.load(Ordering::Relaxed));
        self.stop.store(true, Ordering::Relaxed);
        (after - before) as f64 / elapsed.as_secs_f64()
    }
}

/// The echoed payload: 32 bytes, as a small call would carry.
pub fn payload() -> Vec<u8> {
    (0..32u8).collect()
}

/// A client that can make one echo call; fluxon and tarpc are measured through it alike.
pub trait Echo: Clone + Send + Sync + 'static {
    /// One call; the reply.
    fn echo(&self, data: &[u8]) -> impl Future<Output = anyhow::Result<Vec<u8>>> + Send;
}

/// `n` sequential round trips after `warmup` untimed ones.
pub async fn sequential<C: Echo>(
    client: &C,
    warmup: usize,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let data = payload();
    for _ in 0..warmup {
        client.echo(&data).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let reply = client.echo(&data).await?;
        samples.push(start.elapsed());
        anyhow::ensure!(reply == data, "wrong echo");
    }
    Ok(samples)
}

/// Calls per second with `load.callers` tasks calling in a loop, spread over `clients` (one per
/// connection).
pub async fn concurrent<C: Echo>(clients: &[C], load: Load) -> anyhow::Result<f64> {
    anyhow::ensure!(!clients.is_empty(), "no clients");
    let meter = Arc::new(Meter::default());
    let mut tasks = Vec::new();
    for i in 0..load.callers {
        let client = clients[i % clients.len()].clone();
        let meter = Arc::clone(&meter);
        tasks.push(tokio::spawn(async move {
            let data = payload();
            while !meter.stopped() {
                let reply = client.echo(&data).await?;
                anyhow::ensure!(reply.len() == data.len(), "wrong echo");
                meter.tick();
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

/// `n` clients from `connect`, one connection each.
pub async fn connect_all<C, F, Fut>(n: usize, mut connect: F) -> anyhow::Result<Vec<C>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<C>>,
{
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(connect().await?);
    }
    Ok(clients)
}

/// Exactly `n` calls, made by `callers` tasks spread over `clients` (one per connection): a fixed
/// amount of work, for the instruction and system-call counts.
pub async fn fixed<C: Echo>(clients: &[C], callers: usize, n: u64) -> anyhow::Result<()> {
    anyhow::ensure!(!clients.is_empty() && callers > 0, "no clients or callers");
    let left = Arc::new(AtomicU64::new(n));
    let mut tasks = Vec::new();
    for i in 0..callers {
        let client = clients[i % clients.len()].clone();
        let left = Arc::clone(&left);
        tasks.push(tokio::spawn(async move {
            let data = payload();
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let reply = client.echo(&data).await?;
                anyhow::ensure!(reply == data, "wrong echo");
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Listens on a free loopback port and hands each accepted connection (TCP_NODELAY set, framed
/// with a default length-delimited codec) to `serve`; returns the address.
pub async fn listen<F>(serve: F) -> anyhow::Result<std::net::SocketAddr>
where
    F: Fn(Framed<TcpStream, LengthDelimitedCodec>) + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            serve(Framed::new(stream, LengthDelimitedCodec::new()));
        }
    });
    Ok(addr)
}
