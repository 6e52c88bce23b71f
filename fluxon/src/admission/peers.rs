//! Who is connected from where: connections and handshakes counted per peer address, so one host
//! cannot take every slot of a listener, and a flood of handshakes that never finish cannot take
//! the slots that finished ones need.
//!
//! A peer is keyed by its IPv4 address, or by its IPv6 address cut to a prefix (a /64 by default:
//! one host usually holds a whole /64, so keying single IPv6 addresses would give it billions of
//! identities). An IPv4 address mapped into IPv6 counts as the IPv4 address.
//!
//! Admission hands out guards; a slot is given back when its guard drops, however the connection
//! ends. Both listeners (the main one and the cloud endpoint) keep their own [`Peers`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::wire::Capacity;

/// A peer address as limits see it: an IPv4 address, or an IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerKey(IpAddr);

impl PeerKey {
    /// The key of `ip`, IPv6 addresses cut to their first `ipv6_prefix` bits.
    pub fn new(ip: IpAddr, ipv6_prefix: u8) -> PeerKey {
        match ip {
            IpAddr::V4(v4) => PeerKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => PeerKey(IpAddr::V4(v4)),
                None => {
                    let bits = u32::from(ipv6_prefix.min(128));
                    let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                    PeerKey(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
                }
            },
        }
    }

    /// The address (for IPv6, the prefix with the rest zeroed).
    pub fn ip(&self) -> IpAddr {
        self.0
    }
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What one listener admits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerLimits {
    /// Connections at once, in all.
    pub connections: usize,
    /// Connections at once from one peer (`None`: no per-peer bound).
    pub connections_per_peer: Option<usize>,
    /// Connections still in their handshake at once, in all.
    pub handshakes: usize,
    /// Of those, from one peer.
    pub handshakes_per_peer: Option<usize>,
    /// How IPv6 peers are keyed.
    pub ipv6_prefix: u8,
}

#[derive(Default)]
struct Counts {
    connections: usize,
    handshakes: usize,
}

#[derive(Default)]
struct Tables {
    total: Counts,
    by_peer: HashMap<PeerKey, Counts>,
}

/// The connections and handshakes of one listener, per peer.
pub(crate) struct Peers {
    limits: PeerLimits,
    tables: Mutex<Tables>,
}

/// One admitted connection; its slot (and its handshake slot, if still held) is given back on drop.
pub(crate) struct Admitted {
    peers: Arc<Peers>,
    key: PeerKey,
    handshaking: bool,
}

impl Admitted {
    /// The handshake is done: its slot goes back, the connection's stays.
    pub fn handshake_done(&mut self) {
        if std::mem::take(&mut self.handshaking) {
            let mut tables = self.peers.lock();
            tables.total.handshakes -= 1;
            if let Some(counts) = tables.by_peer.get_mut(&self.key) {
                counts.handshakes -= 1;
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.handshake_done();
        let mut tables = self.peers.lock();
        tables.total.connections -= 1;
        if let Some(counts) = tables.by_peer.get_mut(&self.key) {
            counts.connections -= 1;
            if counts.connections == 0 {
                tables.by_peer.remove(&self.key);
            }
        }
    }
}

impl Peers {
    /// The next connection on `listener` (TCP_NODELAY set), not admitted yet (the caller admits
    /// it with [`admit`](Self::admit) once it knows the peer: a balancer's connection names it
    /// in a PROXY header); `None` once `shutdown` is cancelled. Accept errors (out of file
    /// descriptors and the like) are logged and waited out a little instead of spinning.
    pub async fn next(
        listener: &TcpListener,
        shutdown: &CancellationToken,
    ) -> Option<(TcpStream, SocketAddr)> {
        loop {
            let accepted = tokio::select! {
                () = shutdown.cancelled() => return None,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    return Some((stream, peer));
                }
                Err(err) => {
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    pub fn new(limits: PeerLimits) -> Arc<Peers> {
        Arc::new(Peers {
            limits,
            tables: Mutex::new(Tables::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        // Each critical section is a few counter updates: a poisoned lock holds consistent counts.
        self.tables
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The key `ip` is counted under.
    pub fn key(&self, ip: IpAddr) -> PeerKey {
        PeerKey::new(ip, self.limits.ipv6_prefix)
    }

    /// Admits a new connection from `ip` into a connection slot and a handshake slot, or says
    /// which limit is in the way.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Capacity> {
        let key = self.key(ip);
        let limits = self.limits;
        let mut tables = self.lock();
        if tables.total.connections >= limits.connections {
            return Err(Capacity::Connections);
        }
        if tables.total.handshakes >= limits.handshakes {
            return Err(Capacity::Handshakes);
        }
        let mine = tables.by_peer.get(&key);
        let (connections, handshakes) = mine.map_or((0, 0), |c| (c.connections, c.handshakes));
        if limits
            .connections_per_peer
            .is_some_and(|max| connections >= max)
        {
            return Err(Capacity::PeerConnections);
        }
        if limits
            .handshakes_per_peer
            .is_some_and(|max| handshakes >= max)
        {
            return Err(Capacity::PeerHandshakes);
        }
        tables.total.connections += 1;
        tables.total.handshakes += 1;
        let counts = tables.by_peer.entry(key).or_default();
        counts.connections += 1;
        counts.handshakes += 1;
        Ok(Admitted {
            peers: Arc::clone(self),
            key,
            handshaking: true,
        })
    }

    /// Connections open now from `ip`'s peer.
    #[cfg(test)]
    pub fn connections_of(&self, ip: IpAddr) -> usize {
        let key = self.key(ip);
        self.lock().by_peer.get(&key).map_or(0, |c| c.connections)
    }

    /// Connections open now, and how many of them are still in their handshake.
    pub fn totals(&self) -> (usize, usize) {
        let tables = self.lock();
        (tables.total.connections, tables.total.handshakes)
    }

    /// Peer addresses with a connection open now.
    pub fn peer_count(&self) -> usize {
        self.lock().by_peer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PeerLimits {
        PeerLimits {
            connections: 5,
            connections_per_peer: Some(2),
            handshakes: 4,
            handshakes_per_peer: Some(2),
            ipv6_prefix: 64,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv6_peers_are_keyed_by_prefix_and_mapped_ipv4_as_ipv4() {
        let a = PeerKey::new(ip("2001:db8:1:2:aaaa::1"), 64);
        let b = PeerKey::new(ip("2001:db8:1:2:ffff::9"), 64);
        let other = PeerKey::new(ip("2001:db8:1:3::1"), 64);
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(a.to_string(), "2001:db8:1:2::");
        assert_ne!(
            PeerKey::new(ip("2001:db8:1:2:aaaa::1"), 128),
            PeerKey::new(ip("2001:db8:1:2:ffff::9"), 128)
        );
        assert_eq!(PeerKey::new(ip("::1"), 0), PeerKey::new(ip("ff::1"), 0));
        assert_eq!(
            PeerKey::new(ip("::ffff:127.0.0.2"), 64),
            PeerKey::new(ip("127.0.0.2"), 64)
        );
    }

    #[test]
    fn each_limit_refuses_with_its_own_capacity_and_slots_come_back() {
        let peers = Peers::new(limits());
        let mut a1 = peers.admit(ip("127.0.0.2")).unwrap();
        let a2 = peers.admit(ip("127.0.0.2")).unwrap();
        assert_eq!(
            peers.admit(ip("127.0.0.2")).err(),
            Some(Capacity::PeerConnections)
        );
        let _b1 = peers.admit(ip("127.0.0.3")).unwrap();
        let _b2 = peers.admit(ip("127.0.0.3")).unwrap();
        // Four handshakes open: the fifth connection is turned away for that.
        assert_eq!(
            peers.admit(ip("127.0.0.4")).err(),
            Some(Capacity::Handshakes)
        );
        a1.handshake_done();
        let _c = peers.admit(ip("127.0.0.4")).unwrap();
        assert_eq!(peers.totals(), (5, 4));
        assert_eq!(
            peers.admit(ip("127.0.0.5")).err(),
            Some(Capacity::Connections)
        );
        drop(a2);
        drop(a1);
        assert_eq!(peers.connections_of(ip("127.0.0.2")), 0);
        assert_eq!(peers.totals(), (3, 3));
        assert_eq!(peers.peer_count(), 2);
    }

    #[test]
    fn per_peer_handshakes_are_bounded_separately() {
        let peers = Peers::new(PeerLimits {
            connections_per_peer: None,
            handshakes: 100,
            connections: 100,
            ..limits()
        });
        let _one = peers.admit(ip("10.0.0.1")).unwrap();
        let _two = peers.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            peers.admit(ip("10.0.0.1")).err(),
            Some(Capacity::PeerHandshakes)
        );
        let mut done: Vec<Admitted> = Vec::new();
        for _ in 0..10 {
            let mut admitted = peers.admit(ip("10.0.0.2")).unwrap();
            admitted.handshake_done();
            done.push(admitted);
        }
        assert_eq!(
            peers.connections_of(ip("10.0.0.2")),
            10,
            "no per-peer cap set"
        );
    }
}
