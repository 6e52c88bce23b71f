//! The raw contenders of the cloud benchmark: the same bytes over a loopback TCP socket with
//! nothing else. `copy_*_file` move a file to a file (read, socket, write, fsync: what any durable
//! transfer must do, without protocol, hashing or metadata); `copy_memory` moves bytes from memory
//! to memory (the network path alone).

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// Buffer size for the raw copies (as large as fluxon's pipeline holds in flight).
const BUFFER: usize = 1 << 20;

/// Copies the file `from` to the file `to` through a loopback socket with tokio's copy, then
/// fsyncs `to`. Returns the bytes moved.
pub async fn copy_file(from: &Path, to: &Path) -> anyhow::Result<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let to = to.to_path_buf();
    let receiver = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut out = BufWriter::with_capacity(BUFFER, tokio::fs::File::create(&to).await?);
        let n = tokio::io::copy(&mut socket, &mut out).await?;
        out.flush().await?;
        out.into_inner().sync_all().await?;
        Ok::<u64, anyhow::Error>(n)
    });
    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let mut input = BufReader::with_capacity(BUFFER, tokio::fs::File::open(from).await?);
    let sent = tokio::io::copy_buf(&mut input, &mut socket).await?;
    socket.shutdown().await?;
    let received = receiver.await??;
    anyhow::ensure!(sent == received, "sent {sent}, received {received}");
    Ok(received)
}

/// [`copy_file`] with plain blocking I/O on two threads (the sender reads the file into a 1 MiB
/// buffer and writes the socket; the receiver reads the socket and writes the file, then fsyncs):
/// the fastest simple way, with no async runtime in the path.
pub fn copy_file_threads(from: &Path, to: &Path) -> anyhow::Result<u64> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let to = to.to_path_buf();
    let receiver = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept()?;
        let mut out = std::fs::File::create(&to)?;
        let mut buf = vec![0u8; BUFFER];
        let mut n = 0u64;
        loop {
            let got = socket.read(&mut buf)?;
            if got == 0 {
                break;
            }
            out.write_all(&buf[..got])?;
            n += got as u64;
        }
        out.sync_all()?;
        Ok::<u64, anyhow::Error>(n)
    });
    let mut socket = std::net::TcpStream::connect(addr)?;
    socket.set_nodelay(true)?;
    let mut input = std::fs::File::open(from)?;
    let mut buf = vec![0u8; BUFFER];
    let mut sent = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        socket.write_all(&buf[..n])?;
        sent += n as u64;
    }
    socket.shutdown(std::net::Shutdown::Write)?;
    let received = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("the receiving thread panicked"))??;
    anyhow::ensure!(sent == received, "sent {sent}, received {received}");
    Ok(received)
}

/// Sends `len` bytes from a buffer in memory through a loopback socket into a buffer in memory.
pub async fn copy_memory(len: u64) -> anyhow::Result<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let receiver = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buf = vec![0u8; BUFFER];
        let mut n = 0u64;
        loop {
            let got = socket.read(&mut buf).await?;
            if got == 0 {
                break;
            }
            n += got as u64;
        }
        Ok::<u64, anyhow::Error>(n)
    });
    let mut socket = TcpStream::connect(addr).await?;
    socket.set_nodelay(true)?;
    let buf = vec![7u8; BUFFER];
    let mut left = len;
    while left > 0 {
        let n = left.min(BUFFER as u64) as usize;
        socket.write_all(&buf[..n]).await?;
        left -= n as u64;
    }
    socket.shutdown().await?;
    let received = receiver.await??;
    anyhow::ensure!(received == len, "sent {len}, received {received}");
    Ok(received)
}
