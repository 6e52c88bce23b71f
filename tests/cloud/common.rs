//! The test app (views that log in, make owners, roles and grants), a server with a cloud
//! endpoint, and a raw protocol client.

use std::path::PathBuf;
use std::time::Duration;

use fluxon::cloud::{
    CloudErrorCode, CloudOperation, CloudStorageConnector, CloudStorageServer, ConnectorError,
    Grant, Permission,
};
use fluxon::db::AsyncDatabase;
use fluxon::wire::SessionTokenBytes;
use fluxon::{
    view, views, AsyncServer, ConnectionHandler, Limits, OrUser, Request, Router, RunningServer,
    ViewError,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for anything a test waits on.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Held by the tests that watch this process's memory and by those that take a lot of it, so
/// that one's allocations never show in another's measurement (tests run in parallel, in one
/// process).
pub static MEMORY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[view]
pub async fn login_as(req: Request, user: i64) {
    req.login(user);
}

#[view]
pub async fn logout(req: Request) {
    req.logout();
}

/// Makes an owner root `name` for the logged-in user.
#[view]
pub async fn create_owner(req: Request, (name, limit): (String, u64)) -> Result<i64, ViewError> {
    let user = req.user_id().or_user("log in first")?;
    Ok(req.cloud()?.create_owner(&name, user, limit).await?)
}

/// Grants without checking anything: the endpoint must still refuse what the user may not do.
#[view]
pub async fn grant_any(
    req: Request,
    (operation, path, max_size): (CloudOperation, String, Option<u64>),
) -> Result<Grant, ViewError> {
    Ok(req.grant_access_limited(operation, &path, max_size)?)
}

/// What a careful view does: checks the permission with the helper, then grants.
#[view]
pub async fn grant_checked(
    req: Request,
    (operation, path, needed, on): (CloudOperation, String, u32, String),
) -> Result<Grant, ViewError> {
    let needed = Permission::from_bits(needed).or_user("unknown permission bits")?;
    req.require_cloud_permission(needed, &on).await?;
    Ok(req.grant_access(operation, &path)?)
}

#[view]
pub async fn create_role(req: Request, (name, bits): (String, u32)) -> Result<i64, ViewError> {
    let permissions = Permission::from_bits(bits).or_user("unknown permission bits")?;
    Ok(req.cloud()?.create_role(&name, permissions).await?)
}

#[view]
pub async fn assign_role(
    req: Request,
    (to, role, path): (i64, String, String),
) -> Result<(), ViewError> {
    let by = req.user_id().or_user("log in first")?;
    Ok(req.cloud()?.assign_role(by, to, &role, &path).await?)
}

#[view]
pub async fn echo(_req: Request, text: String) -> String {
    text
}

/// A running server with a cloud endpoint over a temp dir.
pub struct Cloud {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
    pub db: AsyncDatabase,
}

impl Cloud {
    pub async fn start() -> Cloud {
        Self::start_with(Limits::default(), |c| c).await
    }

    /// A server whose cloud metadata is on `backend`.
    pub async fn start_on(backend: crate::postgres::Backend) -> Cloud {
        Self::start_db(
            backend,
            tempfile::tempdir().unwrap(),
            AsyncServer::new(0),
            |c| c,
        )
        .await
    }

    pub async fn start_with(
        limits: Limits,
        configure: impl FnOnce(CloudStorageServer) -> CloudStorageServer,
    ) -> Cloud {
        Self::start_server(AsyncServer::new(0).limits(limits), configure).await
    }

    /// Starts `server` (limits and TLS as it says) with the test views and a cloud endpoint.
    pub async fn start_server(
        server: AsyncServer,
        configure: impl FnOnce(CloudStorageServer) -> CloudStorageServer,
    ) -> Cloud {
        Self::start_in(tempfile::tempdir().unwrap(), server, configure).await
    }

    /// [`start_server`](Self::start_server) over the cloud folder and database in `dir`.
    pub async fn start_in(
        dir: tempfile::TempDir,
        server: AsyncServer,
        configure: impl FnOnce(CloudStorageServer) -> CloudStorageServer,
    ) -> Cloud {
        Self::start_db(crate::postgres::Backend::Sqlite, dir, server, configure).await
    }

    /// [`start_in`](Self::start_in) with the metadata on `backend` (SQLite: a file in `dir`).
    async fn start_db(
        backend: crate::postgres::Backend,
        dir: tempfile::TempDir,
        server: AsyncServer,
        configure: impl FnOnce(CloudStorageServer) -> CloudStorageServer,
    ) -> Cloud {
        let place = match backend {
            crate::postgres::Backend::Sqlite => {
                dir.path().join("meta.sqlite3").display().to_string()
            }
            crate::postgres::Backend::Postgres => crate::postgres::fresh_database(),
        };
        let db = AsyncDatabase::open(&place).unwrap();
        let router = Router::new()
            .private_key([5u8; 32])
            .unwrap()
            .state(db.clone())
            .mapping(views![
                login_as,
                logout,
                create_owner,
                grant_any,
                grant_checked,
                create_role,
                assign_role,
                echo
            ])
            .unwrap();
        let cloud = configure(CloudStorageServer::new(0, dir.path().join("cloud")));
        let server = server
            .router(router)
            .cloud_storage(cloud)
            .start()
            .await
            .unwrap();
        Cloud { server, dir, db }
    }

    pub fn folder(&self) -> PathBuf {
        self.dir.path().join("cloud")
    }

    pub fn cloud_addr(&self) -> String {
        self.server.cloud_addr().unwrap().to_string()
    }

    /// A client logged in as `user`, and its connector.
    pub async fn client(&self, user: i64) -> (ConnectionHandler, CloudStorageConnector) {
        self.client_with(user, fluxon::ClientConfig::default())
            .await
    }

    /// [`client`](Self::client) with these settings (TLS, ...).
    pub async fn client_with(
        &self,
        user: i64,
        config: fluxon::ClientConfig,
    ) -> (ConnectionHandler, CloudStorageConnector) {
        let conn = ConnectionHandler::connect_with(self.server.local_addr().to_string(), config)
            .await
            .unwrap();
        let () = conn.send_request("login_as", &user).await.unwrap();
        let cloud = conn.cloud_connector(self.cloud_addr());
        (conn, cloud)
    }

    /// A client of `user` owning the root `name` with `limit` bytes.
    pub async fn owner(
        &self,
        user: i64,
        name: &str,
        limit: u64,
    ) -> (ConnectionHandler, CloudStorageConnector) {
        let (conn, cloud) = self.client(user).await;
        let _: i64 = conn
            .send_request("create_owner", &(name, limit))
            .await
            .unwrap();
        (conn, cloud)
    }
}

/// A grant from the unchecking view.
pub async fn grant(conn: &ConnectionHandler, operation: CloudOperation, path: &str) -> Grant {
    try_grant(conn, operation, path, None).await.unwrap()
}

pub async fn try_grant(
    conn: &ConnectionHandler,
    operation: CloudOperation,
    path: &str,
    max_size: Option<u64>,
) -> Result<Grant, String> {
    conn.send_request::<_, Grant>("grant_any", &(operation, path, max_size))
        .await
        .map_err(|e| e.to_string())
}

/// The endpoint's refusal code, or a panic naming what happened instead.
pub fn refusal<T: std::fmt::Debug>(result: Result<T, ConnectorError>) -> (CloudErrorCode, String) {
    match result {
        Err(ConnectorError::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Deterministic, incompressible-looking bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ---- a raw client of the documented protocol -------------------------------------------------

/// The protocol's request, mirrored field for field (postcard encodes by order).
// Every variant is mirrored so that the indices match, used or not.
#[allow(dead_code)]
#[derive(Serialize)]
pub enum RawRequest {
    CreateDirectory {
        grant: Grant,
        path: String,
    },
    WriteFile {
        grant: Grant,
        path: String,
        size: u64,
        resume: bool,
    },
    ReadFile {
        grant: Grant,
        path: String,
        offset: u64,
    },
    DeleteItem {
        grant: Grant,
        path: String,
    },
    ReadTree {
        grant: Grant,
        path: String,
        after: Option<String>,
    },
    Stat {
        grant: Grant,
        path: String,
    },
}

#[derive(Serialize)]
struct RawFrame {
    magic: [u8; 4],
    version: u16,
    session: SessionTokenBytes,
    request: RawRequest,
}

/// The protocol's response, mirrored (in the same order) to read what the endpoint says.
#[allow(dead_code)]
#[derive(Debug, Deserialize)]
pub enum RawResponse {
    Ready {
        offset: u64,
    },
    Sending {
        size: u64,
        offset: u64,
        blake3: Option<[u8; 32]>,
    },
    Done,
    Stat(fluxon::cloud::Stat),
    Tree {
        items: Vec<(String, fluxon::cloud::ItemKind, u64, std::time::SystemTime)>,
        more: bool,
    },
    Failed {
        code: CloudErrorCode,
        message: String,
    },
}

pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub async fn connect(cloud: &Cloud) -> Raw {
        Raw {
            stream: TcpStream::connect(cloud.cloud_addr()).await.unwrap(),
        }
    }

    /// A connection from the loopback address `ip` (`127.0.0.2`, ...): another peer.
    pub async fn connect_from(cloud: &Cloud, ip: &str) -> Raw {
        Raw {
            stream: connect_from(ip, &cloud.cloud_addr()).await.unwrap(),
        }
    }

    /// A request presenting `session` as the token, whatever the grant says.
    pub async fn request_as(&mut self, session: SessionTokenBytes, request: RawRequest) {
        let frame = RawFrame {
            magic: *b"FLXC",
            version: 2,
            session,
            request,
        };
        self.frame(&postcard::to_allocvec(&frame).unwrap()).await;
    }

    pub async fn frame(&mut self, body: &[u8]) {
        let mut framed = (body.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(body);
        self.stream.write_all(&framed).await.unwrap();
    }

    pub async fn request(&mut self, conn: &ConnectionHandler, request: RawRequest) {
        let frame = RawFrame {
            magic: *b"FLXC",
            version: 2,
            session: conn.session_token().unwrap(),
            request,
        };
        self.frame(&postcard::to_allocvec(&frame).unwrap()).await;
    }

    pub async fn commit(&mut self, hash: blake3::Hash) {
        self.frame(&postcard::to_allocvec(hash.as_bytes()).unwrap())
            .await;
    }

    pub async fn response(&mut self) -> RawResponse {
        self.response_sized().await.0
    }

    /// The next answer, and the bytes of its frame's body.
    pub async fn response_sized(&mut self) -> (RawResponse, usize) {
        let read = async {
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await?;
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            self.stream.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(body)
        };
        let body = tokio::time::timeout(PATIENCE, read)
            .await
            .expect("the endpoint answers in time")
            .expect("the endpoint answers");
        (postcard::from_bytes(&body).unwrap(), body.len())
    }
}

/// The code of a raw `Failed` answer, or a panic.
pub fn failed(response: RawResponse) -> (CloudErrorCode, String) {
    match response {
        RawResponse::Failed { code, message } => (code, message),
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// Names under the cloud folder that are the server's own (partials, trash).
pub fn hidden_files(root: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".fluxon-") {
                found.push(name);
            } else if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    found
}

/// A TCP connection to `addr` from the loopback address `ip`.
pub async fn connect_from(ip: &str, addr: &str) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{ip}:0").parse().unwrap())?;
    socket.connect(addr.parse().unwrap()).await
}

/// The resident memory of this process (server, clients and test together), in bytes.
pub fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// The same grant with one bit of its MAC flipped (the MAC is the last 32 bytes).
pub fn forged(genuine: &Grant, bit: usize) -> Grant {
    let mut bytes = postcard::to_allocvec(genuine).unwrap();
    let at = bytes.len() - 1 - (bit / 8) % 32;
    bytes[at] ^= 1 << (bit % 8);
    postcard::from_bytes(&bytes).unwrap()
}
