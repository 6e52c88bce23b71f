//! The PROXY protocol (HAProxy's, versions 1 and 2): a TCP load balancer in front of a cluster
//! says, before the client's first byte, which address the connection really comes from, so
//! that per-address limits count the real peer and not the balancer.
//!
//! Off unless the server names its balancers; only a connection from one of them is read for a
//! header (and must have one); from anyone else a header is just bytes that are not a Hello.
//! The header is read exactly (nothing of the client's own bytes is consumed), bounded in size
//! and time, and parsed by the `ppp` crate. A `LOCAL` header (the balancer's own health check)
//! or one without an IP address keeps the balancer's address.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Version 2's signature, the first 12 bytes of its header.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest version 1 header (the spec's bound, CRLF included).
const V1_MAX: usize = 107;

/// The most address and TLV bytes a version 2 header may carry here (IPv6 addresses are 36;
/// the rest is room for a balancer's TLVs).
const V2_MAX_BODY: usize = 512;

/// How long to wait for the rest of a header that came in pieces (balancers send it whole).
const PIECE_WAIT: Duration = Duration::from_millis(2);

/// Why a balancer's connection was closed before its handshake.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// No complete header within the handshake time.
    #[error("no PROXY header within {0:?}")]
    Timeout(Duration),
    /// The bytes are not a PROXY header, or one too long.
    #[error("not a PROXY protocol header: {0}")]
    Malformed(String),
    /// The connection ended or failed first.
    #[error("the connection ended before its PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// The addresses the server takes PROXY headers from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Balancers(Vec<IpAddr>);

impl Balancers {
    pub fn new(addresses: impl IntoIterator<Item = IpAddr>) -> Self {
        Balancers(addresses.into_iter().collect())
    }

    /// Whether a connection from `ip` starts with a PROXY header.
    pub fn includes(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|b| canonical(*b) == ip)
    }
}

/// An IPv4 address seen as IPv6 (`::ffff:a.b.c.d`) as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Reads the PROXY header a balancer at `balancer` sent on `stream`, within `limit`: the
/// client's real address (the balancer's own for a `LOCAL` or address-less header).
pub(crate) async fn read_header(
    stream: &mut TcpStream,
    balancer: SocketAddr,
    limit: Duration,
) -> Result<SocketAddr, ProxyError> {
    match tokio::time::timeout(limit, read(stream)).await {
        Ok(Ok(header)) => real_peer(&header, balancer),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(ProxyError::Timeout(limit)),
    }
}

/// The header's bytes, read exactly.
async fn read(stream: &mut TcpStream) -> Result<Vec<u8>, ProxyError> {
    let mut start = [0u8; 16];
    // Enough to tell the versions apart (a v1 header is at least 15 bytes: "PROXY UNKNOWN\r\n").
    let mut seen = 0;
    while seen < 15 {
        let n = stream.peek(&mut start).await?;
        if n == 0 {
            return Err(ProxyError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if n == seen {
            // Nothing new yet (the bytes already in stay "readable"): wait a little for more.
            tokio::time::sleep(PIECE_WAIT).await;
        }
        seen = n;
        if start[..n.min(12)] != V2_SIGNATURE[..n.min(12)]
            && !b"PROXY ".starts_with(&start[..n.min(6)])
        {
            return Err(ProxyError::Malformed(
                "neither version's signature".to_owned(),
            ));
        }
    }
    if start[..12] == V2_SIGNATURE {
        let mut header = vec![0u8; 16];
        stream.read_exact(&mut header).await?;
        let body = usize::from(u16::from_be_bytes([header[14], header[15]]));
        if body > V2_MAX_BODY {
            return Err(ProxyError::Malformed(format!(
                "a version 2 header of {body} bytes (at most {V2_MAX_BODY})"
            )));
        }
        header.resize(16 + body, 0);
        stream.read_exact(&mut header[16..]).await?;
        return Ok(header);
    }
    // Version 1: a line; peek until its CRLF is in, then read exactly the line.
    let mut line = [0u8; V1_MAX];
    loop {
        let n = stream.peek(&mut line).await?;
        if n == 0 {
            return Err(ProxyError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        if let Some(end) = line[..n].windows(2).position(|w| w == b"\r\n") {
            let mut header = vec![0u8; end + 2];
            stream.read_exact(&mut header).await?;
            return Ok(header);
        }
        if n == V1_MAX {
            return Err(ProxyError::Malformed(format!(
                "a version 1 line longer than {V1_MAX} bytes"
            )));
        }
        tokio::time::sleep(PIECE_WAIT).await;
    }
}

/// The source address a complete header names.
fn real_peer(header: &[u8], balancer: SocketAddr) -> Result<SocketAddr, ProxyError> {
    use ppp::{v1, v2, HeaderResult};
    let malformed = |err: &dyn std::fmt::Display| ProxyError::Malformed(err.to_string());
    match HeaderResult::parse(header) {
        HeaderResult::V1(Ok(header)) => Ok(match header.addresses {
            v1::Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
            v1::Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
            v1::Addresses::Unknown => balancer,
        }),
        HeaderResult::V2(Ok(header)) => Ok(match (header.command, header.addresses) {
            (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                SocketAddr::from((a.source_address, a.source_port))
            }
            (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                SocketAddr::from((a.source_address, a.source_port))
            }
            _ => balancer,
        }),
        HeaderResult::V1(Err(err)) => Err(malformed(&err)),
        HeaderResult::V2(Err(err)) => Err(malformed(&err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn balancer() -> SocketAddr {
        "127.0.0.9:4000".parse().unwrap()
    }

    #[test]
    fn version_1_and_2_headers_name_the_real_peer() {
        let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 51000 8080\r\n";
        assert_eq!(
            real_peer(v1, balancer()).unwrap(),
            "203.0.113.7:51000".parse().unwrap()
        );
        let v1_six = b"PROXY TCP6 2001:db8::1 ::1 51000 8080\r\n";
        assert_eq!(
            real_peer(v1_six, balancer()).unwrap(),
            "[2001:db8::1]:51000".parse().unwrap()
        );
        let v2 = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (
                "198.51.100.2:40000".parse::<SocketAddr>().unwrap(),
                balancer(),
            ),
        )
        .build()
        .unwrap();
        assert_eq!(
            real_peer(&v2, balancer()).unwrap(),
            "198.51.100.2:40000".parse().unwrap()
        );
    }

    #[test]
    fn local_and_unknown_headers_keep_the_balancer_and_garbage_is_refused() {
        assert_eq!(
            real_peer(b"PROXY UNKNOWN\r\n", balancer()).unwrap(),
            balancer()
        );
        assert!(real_peer(b"PROXY TCP4 nonsense\r\n", balancer()).is_err());
        assert!(real_peer(b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n", balancer()).is_err());
    }

    #[test]
    fn balancers_match_mapped_addresses() {
        let balancers = Balancers::new(["127.0.0.9".parse().unwrap()]);
        assert!(balancers.includes("127.0.0.9".parse().unwrap()));
        assert!(balancers.includes("::ffff:127.0.0.9".parse().unwrap()));
        assert!(!balancers.includes("127.0.0.1".parse().unwrap()));
    }
}
