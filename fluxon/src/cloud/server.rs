//! [`CloudStorageServer`]: the cloud endpoint's settings (every bound on what a peer can make it
//! spend), their checks at start, and the [`Endpoint`] that every cloud connection shares. The
//! listener and the connections are in [`listener`](super::listener).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::floor::RateFloor;
use super::handle::Cloud;
use super::protocol::MAX_RESPONSE;
use super::stream::Bounds;
use super::unauthorized::Unauthorized;
use super::walk::{PageSize, WalkBound, ITEM_OVERHEAD};
use crate::admission::Counters;
use crate::db::AsyncDatabase;

/// Why the endpoint could not start; the main server, which starts it, reports each as its
/// [`ServerError`](crate::ServerError) of the same name.
#[derive(Debug)]
pub(crate) enum StartError {
    /// A setting that cannot work.
    InvalidLimit(&'static str),
    /// Secure without a certificate.
    NoTlsIdentity,
    /// The certificate and key could not be used.
    Tls(crate::tls::TlsError),
    /// No database for the metadata.
    NoDatabase,
    /// The folder or the metadata could not be opened.
    Open(super::CloudError),
    /// The address could not be bound.
    Bind {
        /// The address asked for.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// The cloud endpoint of a server (the original's `CloudStorageServer(port=8888,
/// cloud_folder=...)`): give it to [`AsyncServer::cloud_storage`](crate::AsyncServer::cloud_storage).
/// It listens on a port of its own, so bulk transfers never stall the calls on the main one, and
/// shares the main server's grant key and sessions: a grant a view made is checked here.
///
/// It serves TLS whenever the main server does (presenting the main server's identity unless
/// given its own with [`tls`](Self::tls)), so a session token never travels in clear text on
/// one port when it is protected on the other.
///
/// Every resource a peer can make it spend is bounded, each with a setter below: connections (in
/// all, per peer address, and still in their handshake), the time a connection may be quiet,
/// the rate a transfer must keep, the bytes and the items an owner may hold (uploads in progress
/// included), the size of a tree page and the work of any walk of the disk. Settings that cannot
/// work are refused when the server starts
/// ([`ServerError::InvalidLimit`](crate::ServerError::InvalidLimit)).
///
/// ```no_run
/// use std::time::Duration;
/// use fluxon::cloud::CloudStorageServer;
/// use fluxon::{db::AsyncDatabase, AsyncServer, Router};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let db = AsyncDatabase::open("app.sqlite3")?;
/// let cloud = CloudStorageServer::new(8888, "cloud")
///     // Clients behind one NAT: more connections per address than the default 16.
///     .max_connections_per_peer(Some(64))
///     .min_transfer_rate(32 * 1024, Duration::from_secs(20));
/// let server = AsyncServer::new(8080)
///     .router(Router::new().state(db))
///     .cloud_storage(cloud);
/// fluxon::run_server(server).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CloudStorageServer {
    pub(crate) port: u16,
    pub(crate) host: Option<String>,
    pub(crate) folder: PathBuf,
    pub(crate) database: Option<AsyncDatabase>,
    pub(crate) settings: Settings,
    pub(crate) secure: bool,
    pub(crate) tls: Option<crate::tls::TlsIdentity>,
}

/// The endpoint's bounds, as set on [`CloudStorageServer`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub max_connections: usize,
    pub max_connections_per_peer: Option<usize>,
    pub max_handshakes: usize,
    pub max_handshakes_per_peer: Option<usize>,
    pub ipv6_prefix: u8,
    pub handshake_timeout: Duration,
    pub idle_timeout: Duration,
    pub min_rate: u64,
    pub min_rate_window: Duration,
    pub partial_ttl: Duration,
    pub audit_retention: Duration,
    pub max_items_per_owner: u64,
    pub tree_page: PageSize,
    pub walk: WalkBound,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_connections: 256,
            max_connections_per_peer: Some(16),
            max_handshakes: 64,
            max_handshakes_per_peer: Some(8),
            ipv6_prefix: 64,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            min_rate: 16 * 1024,
            min_rate_window: Duration::from_secs(30),
            partial_ttl: Duration::from_secs(24 * 3600),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            max_items_per_owner: 100_000,
            tree_page: PageSize {
                items: 100_000,
                bytes: 8 * 1024 * 1024,
            },
            walk: WalkBound {
                entries: 250_000,
                time: Duration::from_secs(5),
            },
        }
    }
}

/// A page must fit a response frame with room for its framing.
const MAX_PAGE_BYTES: usize = MAX_RESPONSE - 1024 * 1024;
/// A page must hold at least one item of the longest path.
const MIN_PAGE_BYTES: usize = super::MAX_PATH + ITEM_OVERHEAD + 64;

impl Settings {
    fn validate(&self) -> Result<(), StartError> {
        let checks = [
            (
                self.max_connections == 0,
                "cloud max_connections must be at least 1",
            ),
            (
                self.max_connections_per_peer == Some(0),
                "cloud max_connections_per_peer must be at least 1 (or None)",
            ),
            (
                self.max_handshakes == 0,
                "cloud max_handshakes must be at least 1",
            ),
            (
                self.max_handshakes_per_peer == Some(0),
                "cloud max_handshakes_per_peer must be at least 1 (or None)",
            ),
            (
                self.ipv6_prefix > 128,
                "cloud ipv6_prefix must be at most 128",
            ),
            (
                self.handshake_timeout < Duration::from_millis(10),
                "cloud handshake_timeout must be at least 10 ms",
            ),
            (
                self.idle_timeout < Duration::from_millis(10),
                "cloud idle_timeout must be at least 10 ms",
            ),
            (
                self.min_rate > 0 && self.min_rate_window < Duration::from_millis(10),
                "cloud min_transfer_rate's window must be at least 10 ms",
            ),
            (
                self.audit_retention.is_zero(),
                "cloud audit_retention must be more than zero",
            ),
            (
                self.max_items_per_owner == 0,
                "cloud max_items_per_owner must be at least 1",
            ),
            (
                self.tree_page.items == 0,
                "cloud tree_page's items must be at least 1",
            ),
            (
                !(MIN_PAGE_BYTES..=MAX_PAGE_BYTES).contains(&self.tree_page.bytes),
                "cloud tree_page's bytes must hold one longest path and fit a 15 MiB frame",
            ),
            (
                self.walk.entries == 0,
                "cloud walk_limits' entries must be at least 1",
            ),
            (
                self.walk.time < Duration::from_millis(10),
                "cloud walk_limits' time must be at least 10 ms",
            ),
        ];
        match checks.into_iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err(StartError::InvalidLimit(why)),
            None => Ok(()),
        }
    }
}

impl CloudStorageServer {
    /// An endpoint on `port` (0 for any) serving `cloud_folder` (created if missing).
    pub fn new(port: u16, cloud_folder: impl Into<PathBuf>) -> Self {
        CloudStorageServer {
            port,
            host: None,
            folder: cloud_folder.into(),
            database: None,
            settings: Settings::default(),
            secure: false,
            tls: None,
        }
    }

    /// The address to bind (default: the main server's host).
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The database for the metadata tables (default: the router's
    /// [`AsyncDatabase`](crate::db::AsyncDatabase) state).
    #[must_use]
    pub fn database(mut self, db: AsyncDatabase) -> Self {
        self.database = Some(db);
        self
    }

    /// At most this many connections at once (default 256); more are turned away at once.
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.settings.max_connections = n;
        self
    }

    /// At most this many connections at once from one peer address (default 16; `None`: no
    /// per-peer bound, for clients behind one NAT or a load balancer). A peer is an IPv4
    /// address, or an IPv6 prefix of [`ipv6_prefix`](Self::ipv6_prefix) bits.
    #[must_use]
    pub fn max_connections_per_peer(mut self, n: Option<usize>) -> Self {
        self.settings.max_connections_per_peer = n;
        self
    }

    /// Connections still in their handshake (TLS, then their first request) at once: in all
    /// (default 64) and from one peer address (default 8; `None`: no per-peer bound).
    /// Connections that sent a request never wait for these slots.
    #[must_use]
    pub fn max_handshakes(mut self, total: usize, per_peer: Option<usize>) -> Self {
        self.settings.max_handshakes = total;
        self.settings.max_handshakes_per_peer = per_peer;
        self
    }

    /// How many leading bits of an IPv6 address name one peer (default 64).
    #[must_use]
    pub fn ipv6_prefix(mut self, bits: u8) -> Self {
        self.settings.ipv6_prefix = bits;
        self
    }

    /// Time a new connection has for its TLS handshake and its first request together (default
    /// 10 s).
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.settings.handshake_timeout = timeout;
        self
    }

    /// A connection that sends nothing (between requests, or in the middle of a file) for this
    /// long is closed (default 30 s). A write cut this way can be resumed.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.idle_timeout = timeout;
        self
    }

    /// A transfer (either way) must move at least `bytes_per_sec` on average over every
    /// `window`, or it is cut with [`CloudErrorCode::TooSlow`](super::CloudErrorCode::TooSlow)
    /// (default 16 KiB/s over 30 s; a rate of 0 turns the floor off). The first window of a
    /// transfer is never judged; a cut upload can be resumed. Without it, a peer sending a byte
    /// just before each idle timeout would hold a connection, a thread and the path's write
    /// lock for ever.
    #[must_use]
    pub fn min_transfer_rate(mut self, bytes_per_sec: u64, window: Duration) -> Self {
        self.settings.min_rate = bytes_per_sec;
        self.settings.min_rate_window = window;
        self
    }

    /// How long an interrupted upload's partial file (and its reservation of the owner's
    /// quota) is kept for a resume (default 24 h).
    #[must_use]
    pub fn partial_ttl(mut self, ttl: Duration) -> Self {
        self.settings.partial_ttl = ttl;
        self
    }

    /// How long audit lines are kept (default 90 days); the hourly sweep removes older ones.
    #[must_use]
    pub fn audit_retention(mut self, retention: Duration) -> Self {
        self.settings.audit_retention = retention;
        self
    }

    /// The most items one owner may hold: directories (the root included), files and uploads
    /// in progress together (default 100,000). Past it, creating anything is refused with
    /// [`CloudErrorCode::TooManyItems`](super::CloudErrorCode::TooManyItems); replacing a file
    /// is not.
    #[must_use]
    pub fn max_items_per_owner(mut self, n: u64) -> Self {
        self.settings.max_items_per_owner = n;
        self
    }

    /// The most a page of a `ReadTree` answer holds: `items` items and `bytes` encoded bytes
    /// (default 100,000 and 8 MiB; bytes between 4 KiB and 15 MiB). The connector asks for
    /// page after page; no answer is larger, whatever the tree.
    #[must_use]
    pub fn tree_page(mut self, items: usize, bytes: usize) -> Self {
        self.settings.tree_page = PageSize { items, bytes };
        self
    }

    /// What one walk of the disk may spend (a tree page, the size of a directory for a stat,
    /// the removal of a deleted directory before the answer): `entries` directory entries read
    /// and `time` (default 250,000 and 5 s). A stat past it, or a tree page that could not hold
    /// one item within it, is refused with
    /// [`CloudErrorCode::TreeTooLarge`](super::CloudErrorCode::TreeTooLarge).
    #[must_use]
    pub fn walk_limits(mut self, entries: usize, time: Duration) -> Self {
        self.settings.walk = WalkBound { entries, time };
        self
    }

    /// Serves TLS, presenting the identity given with [`tls`](Self::tls) or else the main
    /// server's; without either, the server does not start
    /// ([`ServerError::NoTlsIdentity`](crate::ServerError::NoTlsIdentity)). An endpoint beside a
    /// TLS server serves TLS without being asked.
    #[must_use]
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Serves TLS with this certificate and key (implies [`secure(true)`](Self::secure)).
    #[must_use]
    pub fn tls(mut self, identity: crate::tls::TlsIdentity) -> Self {
        self.tls = Some(identity);
        self.secure = true;
        self
    }

    /// Checks the settings, binds the listener, opens the metadata and sets up TLS; the main
    /// server calls this while starting, with its own identity if it is secure (the endpoint is
    /// then secure too).
    pub(crate) async fn bind(
        &self,
        main_host: &str,
        router_db: Option<&AsyncDatabase>,
        main_tls: Option<&crate::tls::TlsIdentity>,
    ) -> Result<Bound, StartError> {
        self.settings.validate()?;
        let tls = if self.secure || main_tls.is_some() {
            let identity = self
                .tls
                .as_ref()
                .or(main_tls)
                .ok_or(StartError::NoTlsIdentity)?;
            Some(identity.acceptor().map_err(StartError::Tls)?)
        } else {
            None
        };
        let db = self
            .database
            .clone()
            .or_else(|| router_db.cloned())
            .ok_or(StartError::NoDatabase)?;
        let cloud = Cloud::open(&self.folder, db)
            .await
            .map_err(StartError::Open)?;
        let host = self.host.as_deref().unwrap_or(main_host);
        let addr = format!("{host}:{}", self.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        Ok(Bound {
            listener,
            cloud,
            tls,
            settings: self.settings,
        })
    }
}

/// An endpoint bound and ready to serve.
pub(crate) struct Bound {
    listener: TcpListener,
    cloud: Cloud,
    tls: Option<tokio_rustls::TlsAcceptor>,
    settings: Settings,
}

impl Bound {
    /// The cloud storage, for views.
    pub fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    /// Starts accepting (until the server shuts down) and sweeping; returns the bound address.
    pub fn serve(self, serving: Serving, tracker: &TaskTracker) -> Option<SocketAddr> {
        let addr = self.listener.local_addr().ok();
        let endpoint = Arc::new(Endpoint {
            cloud: self.cloud,
            shutdown: serving.shutdown,
            grace: serving.grace,
            grant_key: serving.grant_key,
            counters: serving.counters,
            sessions: serving.sessions,
            settings: self.settings,
            tls: self.tls,
            unauthorized: Unauthorized::new(),
            removals: Arc::new(Semaphore::new(BACKGROUND_REMOVALS)),
            balancers: serving.balancers,
        });
        let span = tracing::info_span!("cloud", addr = ?addr);
        tokio::spawn(
            super::listener::accept_loop(self.listener, endpoint, tracker.clone()).instrument(span),
        );
        tracing::info!(addr = ?addr, "fluxon cloud storage listening");
        addr
    }
}

/// Removals of deleted directories going on after their answer at once; past it, the rest is
/// left for the sweeper.
const BACKGROUND_REMOVALS: usize = 2;

/// What the server gives its cloud endpoint: facts about sessions, the key its views sign grants
/// with, its counters, and when and how it shuts down. Nothing else of the server.
pub(crate) struct Serving {
    pub sessions: Arc<dyn crate::auth::SessionVerifier>,
    pub grant_key: super::GrantKey,
    pub counters: Arc<Counters>,
    pub shutdown: CancellationToken,
    pub grace: Duration,
    /// The load balancers whose connections start with a PROXY header (the server's).
    pub balancers: crate::admission::Balancers,
}

/// What every cloud connection shares.
pub(crate) struct Endpoint {
    pub cloud: Cloud,
    /// What it may ask about sessions (the server's, narrowed to that).
    pub sessions: Arc<dyn crate::auth::SessionVerifier>,
    /// Checks the grants the server's views signed.
    pub grant_key: super::GrantKey,
    /// The server's counters, which its stats report.
    pub counters: Arc<Counters>,
    pub settings: Settings,
    pub shutdown: CancellationToken,
    /// How long transfers in progress may go on after a shutdown begins.
    pub grace: Duration,
    /// Wraps accepted sockets in TLS, when the endpoint is secure.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Requests refused before authorization, logged at a bounded rate.
    pub unauthorized: Unauthorized,
    /// Permits for removals that go on after a delete's answer (bounded, and not waited for
    /// at shutdown: what they leave is hidden trash).
    pub removals: Arc<Semaphore>,
    /// The load balancers whose connections start with a PROXY header.
    pub balancers: crate::admission::Balancers,
}

impl Endpoint {
    /// The server's counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How transfers are bounded in time.
    pub fn bounds(&self) -> Bounds {
        let floor = (self.settings.min_rate > 0).then_some(RateFloor {
            bytes_per_sec: self.settings.min_rate,
            window: self.settings.min_rate_window,
        });
        Bounds {
            idle: self.settings.idle_timeout,
            floor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_that_cannot_work_is_refused_at_start() {
        Settings::default().validate().unwrap();
        let bad = [
            CloudStorageServer::new(0, "x").max_connections(0),
            CloudStorageServer::new(0, "x").max_connections_per_peer(Some(0)),
            CloudStorageServer::new(0, "x").max_handshakes(0, None),
            CloudStorageServer::new(0, "x").max_handshakes(4, Some(0)),
            CloudStorageServer::new(0, "x").ipv6_prefix(129),
            CloudStorageServer::new(0, "x").min_transfer_rate(1, Duration::ZERO),
            CloudStorageServer::new(0, "x").audit_retention(Duration::ZERO),
            CloudStorageServer::new(0, "x").max_items_per_owner(0),
            CloudStorageServer::new(0, "x").tree_page(0, 1 << 20),
            CloudStorageServer::new(0, "x").tree_page(10, 100),
            CloudStorageServer::new(0, "x").tree_page(10, 16 << 20),
            CloudStorageServer::new(0, "x").walk_limits(0, Duration::from_secs(1)),
            CloudStorageServer::new(0, "x").idle_timeout(Duration::ZERO),
        ];
        for config in bad {
            let err = config.settings.validate().unwrap_err();
            assert!(matches!(err, StartError::InvalidLimit(_)), "{err:?}");
        }
        // Off is not invalid.
        CloudStorageServer::new(0, "x")
            .max_connections_per_peer(None)
            .max_handshakes(1, None)
            .min_transfer_rate(0, Duration::ZERO)
            .settings
            .validate()
            .unwrap();
    }
}
