//! `AsyncServer`: the builder for a server's address, router and limits.

use std::path::PathBuf;
use std::time::Duration;

use crate::admission::Rate;
use crate::routing::Router;
use crate::wire::DEFAULT_MAX_FRAME;

/// Every bound on what a peer can make the server spend. All have defaults; all can be set.
///
/// The per-peer limits (a peer is an IPv4 address, or an IPv6 prefix of [`ipv6_prefix`] bits)
/// can each be raised or turned off (`None`): clients behind one NAT share an address, and a
/// server behind a load balancer sees only the balancer's.
///
/// [`ipv6_prefix`]: Limits::ipv6_prefix
///
/// Read the fields; set them with the methods of the same name:
/// `Limits::default().max_connections(100).idle_timeout(Duration::from_secs(30))`.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use = "limits do nothing until given to a server"]
pub struct Limits {
    /// Connections served at once; past it, new connections are refused with
    /// `ServerFull(Connections)`.
    pub max_connections: usize,
    /// Connections at once from one peer address; past it, `ServerFull(PeerConnections)`.
    pub max_connections_per_peer: Option<usize>,
    /// Connections still in their handshake (TLS, then `Hello`) at once, server-wide; past it,
    /// `ServerFull(Handshakes)`. Established connections never wait for these slots.
    pub max_handshakes: usize,
    /// Of those, from one peer address; past it, `ServerFull(PeerHandshakes)`.
    pub max_handshakes_per_peer: Option<usize>,
    /// How many leading bits of an IPv6 address name one peer (default 64).
    pub ipv6_prefix: u8,
    /// Calls running at once on one connection; past it, the server stops reading that connection.
    pub max_in_flight: usize,
    /// The largest frame body accepted or sent once the handshake is done (the handshake itself is
    /// read under [`HANDSHAKE_MAX_FRAME`](crate::wire::HANDSHAKE_MAX_FRAME)).
    pub max_frame: usize,
    /// Bytes every connection together may hold in frames being received and replies waiting to be
    /// written, beyond each one's [`connection_allowance`](Self::connection_allowance). When it is
    /// spent, readers of large frames stop reading (backpressure) until some is given back.
    pub memory_budget: usize,
    /// What each connection may hold without drawing on the budget: frames up to this size are
    /// always read, so small calls flow whatever large frames are waiting.
    pub connection_allowance: usize,
    /// On Linux with glibc: allocations of at least this many bytes (large frames, and what is
    /// decoded from them) get a memory mapping of their own, returned to the system when freed.
    /// This sets glibc's `M_MMAP_THRESHOLD` for the whole process when the server starts (unless
    /// the `MALLOC_MMAP_THRESHOLD_` environment variable set it). Left alone, glibc raises that
    /// threshold to the largest block freed so far, and freed frames then stay in its arenas:
    /// the process could keep hundreds of MiB beyond [`memory_budget`](Self::memory_budget).
    /// Default 1 MiB; `None` leaves malloc as it is (as does any other allocator or system).
    pub malloc_mmap_threshold: Option<usize>,
    /// Time a new connection has to complete its handshake (TLS and `Hello` together).
    pub handshake_timeout: Duration,
    /// A connection silent this long is closed; after half of it the server sends a ping.
    pub idle_timeout: Duration,
    /// Bytes queued for one connection's writer before call tasks wait (a frame is accepted while
    /// the queue is under it, so the queue peaks at this plus one frame).
    pub outgoing_buffer: usize,
    /// How long a shutdown waits for calls in flight.
    pub shutdown_grace: Duration,
    /// Sessions remembered; past it, the disconnected one seen longest ago is forgotten
    /// (anonymous sessions before logged-in ones).
    pub max_sessions: usize,
    /// How long a session with no connection is kept for its client to resume it.
    pub session_ttl: Duration,
    /// How long a session lives at most, however active: then it ends (its connections are closed
    /// and its token resumes nothing), and its client starts a new one.
    pub session_lifetime: Duration,
    /// How long a cloud grant made by `Request::grant_access` stays valid.
    pub grant_ttl: Duration,
    /// Calls one session may make (`None`, the default: no limit). Past it a call is answered
    /// `Throttled` without running.
    pub calls_per_session: Option<Rate>,
    /// Password logins: hashing bounds and throttling.
    pub logins: LoginLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_connections_per_peer: Some(64),
            max_handshakes: 256,
            max_handshakes_per_peer: Some(16),
            ipv6_prefix: 64,
            max_in_flight: 64,
            max_frame: DEFAULT_MAX_FRAME,
            memory_budget: 512 * 1024 * 1024,
            connection_allowance: 16 * 1024,
            malloc_mmap_threshold: Some(1024 * 1024),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            outgoing_buffer: 1024 * 1024,
            shutdown_grace: Duration::from_secs(10),
            max_sessions: 100_000,
            session_ttl: Duration::from_secs(24 * 60 * 60),
            session_lifetime: Duration::from_secs(14 * 24 * 60 * 60),
            grant_ttl: Duration::from_secs(60),
            calls_per_session: None,
            logins: LoginLimits::default(),
        }
    }
}

/// Bounds on password logins ([`Request::login_with_password`](crate::Request::login_with_password)).
///
/// Hashing is bounded server-wide and per peer address, so a flood of logins costs a fixed amount
/// of memory and cores. Attempts are counted in token buckets: per username *and* address (the
/// tight one: a guesser from one address is stopped after a few tries), per address (a sprayer
/// of many usernames is stopped), and per username from anywhere (a flood against one account
/// from many addresses *slows* that account's logins, up to [`per_user_max_delay`], but never
/// refuses them, so an attacker cannot lock a user out). A spent bucket refuses with
/// [`LoginError::Throttled`](crate::LoginError::Throttled) and a time to retry, which doubles
/// with every further refusal up to [`max_backoff`].
///
/// [`per_user_max_delay`]: LoginLimits::per_user_max_delay
/// [`max_backoff`]: LoginLimits::max_backoff
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use = "limits do nothing until given to a server"]
pub struct LoginLimits {
    /// Password hashes (and checks) computed at once, server-wide; each argon2id hash holds
    /// 19 MiB while it runs. Default: two per core.
    pub max_concurrent_hashes: usize,
    /// Of those, at most this many for one peer address at once (default 2).
    pub max_concurrent_hashes_per_peer: Option<usize>,
    /// How long a login waits for a hashing slot before failing with `Busy` (default 2 s).
    pub hash_wait: Duration,
    /// Attempts per username from one address (default 5 a minute).
    pub per_user_and_peer: Option<Rate>,
    /// Attempts per address, whatever the username (default 30 a minute).
    pub per_peer: Option<Rate>,
    /// Attempts per username from anywhere; past it logins are slowed, never refused (default
    /// 20 a minute).
    pub per_user: Option<Rate>,
    /// The longest a login is slowed by the per-username bucket (default 1 s).
    pub per_user_max_delay: Duration,
    /// The longest a throttled address (or username and address) is made to wait (default 15 min).
    pub max_backoff: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            max_concurrent_hashes: crate::auth::default_concurrent_hashes(),
            max_concurrent_hashes_per_peer: Some(2),
            hash_wait: Duration::from_secs(2),
            per_user_and_peer: Some(Rate::per_minute(5)),
            per_peer: Some(Rate::per_minute(30)),
            per_user: Some(Rate::per_minute(20)),
            per_user_max_delay: Duration::from_secs(1),
            max_backoff: Duration::from_secs(15 * 60),
        }
    }
}

setters!(Limits {
    max_connections: usize,
    max_connections_per_peer: Option<usize>,
    max_handshakes: usize,
    max_handshakes_per_peer: Option<usize>,
    ipv6_prefix: u8,
    max_in_flight: usize,
    max_frame: usize,
    memory_budget: usize,
    connection_allowance: usize,
    malloc_mmap_threshold: Option<usize>,
    handshake_timeout: Duration,
    idle_timeout: Duration,
    outgoing_buffer: usize,
    shutdown_grace: Duration,
    max_sessions: usize,
    session_ttl: Duration,
    session_lifetime: Duration,
    grant_ttl: Duration,
    calls_per_session: Option<Rate>,
    logins: LoginLimits,
});

setters!(LoginLimits {
    max_concurrent_hashes: usize,
    max_concurrent_hashes_per_peer: Option<usize>,
    hash_wait: Duration,
    per_user_and_peer: Option<Rate>,
    per_peer: Option<Rate>,
    per_user: Option<Rate>,
    per_user_max_delay: Duration,
    max_backoff: Duration,
});

impl Limits {
    pub(crate) fn validate(&self) -> Result<(), super::ServerError> {
        use super::ServerError::InvalidLimit;
        let rates = [
            self.calls_per_session,
            self.logins.per_user_and_peer,
            self.logins.per_peer,
            self.logins.per_user,
        ];
        let checks = [
            (
                self.max_connections == 0,
                "max_connections must be at least 1",
            ),
            (
                self.max_connections_per_peer == Some(0),
                "max_connections_per_peer must be at least 1 (or None)",
            ),
            (
                self.max_handshakes == 0,
                "max_handshakes must be at least 1",
            ),
            (
                self.max_handshakes_per_peer == Some(0),
                "max_handshakes_per_peer must be at least 1 (or None)",
            ),
            (self.ipv6_prefix > 128, "ipv6_prefix must be at most 128"),
            (self.max_in_flight == 0, "max_in_flight must be at least 1"),
            (
                self.max_frame < crate::wire::MIN_MAX_FRAME,
                "max_frame must be at least 64 bytes",
            ),
            (
                self.max_frame > u32::MAX as usize,
                "max_frame must fit in u32",
            ),
            (
                self.memory_budget < self.max_frame,
                "memory_budget must hold at least one frame of max_frame bytes",
            ),
            (
                self.malloc_mmap_threshold
                    .is_some_and(|n| !(4096..=32 * 1024 * 1024).contains(&n)),
                "malloc_mmap_threshold must be from 4 KiB to 32 MiB (or None)",
            ),
            (
                self.connection_allowance < crate::wire::MIN_MAX_FRAME,
                "connection_allowance must be at least 64 bytes",
            ),
            (
                self.outgoing_buffer == 0,
                "outgoing_buffer must be at least 1",
            ),
            (self.max_sessions == 0, "max_sessions must be at least 1"),
            (
                self.idle_timeout < Duration::from_millis(10),
                "idle_timeout must be at least 10 ms",
            ),
            (
                self.session_lifetime.is_zero(),
                "session_lifetime must be more than zero",
            ),
            (
                self.logins.max_concurrent_hashes == 0,
                "logins.max_concurrent_hashes must be at least 1",
            ),
            (
                self.logins.max_concurrent_hashes_per_peer == Some(0),
                "logins.max_concurrent_hashes_per_peer must be at least 1 (or None)",
            ),
            (
                rates.iter().flatten().any(|rate| !rate.is_valid()),
                "a rate must allow at least 1 over a time of more than zero",
            ),
        ];
        match checks.into_iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err(InvalidLimit(why)),
            None => Ok(()),
        }
    }
}

/// A server being configured: `AsyncServer::new(port).router(router)`, then [`run_server`] or
/// [`AsyncServer::start`].
///
/// [`run_server`]: super::run_server
#[derive(Debug, Clone)]
#[must_use = "a server does nothing until it is started"]
pub struct AsyncServer {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) router: Option<Router>,
    pub(crate) secure: bool,
    pub(crate) tls: Option<crate::tls::TlsIdentity>,
    pub(crate) limits: Limits,
    pub(crate) log_dir: Option<PathBuf>,
    pub(crate) mailbox: Option<crate::db::AsyncDatabase>,
    pub(crate) mailbox_limits: super::MailboxLimits,
    pub(crate) group_notices: Option<String>,
    pub(crate) balancers: crate::admission::Balancers,
    pub(crate) cloud: Option<crate::cloud::CloudStorageServer>,
    pub(crate) cluster: Option<crate::cluster::Cluster>,
}

impl AsyncServer {
    /// A server on `127.0.0.1:port` (port 0 picks a free port; see [`RunningServer::local_addr`]).
    ///
    /// [`RunningServer::local_addr`]: super::RunningServer::local_addr
    pub fn new(port: u16) -> Self {
        AsyncServer {
            host: "127.0.0.1".to_owned(),
            port,
            router: None,
            secure: false,
            tls: None,
            limits: Limits::default(),
            log_dir: None,
            mailbox: None,
            mailbox_limits: super::MailboxLimits::default(),
            group_notices: None,
            balancers: crate::admission::Balancers::default(),
            cloud: None,
            cluster: None,
        }
    }

    /// Tells a group's members when a session joins or leaves it: a reverse request `name`
    /// carrying a [`GroupNotice`](super::GroupNotice), sent to the group's members (the one
    /// that joined among them) on every node, by the node where the join or leave was asked.
    pub fn group_notices(mut self, name: impl Into<String>) -> Self {
        self.group_notices = Some(name.into());
        self
    }

    /// Takes the PROXY protocol (HAProxy's, version 1 or 2) from the TCP load balancers at
    /// `balancers`: a connection from one of them must start with a PROXY header, and the
    /// address it names is the peer every per-address limit counts (connections, handshakes,
    /// login attempts) and the logs show. Off by default; a header from any other address is
    /// not read (it is not a Hello, and the handshake fails).
    pub fn proxy_protocol(mut self, balancers: impl IntoIterator<Item = std::net::IpAddr>) -> Self {
        self.balancers = crate::admission::Balancers::new(balancers);
        self
    }

    /// Makes this server a node of a cluster (see [`Cluster`](crate::Cluster)): its sessions
    /// and logins are shared with the other nodes through Redis, so a client's token resumes on
    /// any of them. [`start`](Self::start) then needs the router's
    /// [`private_key`](crate::Router::private_key) (the same on every node) and a reachable Redis.
    pub fn cluster(mut self, cluster: crate::cluster::Cluster) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Runs a cloud storage endpoint beside the server, on its own port (see
    /// [`CloudStorageServer`](crate::cloud::CloudStorageServer)); views make grants for it with
    /// [`Request::grant_access`](crate::Request::grant_access).
    pub fn cloud_storage(mut self, cloud: crate::cloud::CloudStorageServer) -> Self {
        self.cloud = Some(cloud);
        self
    }

    /// Keeps reverse requests for offline users in a table of `db` (see
    /// [`ServerHandle::reverse_request_or_keep`](super::ServerHandle::reverse_request_or_keep)),
    /// delivered when the user next logs in or reconnects: in order, at least once, each removed
    /// once the client's handler answered it.
    pub fn mailbox(mut self, db: crate::db::AsyncDatabase) -> Self {
        self.mailbox = Some(db);
        self
    }

    /// What the mailbox keeps at most: messages per user, for how long, how many tries before a
    /// message is set aside as a dead letter.
    pub fn mailbox_limits(mut self, limits: super::MailboxLimits) -> Self {
        self.mailbox_limits = limits;
        self
    }

    /// The address to listen on (default `127.0.0.1`; `0.0.0.0` for every interface).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// The views to serve.
    pub fn router(mut self, router: Router) -> Self {
        self.router = Some(router);
        self
    }

    /// Serves TLS only (the original's `secure=True`), presenting the identity given with
    /// [`tls`](Self::tls); without one, starting fails with
    /// [`ServerError::NoTlsIdentity`](super::ServerError::NoTlsIdentity) rather than serve in
    /// clear text.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Serves TLS with this certificate and key (implies [`secure(true)`](Self::secure)); the
    /// cloud endpoint presents it too unless given its own.
    pub fn tls(mut self, identity: crate::tls::TlsIdentity) -> Self {
        self.tls = Some(identity);
        self.secure = true;
        self
    }

    /// Replaces every limit at once.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Connections served at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.limits.max_connections = n;
        self
    }

    /// Connections at once from one peer address (`None`: no per-peer limit).
    pub fn max_connections_per_peer(mut self, n: Option<usize>) -> Self {
        self.limits.max_connections_per_peer = n;
        self
    }

    /// Connections in their handshake at once, server-wide, and from one peer address.
    pub fn max_handshakes(mut self, total: usize, per_peer: Option<usize>) -> Self {
        self.limits.max_handshakes = total;
        self.limits.max_handshakes_per_peer = per_peer;
        self
    }

    /// Bytes all connections together may hold in frames and replies beyond their allowance.
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.limits.memory_budget = bytes;
        self
    }

    /// The size from which allocations get a mapping of their own that goes back to the system
    /// when freed (`None`: leave malloc alone); see [`Limits::malloc_mmap_threshold`].
    pub fn malloc_mmap_threshold(mut self, bytes: Option<usize>) -> Self {
        self.limits.malloc_mmap_threshold = bytes;
        self
    }

    /// Calls one session may make (`None`: no limit); past it calls are answered `Throttled`.
    pub fn calls_per_session(mut self, rate: Option<Rate>) -> Self {
        self.limits.calls_per_session = rate;
        self
    }

    /// Bounds on password logins.
    pub fn login_limits(mut self, logins: LoginLimits) -> Self {
        self.limits.logins = logins;
        self
    }

    /// How long a session lives at most, however active.
    pub fn session_lifetime(mut self, lifetime: Duration) -> Self {
        self.limits.session_lifetime = lifetime;
        self
    }

    /// Calls running at once on one connection.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.limits.max_in_flight = n;
        self
    }

    /// The largest frame body accepted.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.limits.max_frame = bytes;
        self
    }

    /// Time a new connection has to complete its handshake.
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.limits.handshake_timeout = timeout;
        self
    }

    /// A connection silent this long is closed (a ping is sent after half of it).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle_timeout = timeout;
        self
    }

    /// Bytes queued for one connection before call replies wait and reverse requests to it fail
    /// (a client that does not read cannot make the server's memory grow past this, plus one
    /// frame, per connection).
    pub fn outgoing_buffer(mut self, bytes: usize) -> Self {
        self.limits.outgoing_buffer = bytes;
        self
    }

    /// How long a shutdown waits for calls in flight.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.limits.shutdown_grace = grace;
        self
    }

    /// Also write logs to a file per day in `dir` (`fluxon.log.YYYY-MM-DD`), as the original Fluxon
    /// did. Installs a global `tracing` subscriber when the server starts, unless one is set already.
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A change that spoils a limit, and the name its error starts with.
    type Spoil = (fn(&mut Limits), &'static str);

    fn why(limits: Limits) -> Option<&'static str> {
        match limits.validate() {
            Ok(()) => None,
            Err(super::super::ServerError::InvalidLimit(why)) => Some(why),
            Err(other) => panic!("not a limit error: {other}"),
        }
    }

    #[test]
    fn the_defaults_hold_and_nonsense_is_named() {
        assert_eq!(why(Limits::default()), None);
        let cases: [Spoil; 4] = [
            (|l| l.max_connections = 0, "max_connections"),
            (|l| l.memory_budget = l.max_frame - 1, "memory_budget"),
            (
                |l| l.malloc_mmap_threshold = Some(0),
                "malloc_mmap_threshold",
            ),
            (
                |l| l.malloc_mmap_threshold = Some(64 * 1024 * 1024),
                "malloc_mmap_threshold",
            ),
        ];
        for (spoil, name) in cases {
            let mut limits = Limits::default();
            spoil(&mut limits);
            let why = why(limits).unwrap_or_else(|| panic!("{name} accepted"));
            assert!(why.starts_with(name), "{why}");
        }
        let left_alone = Limits {
            malloc_mmap_threshold: None,
            ..Limits::default()
        };
        assert_eq!(why(left_alone), None);
    }
}
