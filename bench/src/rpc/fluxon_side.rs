//! fluxon: an `echo` view, called through `ConnectionHandler::call`.

use std::net::SocketAddr;
use std::time::Duration;

use fluxon::{view, views, AsyncServer, ConnectionHandler, Request, Router, RunningServer};

use super::{concurrent, sequential, Echo, Load};

/// Echoes its payload.
#[view]
pub async fn echo(_req: Request, data: Vec<u8>) -> Vec<u8> {
    data
}

impl Echo for ConnectionHandler {
    async fn echo(&self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        // The typed call takes the view's payload type, as tarpc's generated client takes its.
        Ok(self.call(echo, &data.to_vec()).await?)
    }
}

/// Starts a fluxon server with the echo view on a free loopback port.
pub async fn start() -> anyhow::Result<RunningServer> {
    let router = Router::new().mapping(views![echo])?;
    Ok(AsyncServer::new(0).router(router).start().await?)
}

/// `n` sequential round trips after `warmup` untimed ones.
pub async fn latency(addr: SocketAddr, warmup: usize, n: usize) -> anyhow::Result<Vec<Duration>> {
    let conn = ConnectionHandler::connect(addr.to_string()).await?;
    let samples = sequential(&conn, warmup, n).await?;
    conn.close().await;
    Ok(samples)
}

async fn connect(server: &RunningServer, n: usize) -> anyhow::Result<Vec<ConnectionHandler>> {
    let addr = server.local_addr().to_string();
    super::connect_all(n, || async {
        Ok(ConnectionHandler::connect(addr.clone()).await?)
    })
    .await
}

/// Calls per second under `load`.
pub async fn throughput(server: &RunningServer, load: Load) -> anyhow::Result<f64> {
    let conns = connect(server, load.connections).await?;
    let rate = concurrent(&conns, load).await?;
    for conn in conns {
        conn.close().await;
    }
    Ok(rate)
}

/// Exactly `n` calls: sequential when `load.callers` is 1 on one connection, otherwise as
/// [`throughput`] makes them (for the instruction and syscall counts).
pub async fn calls(server: &RunningServer, load: Load, n: u64) -> anyhow::Result<()> {
    if load.callers == 1 && load.connections == 1 {
        latency(server.local_addr(), 0, usize::try_from(n)?).await?;
        return Ok(());
    }
    let conns = connect(server, load.connections).await?;
    super::fixed(&conns, load.callers, n).await?;
    for conn in conns {
        conn.close().await;
    }
    Ok(())
}
