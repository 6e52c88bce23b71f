//! fluxon: an `echo` view, called through `ConnectionHandler::call`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxon::{view, views, AsyncServer, ConnectionHandler, Request, Router, RunningServer};

use super::{payload, Load, Meter};

/// Echoes its payload.
#[view]
pub async fn echo(_req: Request, data: Vec<u8>) -> Vec<u8> {
    data
}

/// Starts a fluxon server with the echo view on a free loopback port.
pub async fn start() -> anyhow::Result<RunningServer> {
    let router = Router::new().mapping(views![echo])?;
    Ok(AsyncServer::new(0).router(router).start().await?)
}

/// `n` sequential round trips after `warmup` untimed ones.
pub async fn latency(addr: SocketAddr, warmup: usize, n: usize) -> anyhow::Result<Vec<Duration>> {
    let conn = ConnectionHandler::connect(addr.to_string()).await?;
    let data = payload();
    for _ in 0..warmup {
        conn.call(echo, &data).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let reply = conn.call(echo, &data).await?;
        samples.push(start.elapsed());
        anyhow::ensure!(reply == data, "wrong echo");
    }
    conn.close().await;
    Ok(samples)
}

/// Calls per second under `load`.
pub async fn throughput(server: &RunningServer, load: Load) -> anyhow::Result<f64> {
    let meter = Arc::new(Meter::default());
    let mut tasks = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..load.connections {
        conns.push(ConnectionHandler::connect(server.local_addr().to_string()).await?);
    }
    for i in 0..load.callers {
        let conn = conns[i % conns.len()].clone();
        let meter = Arc::clone(&meter);
        tasks.push(tokio::spawn(async move {
            let data = payload();
            while !meter.stopped() {
                let reply = conn.call(echo, &data).await?;
                anyhow::ensure!(reply.len() == data.len(), "wrong echo");
                meter.tick();
            }
            Ok(())
        }));
    }
    let rate = meter.measure(load).await;
    for task in tasks {
        task.await??;
    }
    for conn in conns {
        conn.close().await;
    }
    Ok(rate)
}
