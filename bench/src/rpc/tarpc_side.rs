//! tarpc: an `echo` service over its serde transport on TCP (bincode), with TCP_NODELAY set on
//! both ends as fluxon and the raw echo do.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use tarpc::server::{BaseChannel, Channel};
use tarpc::tokio_serde::formats::Bincode;
use tarpc::{client, context};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::{concurrent, connect_all, listen, sequential, Load};

/// The service.
#[tarpc::service]
pub trait Echo {
    /// Echoes its payload.
    async fn echo(data: Vec<u8>) -> Vec<u8>;
}

#[derive(Clone)]
struct EchoServer;

impl Echo for EchoServer {
    async fn echo(self, _: context::Context, data: Vec<u8>) -> Vec<u8> {
        data
    }
}

/// Starts a tarpc server on a free loopback port; returns its address.
pub async fn start() -> anyhow::Result<SocketAddr> {
    listen(|framed| {
        let transport = tarpc::serde_transport::new(framed, Bincode::default());
        let channel = BaseChannel::with_defaults(transport);
        let calls = channel
            .execute(EchoServer.serve())
            .for_each(|call| async move {
                tokio::spawn(call);
            });
        tokio::spawn(calls);
    })
    .await
}

async fn connect(addr: SocketAddr) -> anyhow::Result<EchoClient> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let framed = Framed::new(stream, LengthDelimitedCodec::new());
    let transport = tarpc::serde_transport::new(framed, Bincode::default());
    Ok(EchoClient::new(client::Config::default(), transport).spawn())
}

impl super::Echo for EchoClient {
    async fn echo(&self, data: &[u8]) -> anyhow::Result<Vec<u8>> {
        Ok(EchoClient::echo(self, context::current(), data.to_vec()).await?)
    }
}

/// `n` sequential round trips after `warmup` untimed ones.
pub async fn latency(addr: SocketAddr, warmup: usize, n: usize) -> anyhow::Result<Vec<Duration>> {
    sequential(&connect(addr).await?, warmup, n).await
}

/// Calls per second under `load`.
pub async fn throughput(addr: SocketAddr, load: Load) -> anyhow::Result<f64> {
    let clients = connect_all(load.connections, || connect(addr)).await?;
    concurrent(&clients, load).await
}

/// Exactly `n` calls: sequential over the latency client when `load.callers` is 1 on one
/// connection, otherwise as [`throughput`] makes them (for the instruction and syscall counts).
pub async fn calls(addr: SocketAddr, load: Load, n: u64) -> anyhow::Result<()> {
    if load.callers == 1 && load.connections == 1 {
        latency(addr, 0, usize::try_from(n)?).await?;
        return Ok(());
    }
    let clients = connect_all(load.connections, || connect(addr)).await?;
    super::fixed(&clients, load.callers, n).await
}
