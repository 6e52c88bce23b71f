//! [`CloudStorageServer`]: the cloud endpoint's settings, its listener, and one task per
//! connection reading requests and handing each to [`ops`](super::ops).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::error::CloudError;
use super::handle::Cloud;
use super::ops;
use super::protocol::{self, Response, MAX_REQUEST};
use crate::db::AsyncDatabase;
use crate::server::ServerHandle;

/// The cloud endpoint of a server (the original's `CloudStorageServer(port=8888,
/// cloud_folder=...)`): give it to [`AsyncServer::cloud_storage`](crate::AsyncServer::cloud_storage).
/// It listens on a port of its own, so bulk transfers never stall the calls on the main one, and
/// shares the main server's grant key and sessions: a grant a view made is checked here.
///
/// ```no_run
/// use fluxon::cloud::CloudStorageServer;
/// use fluxon::{db::AsyncDatabase, AsyncServer, Router};
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let db = AsyncDatabase::open("app.sqlite3")?;
/// let server = AsyncServer::new(8080)
///     .router(Router::new().state(db))
///     .cloud_storage(CloudStorageServer::new(8888, "cloud"));
/// fluxon::run_server(server).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CloudStorageServer {
    pub(crate) port: u16,
    pub(crate) host: Option<String>,
    pub(crate) folder: PathBuf,
    pub(crate) database: Option<AsyncDatabase>,
    pub(crate) max_connections: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) partial_ttl: Duration,
    pub(crate) secure: bool,
    pub(crate) tls: Option<crate::tls::TlsIdentity>,
}

impl CloudStorageServer {
    /// An endpoint on `port` (0 for any) serving `cloud_folder` (created if missing).
    pub fn new(port: u16, cloud_folder: impl Into<PathBuf>) -> Self {
        CloudStorageServer {
            port,
            host: None,
            folder: cloud_folder.into(),
            database: None,
            max_connections: 256,
            idle_timeout: Duration::from_secs(30),
            partial_ttl: Duration::from_secs(24 * 3600),
            secure: false,
            tls: None,
        }
    }

    /// The address to bind (default: the main server's host).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The database for the metadata tables (default: the router's
    /// [`AsyncDatabase`](crate::db::AsyncDatabase) state).
    pub fn database(mut self, db: AsyncDatabase) -> Self {
        self.database = Some(db);
        self
    }

    /// At most this many connections at once (default 256); more are closed at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// A connection that sends nothing (between requests, or in the middle of a file) for this
    /// long is closed (default 30 s). A write cut this way can be resumed.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long an interrupted upload's partial file is kept for a resume (default 24 h).
    pub fn partial_ttl(mut self, ttl: Duration) -> Self {
        self.partial_ttl = ttl;
        self
    }

    /// Serves TLS only, presenting the identity given with [`tls`](Self::tls) or else the main
    /// server's; without either, the server does not start
    /// ([`ServerError::NoTlsIdentity`](crate::ServerError::NoTlsIdentity)).
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Serves TLS with this certificate and key (implies [`secure(true)`](Self::secure)).
    pub fn tls(mut self, identity: crate::tls::TlsIdentity) -> Self {
        self.tls = Some(identity);
        self.secure = true;
        self
    }

    /// Binds the listener, opens the metadata and sets up TLS; the main server calls this while
    /// starting, with its own identity if it is secure.
    pub(crate) async fn bind(
        &self,
        main_host: &str,
        router_db: Option<&AsyncDatabase>,
        main_tls: Option<&crate::tls::TlsIdentity>,
    ) -> Result<(TcpListener, Cloud, Option<tokio_rustls::TlsAcceptor>), crate::server::ServerError>
    {
        use crate::server::ServerError;
        let tls = if self.secure {
            let identity = self
                .tls
                .as_ref()
                .or(main_tls)
                .ok_or(ServerError::NoTlsIdentity)?;
            Some(identity.acceptor()?)
        } else {
            None
        };
        let db = self
            .database
            .clone()
            .or_else(|| router_db.cloned())
            .ok_or(ServerError::CloudWithoutDatabase)?;
        let cloud = Cloud::open(&self.folder, db)
            .await
            .map_err(ServerError::Cloud)?;
        let host = self.host.as_deref().unwrap_or(main_host);
        let addr = format!("{host}:{}", self.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok((listener, cloud, tls))
    }
}

/// What every cloud connection shares.
pub(crate) struct Endpoint {
    pub cloud: Cloud,
    pub server: ServerHandle,
    pub idle: Duration,
    pub partial_ttl: Duration,
    pub shutdown: CancellationToken,
    /// How long transfers in progress may go on after a shutdown begins.
    pub grace: Duration,
    /// Wraps accepted sockets in TLS, when the endpoint is secure.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Accepts cloud connections until shutdown.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    endpoint: Arc<Endpoint>,
    max_connections: usize,
    tracker: TaskTracker,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
    tracker.spawn(super::sweep::sweep_partials(Arc::clone(&endpoint)));
    loop {
        let accepted = tokio::select! {
            () = endpoint.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(%err, "cloud accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!(%peer, "cloud connection refused: at max_connections");
            continue;
        };
        let endpoint = Arc::clone(&endpoint);
        let span = tracing::info_span!("cloud", %peer);
        tracker.spawn(
            async move {
                serve(stream, peer, endpoint).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

/// One connection: requests one after another until the peer closes, goes quiet, breaks the
/// protocol or an operation fails (a failed answer closes the connection, since a write's bytes
/// may still be on their way).
async fn serve(stream: TcpStream, peer: SocketAddr, endpoint: Arc<Endpoint>) {
    let _ = stream.set_nodelay(true);
    let secured = crate::tls::accept(stream, endpoint.tls.as_ref(), endpoint.idle).await;
    let Some(stream) = secured else {
        return;
    };
    let crate::wire::Halves {
        read,
        write: mut writer,
        ..
    } = stream.split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    loop {
        let frame = tokio::select! {
            () = endpoint.shutdown.cancelled() => break,
            frame = tokio::time::timeout(endpoint.idle, protocol::read_frame(&mut reader, MAX_REQUEST)) => frame,
        };
        let body = match frame {
            Err(_) | Ok(Ok(None)) => break,
            Ok(Err(err)) => {
                fail(&mut writer, &CloudError::BadRequest(err.to_string())).await;
                break;
            }
            Ok(Ok(Some(body))) => body,
        };
        let (session, request) = match protocol::decode_request(&body) {
            Ok(pair) => pair,
            Err(message) => {
                fail(&mut writer, &CloudError::BadRequest(message)).await;
                break;
            }
        };
        // A shutdown lets a transfer in progress run for the grace period, then cuts it (a cut
        // write stays resumable).
        let cut = async {
            endpoint.shutdown.cancelled().await;
            tokio::time::sleep(endpoint.grace).await;
        };
        let outcome = tokio::select! {
            outcome = ops::handle(&endpoint, peer, session, request, &mut reader, &mut writer) => outcome,
            () = cut => Err(ops::Failed { error: CloudError::ShuttingDown, tell_peer: false }),
        };
        match outcome {
            Ok(response) => {
                if protocol::write_frame(&mut writer, &response).await.is_err()
                    || writer.flush().await.is_err()
                {
                    break;
                }
            }
            Err(failed) => {
                if failed.tell_peer {
                    fail(&mut writer, &failed.error).await;
                }
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
}

async fn fail(writer: &mut crate::wire::BoxWrite, err: &CloudError) {
    let response = Response::Failed {
        code: err.code(),
        message: err.to_string(),
    };
    let send = async {
        protocol::write_frame(writer, &response).await?;
        writer.flush().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), send).await;
}
