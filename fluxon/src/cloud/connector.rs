//! [`CloudStorageConnector`]: the client of the cloud endpoint. Present a grant a view gave you
//! with bytes, a file or any `AsyncRead`; download to a file or any `AsyncWrite`. Transfers are
//! streamed in constant memory, hashed on the way, and report progress to an optional callback.
//!
//! A connector made from a client whose main connection is TLS refuses to speak clear text
//! ([`ConnectorError::ClearText`]), so the session token it presents never travels unprotected.
//!
//! ```no_run
//! # async fn run(conn: fluxon::ConnectionHandler) -> Result<(), Box<dyn std::error::Error>> {
//! use fluxon::cloud::Grant;
//! // Grants come from views; the connector presents them with this client's session.
//! let write: Grant = conn.send_request("grant_upload", "jack/report.pdf").await?;
//! let read: Grant = conn.send_request("grant_download", "jack/report.pdf").await?;
//! let cloud = conn
//!     .cloud_connector("127.0.0.1:8888")
//!     .on_progress(|p| println!("{} / {} bytes", p.done, p.total));
//! let stat = cloud.write_path(&write, "report.pdf").await?; // resumes a cut-off upload
//! cloud.read_to_path(&read, "copy.pdf").await?; // checked against the file's BLAKE3
//! # Ok(()) }
//! ```

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::error::CloudErrorCode;
use super::grant::Grant;
use super::protocol::{self, Commit, Request, RequestFrame, Response, CHUNK, MAX_RESPONSE};
use super::stream::{self, Bounds, Hashing, PumpError};
use super::tree::{Stat, TreeBuilder, TreeNode};
use crate::wire::{BoxRead, BoxWrite, SessionTokenBytes, Stream};

/// How far a transfer has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Bytes of the file moved so far (counting a resumed transfer's earlier part).
    pub done: u64,
    /// The file's size.
    pub total: u64,
}

/// Why a cloud operation failed on the connector's side.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The client this connector was made from has no session yet (it never connected).
    #[error("the client has no session yet: connect it first")]
    NoSession,
    /// The TLS handshake with the endpoint failed (a certificate the connector does not trust,
    /// or an endpoint that does not speak TLS).
    #[error("TLS with the cloud endpoint at {addr} failed: {reason}")]
    Tls {
        /// The address tried.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The connector was told to speak clear text ([`tls(None)`](CloudStorageConnector::tls))
    /// though the client it was made from speaks TLS to its server: it refuses to send the
    /// session token unprotected, and nothing was sent.
    #[error("refusing to send the session token in clear text to {addr}: the main server speaks TLS; give the connector a ClientTls")]
    ClearText {
        /// The address not contacted.
        addr: String,
    },
    /// A tree sent more items than the connector accepts
    /// ([`max_tree_items`](CloudStorageConnector::max_tree_items)).
    #[error("the tree has more than {limit} items")]
    TreeTooLarge {
        /// The bound.
        limit: usize,
    },
    /// The endpoint could not be reached.
    #[error("cannot reach the cloud endpoint at {addr}: {source}")]
    Connect {
        /// The address tried.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The endpoint refused the operation, and said why.
    #[error("the cloud endpoint refused ({code:?}): {message}")]
    Refused {
        /// What kind of refusal.
        code: CloudErrorCode,
        /// The endpoint's explanation.
        message: String,
    },
    /// The connection or a local file failed mid-way.
    #[error("cloud transfer failed: {0}")]
    Io(#[from] std::io::Error),
    /// The endpoint answered something that does not fit the protocol.
    #[error("the cloud endpoint broke the protocol: {0}")]
    Protocol(String),
    /// A download's bytes do not hash to what the endpoint recorded for the file.
    #[error("the downloaded bytes hash to {received}, but the file's BLAKE3 is {expected}")]
    HashMismatch {
        /// The recorded hash (hex).
        expected: String,
        /// What arrived (hex).
        received: String,
    },
}

impl ConnectorError {
    /// The endpoint's code, if it refused.
    pub fn code(&self) -> Option<CloudErrorCode> {
        match self {
            ConnectorError::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }
}

type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// Where the connector finds its client's current session token.
pub(crate) type SessionFn = Arc<dyn Fn() -> Option<SessionTokenBytes> + Send + Sync>;

/// A client of a [`CloudStorageServer`](super::CloudStorageServer), made from a connected
/// client with [`ConnectionHandler::cloud_connector`](crate::ConnectionHandler::cloud_connector):
/// it presents grants along with that client's session, since a grant works only for the session
/// it was given to. Cheap to clone; each operation uses a connection of its own, so operations
/// may run concurrently.
#[derive(Clone)]
pub struct CloudStorageConnector {
    addr: String,
    session: SessionFn,
    tls: Option<crate::tls::ClientTls>,
    /// The client it was made from speaks TLS: clear text is refused.
    requires_tls: bool,
    idle: Duration,
    max_tree_items: usize,
    progress: Option<ProgressFn>,
}

impl std::fmt::Debug for CloudStorageConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudStorageConnector")
            .field("addr", &self.addr)
            .field("idle", &self.idle)
            .finish_non_exhaustive()
    }
}

struct Conn {
    reader: BufReader<BoxRead>,
    writer: BoxWrite,
}

impl CloudStorageConnector {
    /// A connector for the endpoint at `addr` (`host:port`), presenting the session `session`
    /// gives, speaking TLS as `tls` says: the client's own settings, so a client that speaks TLS
    /// makes a connector that never speaks clear text.
    pub(crate) fn new(
        addr: impl Into<String>,
        session: SessionFn,
        tls: Option<crate::tls::ClientTls>,
    ) -> Self {
        CloudStorageConnector {
            addr: addr.into(),
            session,
            requires_tls: tls.is_some(),
            tls,
            idle: Duration::from_secs(30),
            max_tree_items: 1_000_000,
            progress: None,
        }
    }

    /// Speaks TLS to the endpoint, trusting what `tls` names (by default the connector uses the
    /// TLS settings of the client it was made from). `None` for clear text is honoured only for
    /// a client that speaks clear text itself; a connector of a TLS client then refuses every
    /// operation with [`ConnectorError::ClearText`].
    #[must_use]
    pub fn tls(mut self, tls: Option<crate::tls::ClientTls>) -> Self {
        self.tls = tls;
        self
    }

    /// Gives up on an endpoint that sends or takes nothing for this long (default 30 s).
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle = timeout;
        self
    }

    /// The most items [`read_tree`](Self::read_tree) accepts, over all its pages (default
    /// 1,000,000): past it the tree is refused with [`ConnectorError::TreeTooLarge`], so an
    /// endpoint cannot make the connector hold an unbounded tree.
    #[must_use]
    pub fn max_tree_items(mut self, n: usize) -> Self {
        self.max_tree_items = n;
        self
    }

    /// Calls `report` as a transfer moves (about every 256 KiB).
    #[must_use]
    pub fn on_progress(mut self, report: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(report));
        self
    }

    /// Makes the directory the grant names.
    ///
    /// # Errors
    /// [`ConnectorError::Refused`] with the endpoint's [`CloudErrorCode`] (a bad or expired
    /// grant, not found, already there, over quota, ...), `Connect` / `Tls` when the endpoint
    /// cannot be reached or trusted, `NoSession` before the client has a session, `ClearText`
    /// for a TLS client's connector told to speak clear text, `Protocol` for an answer that is
    /// not the endpoint's.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future drops its connection; the endpoint finishes or undoes
    /// what it started.
    pub async fn create_directory(&self, grant: &Grant) -> Result<(), ConnectorError> {
        let make = |grant, path| Request::CreateDirectory { grant, path };
        match self.simple(grant, make).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Deletes the file, or the directory with everything under it, that the grant names.
    ///
    /// # Errors
    /// [`ConnectorError::Refused`] with the endpoint's [`CloudErrorCode`] (a bad or expired
    /// grant, not found, already there, over quota, ...), `Connect` / `Tls` when the endpoint
    /// cannot be reached or trusted, `NoSession` before the client has a session, `ClearText`
    /// for a TLS client's connector told to speak clear text, `Protocol` for an answer that is
    /// not the endpoint's.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future drops its connection; the endpoint finishes or undoes
    /// what it started.
    pub async fn delete_item(&self, grant: &Grant) -> Result<(), ConnectorError> {
        let make = |grant, path| Request::DeleteItem { grant, path };
        match self.simple(grant, make).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The tree of the directory the grant names, asked for page after page on one connection
    /// (see *Trees* in [`protocol`](super::protocol)) and rebuilt as the pages come.
    ///
    /// # Errors
    /// [`ConnectorError::Refused`] with the endpoint's [`CloudErrorCode`] (a bad or expired
    /// grant, not found, already there, over quota, ...), `Connect` / `Tls` when the endpoint
    /// cannot be reached or trusted, `NoSession` before the client has a session, `ClearText`
    /// for a TLS client's connector told to speak clear text, `Protocol` for an answer that is
    /// not the endpoint's.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future drops its connection; the endpoint finishes or undoes
    /// what it started.
    pub async fn read_tree(&self, grant: &Grant) -> Result<TreeNode, ConnectorError> {
        let mut conn = self.connect().await?;
        let mut tree = TreeBuilder::default();
        let not_a_tree = || ConnectorError::Protocol("the tree's items do not form a tree".into());
        loop {
            let request = Request::ReadTree {
                grant: grant.clone(),
                path: grant.path().to_owned(),
                after: tree.last_path().map(str::to_owned),
            };
            self.send(&mut conn, request).await?;
            let (items, more) = match self.response(&mut conn).await? {
                Response::Tree { items, more } => (items, more),
                other => return Err(unexpected(&other)),
            };
            if more && items.is_empty() {
                return Err(ConnectorError::Protocol(
                    "an empty tree page that says more follow".into(),
                ));
            }
            if tree.len().saturating_add(items.len()) > self.max_tree_items {
                return Err(ConnectorError::TreeTooLarge {
                    limit: self.max_tree_items,
                });
            }
            for item in items {
                tree.push(item).ok_or_else(not_a_tree)?;
            }
            if !more {
                return tree.finish().ok_or_else(not_a_tree);
            }
        }
    }

    /// Size, BLAKE3, type and times of the item the grant names.
    ///
    /// # Errors
    /// [`ConnectorError::Refused`] with the endpoint's [`CloudErrorCode`] (a bad or expired
    /// grant, not found, already there, over quota, ...), `Connect` / `Tls` when the endpoint
    /// cannot be reached or trusted, `NoSession` before the client has a session, `ClearText`
    /// for a TLS client's connector told to speak clear text, `Protocol` for an answer that is
    /// not the endpoint's.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future drops its connection; the endpoint finishes or undoes
    /// what it started.
    pub async fn stat(&self, grant: &Grant) -> Result<Stat, ConnectorError> {
        let make = |grant, path| Request::Stat { grant, path };
        match self.simple(grant, make).await? {
            Response::Stat(stat) => Ok(stat),
            other => Err(unexpected(&other)),
        }
    }

    /// Writes `bytes` as the file the grant names.
    ///
    /// # Errors
    /// As the other operations (see [`create_directory`](Self::create_directory)), and
    /// `Io` when the local data cannot be read; a hash that does not match what was sent is
    /// refused by the endpoint and the file is not replaced.
    ///
    /// # Cancel safety
    /// Cancel safe: an upload cut off is never visible as the file; the endpoint keeps its part
    /// for a later resume (or sweeps it).
    pub async fn write_bytes(&self, grant: &Grant, bytes: &[u8]) -> Result<Stat, ConnectorError> {
        self.write_reader(grant, bytes, bytes.len() as u64).await
    }

    /// Streams `size` bytes from `reader` as the file the grant names (from the start: a reader
    /// cannot be rewound, so an interrupted upload from a reader starts over; see
    /// [`write_path`](Self::write_path) for one that resumes).
    ///
    /// # Errors
    /// As the other operations (see [`create_directory`](Self::create_directory)), and
    /// `Io` when the local data cannot be read; a hash that does not match what was sent is
    /// refused by the endpoint and the file is not replaced.
    ///
    /// # Cancel safety
    /// Cancel safe: an upload cut off is never visible as the file; the endpoint keeps its part
    /// for a later resume (or sweeps it).
    pub async fn write_reader<R: AsyncRead + Unpin>(
        &self,
        grant: &Grant,
        mut reader: R,
        size: u64,
    ) -> Result<Stat, ConnectorError> {
        let mut conn = self.start_write(grant, size, false).await?.0;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut done = 0u64;
        let sent = async {
            while done < size {
                let want = usize::try_from(size - done).map_or(CHUNK, |left| left.min(CHUNK));
                let n = reader.read(&mut buf[..want]).await?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the reader ended after {done} of {size} bytes"),
                    ));
                }
                hasher.update(&buf[..n]);
                tokio::time::timeout(self.idle, conn.writer.write_all(&buf[..n]))
                    .await
                    .map_err(|_| timed_out())??;
                done += n as u64;
                self.report(done, size);
            }
            Ok(())
        }
        .await;
        self.finish_write(conn, sent, hasher.finalize()).await
    }

    /// Uploads the local file at `local` as the file the grant names. If an earlier upload of
    /// it was cut off, only the part the endpoint does not hold yet is sent (and if that part
    /// turns out to be from another version of the file, the whole file is sent again).
    ///
    /// # Errors
    /// As the other operations (see [`create_directory`](Self::create_directory)), and
    /// `Io` when the local data cannot be read; a hash that does not match what was sent is
    /// refused by the endpoint and the file is not replaced.
    ///
    /// # Cancel safety
    /// Cancel safe: an upload cut off is never visible as the file; the endpoint keeps its part
    /// for a later resume (or sweeps it).
    pub async fn write_path(
        &self,
        grant: &Grant,
        local: impl AsRef<Path>,
    ) -> Result<Stat, ConnectorError> {
        let local = local.as_ref();
        match self.write_path_from(grant, local, true).await {
            // What the endpoint held was from another version of the file: start over, once.
            (
                Err(ConnectorError::Refused {
                    code: CloudErrorCode::HashMismatch,
                    ..
                }),
                true,
            ) => self.write_path_from(grant, local, false).await.0,
            (result, _) => result,
        }
    }

    /// One upload of `local`; also says whether it resumed (sent from an offset past 0).
    async fn write_path_from(
        &self,
        grant: &Grant,
        local: &Path,
        resume: bool,
    ) -> (Result<Stat, ConnectorError>, bool) {
        let local = local.to_path_buf();
        let opened = blocking(move || {
            let file = File::open(&local)?;
            let size = file.metadata()?.len();
            Ok((file, size))
        })
        .await;
        let (file, size) = match opened {
            Ok(opened) => opened,
            Err(err) => return (Err(err), false),
        };
        let (conn, offset) = match self.start_write(grant, size, resume).await {
            Ok(started) => started,
            Err(err) => return (Err(err), false),
        };
        if offset > size {
            let message = format!("resume offset {offset} is past the file's {size} bytes");
            return (Err(ConnectorError::Protocol(message)), false);
        }
        // The hash covers the whole file: take in the part the endpoint already has.
        let source = blocking(move || {
            let mut file = file;
            let hasher = stream::hash_prefix(&mut file, offset)?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(Hashing {
                inner: file,
                hasher,
            })
        })
        .await;
        let sent = match source {
            Ok(source) => self.send_source(conn, offset, size, source).await,
            Err(err) => Err(err),
        };
        (sent, offset > 0)
    }

    /// Uploads `size` bytes from a blocking reader (read on a blocking thread), from the start.
    pub(crate) async fn write_std_reader<R: std::io::Read + Send + 'static>(
        &self,
        grant: &Grant,
        reader: R,
        size: u64,
    ) -> Result<Stat, ConnectorError> {
        let conn = self.start_write(grant, size, false).await?.0;
        self.send_source(conn, 0, size, Hashing::new(reader)).await
    }

    /// Sends the file from `offset` (the source already hashed up to it), then commits.
    async fn send_source<R: std::io::Read + Send + 'static>(
        &self,
        mut conn: Conn,
        offset: u64,
        size: u64,
        source: Hashing<R>,
    ) -> Result<Stat, ConnectorError> {
        let mut progress = |n: u64| self.report(offset + n, size);
        let sent = stream::source_to_socket(
            &mut conn.writer,
            size - offset,
            source,
            Bounds::idle(self.idle),
            &mut progress,
        )
        .await;
        match sent {
            Ok(source) => {
                let hash = source.hasher.finalize();
                self.finish_write(conn, Ok(()), hash).await
            }
            Err(PumpError::Local(err)) => Err(err.into()),
            Err(PumpError::Peer(err)) => self.finish_write(conn, Err(err), [0; 32].into()).await,
            Err(PumpError::TooSlow(slow)) => {
                let err = std::io::Error::new(std::io::ErrorKind::TimedOut, slow.to_string());
                self.finish_write(conn, Err(err), [0; 32].into()).await
            }
        }
    }

    /// Downloads into a blocking writer (written on a blocking thread), from `offset` on.
    pub(crate) async fn read_to_std_writer<W: std::io::Write + Send + 'static>(
        &self,
        grant: &Grant,
        writer: W,
        offset: u64,
    ) -> Result<u64, ConnectorError> {
        let (mut conn, size, expected) = self.start_read(grant, offset).await?;
        let sink = self
            .receive_sink(&mut conn, offset, size, Hashing::new(writer))
            .await?;
        if offset == 0 {
            check_hash(expected, sink.hasher.finalize())?;
        }
        Ok(size - offset)
    }

    /// Receives the file from `offset` into `sink`, then the endpoint's closing answer.
    async fn receive_sink<W: std::io::Write + Send + 'static>(
        &self,
        conn: &mut Conn,
        offset: u64,
        size: u64,
        sink: Hashing<W>,
    ) -> Result<Hashing<W>, ConnectorError> {
        let mut progress = |n: u64| self.report(offset + n, size);
        let sink = stream::socket_to_sink(
            &mut conn.reader,
            size - offset,
            sink,
            Bounds::idle(self.idle),
            &mut progress,
        )
        .await
        .map_err(|err| match err {
            PumpError::Peer(e) | PumpError::Local(e) => ConnectorError::Io(e),
            PumpError::TooSlow(slow) => ConnectorError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                slow.to_string(),
            )),
        })?;
        self.finish_read(conn).await?;
        Ok(sink)
    }

    /// Downloads the file the grant names into `writer`, from byte `offset` on; returns the bytes
    /// written. A whole-file download is checked against the file's recorded BLAKE3.
    ///
    /// # Errors
    /// As the other operations (see [`create_directory`](Self::create_directory)), `Io` when the
    /// local side cannot be written, and `HashMismatch` when what came is not the file.
    ///
    /// # Cancel safety
    /// Cancel safe for the endpoint; what was written locally so far stays (for
    /// [`read_to_path`](Self::read_to_path), in its hidden partial file, to resume).
    pub async fn read_to_writer<W: AsyncWrite + Unpin>(
        &self,
        grant: &Grant,
        mut writer: W,
        offset: u64,
    ) -> Result<u64, ConnectorError> {
        let (mut conn, size, expected) = self.start_read(grant, offset).await?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        let mut done = offset;
        while done < size {
            let want = usize::try_from(size - done).map_or(CHUNK, |left| left.min(CHUNK));
            let n = tokio::time::timeout(self.idle, conn.reader.read(&mut buf[..want]))
                .await
                .map_err(|_| timed_out())??;
            if n == 0 {
                return Err(short_read(done, size));
            }
            hasher.update(&buf[..n]);
            writer.write_all(&buf[..n]).await?;
            done += n as u64;
            self.report(done, size);
        }
        writer.flush().await?;
        self.finish_read(&mut conn).await?;
        if offset == 0 {
            check_hash(expected, hasher.finalize())?;
        }
        Ok(size - offset)
    }

    /// Downloads the whole file the grant names into memory (checked against its BLAKE3).
    ///
    /// # Errors
    /// As the other operations (see [`create_directory`](Self::create_directory)), `Io` when the
    /// local side cannot be written, and `HashMismatch` when what came is not the file.
    ///
    /// # Cancel safety
    /// Cancel safe for the endpoint; what was written locally so far stays (for
    /// [`read_to_path`](Self::read_to_path), in its hidden partial file, to resume).
    pub async fn read_bytes(&self, grant: &Grant) -> Result<Vec<u8>, ConnectorError> {
        let mut bytes = Vec::new();
        self.read_to_writer(grant, &mut bytes, 0).await?;
        Ok(bytes)
    }

    /// Downloads the file the grant names to `local`, through a hidden `.fluxon-download` file
    /// beside it that is renamed into place once complete and checked against the file's BLAKE3.
    /// If an earlier download was cut off, it continues where that one stopped. Returns the size.
    ///
    /// # Errors
    /// As the other operations (see [`create_directory`](Self::create_directory)), `Io` when the
    /// local side cannot be written, and `HashMismatch` when what came is not the file.
    ///
    /// # Cancel safety
    /// Cancel safe for the endpoint; what was written locally so far stays (for
    /// [`read_to_path`](Self::read_to_path), in its hidden partial file, to resume).
    pub async fn read_to_path(
        &self,
        grant: &Grant,
        local: impl AsRef<Path>,
    ) -> Result<u64, ConnectorError> {
        let local = local.as_ref().to_path_buf();
        let partial = download_partial(&local)?;
        let opened = partial.clone();
        let (file, held) = blocking(move || {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&opened)?;
            let held = file.metadata()?.len();
            Ok((file, held))
        })
        .await?;
        let (mut conn, size, expected, offset) = match self.start_read(grant, held).await {
            Ok((conn, size, expected)) => (conn, size, expected, held),
            // The file changed and got shorter than what we hold: start over.
            Err(ConnectorError::Refused {
                code: CloudErrorCode::BadRequest,
                ..
            }) if held > 0 => {
                let (conn, size, expected) = self.start_read(grant, 0).await?;
                (conn, size, expected, 0)
            }
            Err(err) => return Err(err),
        };
        let sink = blocking(move || {
            let mut file = file;
            file.set_len(offset)?;
            let hasher = stream::hash_prefix(&mut file, offset)?;
            file.seek(SeekFrom::Start(offset))?;
            Ok(Hashing {
                inner: file,
                hasher,
            })
        })
        .await?;
        let sink = self.receive_sink(&mut conn, offset, size, sink).await?;
        let received = sink.hasher.finalize();
        let file = sink.inner;
        let matches = check_hash(expected, received);
        let bad = matches.is_err();
        blocking(move || {
            if bad {
                return std::fs::remove_file(&partial);
            }
            file.sync_all()?;
            std::fs::rename(&partial, &local)
        })
        .await?;
        matches.map(|()| size)
    }

    fn report(&self, done: u64, total: u64) {
        if let Some(report) = &self.progress {
            report(Progress { done, total });
        }
    }

    async fn connect(&self) -> Result<Conn, ConnectorError> {
        // Before any byte, so not even the address learns the session.
        if self.requires_tls && self.tls.is_none() {
            return Err(ConnectorError::ClearText {
                addr: self.addr.clone(),
            });
        }
        let connect = TcpStream::connect(&self.addr);
        let stream = tokio::time::timeout(self.idle, connect)
            .await
            .map_err(|_| timed_out())
            .and_then(|r| r)
            .map_err(|source| ConnectorError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let stream = match &self.tls {
            None => Stream::Plain(stream),
            Some(tls) => {
                let secured = tokio::time::timeout(self.idle, tls.connect(&self.addr, stream))
                    .await
                    .map_err(|_| timed_out())
                    .and_then(|r| r)
                    .map_err(|err| ConnectorError::Tls {
                        addr: self.addr.clone(),
                        reason: err.to_string(),
                    })?;
                Stream::TlsClient(Box::new(secured))
            }
        };
        let halves = stream.split();
        Ok(Conn {
            reader: BufReader::with_capacity(64 * 1024, halves.read),
            writer: halves.write,
        })
    }

    async fn send(&self, conn: &mut Conn, request: Request) -> Result<(), ConnectorError> {
        let session = (self.session)().ok_or(ConnectorError::NoSession)?;
        let frame = RequestFrame {
            magic: protocol::MAGIC,
            version: protocol::VERSION,
            session,
            request,
        };
        protocol::write_frame(&mut conn.writer, &frame).await?;
        conn.writer.flush().await?;
        Ok(())
    }

    async fn response(&self, conn: &mut Conn) -> Result<Response, ConnectorError> {
        let frame = tokio::time::timeout(
            self.idle,
            protocol::read_frame(&mut conn.reader, MAX_RESPONSE),
        )
        .await
        .map_err(|_| timed_out())??
        .ok_or_else(|| ConnectorError::Protocol("the endpoint closed without answering".into()))?;
        match protocol::decode::<Response>(&frame).map_err(ConnectorError::Protocol)? {
            Response::Failed { code, message } => Err(ConnectorError::Refused { code, message }),
            response => Ok(response),
        }
    }

    /// Sends the request `make` builds from the grant and its path; the one answer.
    async fn simple(
        &self,
        grant: &Grant,
        make: fn(Grant, String) -> Request,
    ) -> Result<Response, ConnectorError> {
        let mut conn = self.connect().await?;
        let request = make(grant.clone(), grant.path().to_owned());
        self.send(&mut conn, request).await?;
        self.response(&mut conn).await
    }

    /// Asks to write; returns the connection and the offset to send from.
    async fn start_write(
        &self,
        grant: &Grant,
        size: u64,
        resume: bool,
    ) -> Result<(Conn, u64), ConnectorError> {
        let mut conn = self.connect().await?;
        let request = Request::WriteFile {
            grant: grant.clone(),
            path: grant.path().to_owned(),
            size,
            resume,
        };
        self.send(&mut conn, request).await?;
        match self.response(&mut conn).await? {
            Response::Ready { offset } => Ok((conn, offset)),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends the commit after the bytes (if they all went) and reads the endpoint's verdict,
    /// which explains a failed send better than the broken pipe does.
    async fn finish_write(
        &self,
        mut conn: Conn,
        sent: std::io::Result<()>,
        hash: blake3::Hash,
    ) -> Result<Stat, ConnectorError> {
        if let Err(err) = sent {
            let verdict =
                tokio::time::timeout(Duration::from_secs(1), self.response(&mut conn)).await;
            return match verdict {
                Ok(Err(refused @ ConnectorError::Refused { .. })) => Err(refused),
                _ => Err(err.into()),
            };
        }
        let commit = Commit {
            blake3: *hash.as_bytes(),
        };
        protocol::write_frame(&mut conn.writer, &commit).await?;
        conn.writer.flush().await?;
        match self.response(&mut conn).await? {
            Response::Stat(stat) => Ok(stat),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks to read from `offset`; returns the connection, the file's size and recorded hash.
    async fn start_read(
        &self,
        grant: &Grant,
        offset: u64,
    ) -> Result<(Conn, u64, Option<[u8; 32]>), ConnectorError> {
        let mut conn = self.connect().await?;
        let request = Request::ReadFile {
            grant: grant.clone(),
            path: grant.path().to_owned(),
            offset,
        };
        self.send(&mut conn, request).await?;
        match self.response(&mut conn).await? {
            Response::Sending {
                size,
                offset: from,
                blake3,
            } if from == offset && offset <= size => Ok((conn, size, blake3)),
            other => Err(unexpected(&other)),
        }
    }

    async fn finish_read(&self, conn: &mut Conn) -> Result<(), ConnectorError> {
        match self.response(conn).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(&other)),
        }
    }
}

fn unexpected(response: &Response) -> ConnectorError {
    ConnectorError::Protocol(format!("unexpected answer {response:?}"))
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the cloud endpoint went quiet",
    )
}

fn short_read(done: u64, size: u64) -> ConnectorError {
    ConnectorError::Io(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("the download stopped after {done} of {size} bytes"),
    ))
}

fn check_hash(expected: Option<[u8; 32]>, received: blake3::Hash) -> Result<(), ConnectorError> {
    match expected {
        Some(expected) if blake3::Hash::from(expected) != received => {
            Err(ConnectorError::HashMismatch {
                expected: blake3::Hash::from(expected).to_hex().to_string(),
                received: received.to_hex().to_string(),
            })
        }
        _ => Ok(()),
    }
}

fn download_partial(local: &Path) -> Result<PathBuf, ConnectorError> {
    let name = local.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        ConnectorError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{}` is not a file name", local.display()),
        ))
    })?;
    Ok(local.with_file_name(format!(".{name}.fluxon-download")))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, ConnectorError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ConnectorError::Io(std::io::Error::other(e.to_string())))?
        .map_err(ConnectorError::Io)
}
