//! The attacked app: members who log in with a password, a few views, and clients that connect
//! from a loopback address of the test's choosing.

use std::net::IpAddr;
use std::time::Duration;

use fluxon::auth::PasswordHasher;
use fluxon::client::Reconnect;
use fluxon::db::{AsyncDatabase, Executor, Model, Password};
use fluxon::wire::{self, Envelope, FrameCodec, SessionTokenBytes};
use fluxon::{
    view, views, AsyncServer, ClientConfig, ConnectError, ConnectionHandler, OrUser, Request,
    Router, RunningServer, ViewError,
};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::codec::Framed;

use crate::support::PATIENCE;

/// Jack's password; every attacker guesses something else.
pub const JACK_PASSWORD: &str = "jack's long passphrase";
/// Jill's password.
pub const JILL_PASSWORD: &str = "jill's other passphrase";

/// Someone who logs in.
#[derive(Model, Debug)]
#[model(authorized_user)]
pub struct Member {
    #[field(max_length = 64, unique)]
    pub username: String,
    pub password: Password,
}

#[view]
pub async fn login(req: Request, (username, password): (String, String)) -> Result<i64, ViewError> {
    Ok(req
        .login_with_password::<Member>(&username, &password)
        .await?)
}

#[view]
pub async fn add(_req: Request, (a, b): (i64, i64)) -> Result<i64, ViewError> {
    a.checked_add(b).or_user("overflow")
}

#[view]
pub async fn whoami(req: Request) -> Option<i64> {
    req.user_id()
}

/// Holds the call for `ms` milliseconds; `padding` only makes the frame big (a string decodes
/// with one copy, so a 16 MiB frame costs the test little time).
#[view]
pub async fn hold(_req: Request, (ms, padding): (u64, String)) -> usize {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    padding.len()
}

/// A recursive payload type, as apps have (a tree of folders, an expression).
#[derive(Debug, Serialize, Deserialize)]
pub enum Tree {
    Leaf(u32),
    Node(Vec<Tree>),
}

/// Counts a tree's leaves (without recursing: the test's own trees are small, but a view should
/// not trust depth either).
#[view]
pub async fn count_leaves(_req: Request, tree: Tree) -> u64 {
    let mut stack = vec![tree];
    let mut leaves = 0;
    while let Some(tree) = stack.pop() {
        match tree {
            Tree::Leaf(_) => leaves += 1,
            Tree::Node(children) => stack.extend(children),
        }
    }
    leaves
}

/// A running app and its database.
pub struct App {
    pub server: RunningServer,
    _db: AsyncDatabase,
    _dir: tempfile::TempDir,
}

impl App {
    /// The server's address as a client dials it.
    pub fn addr(&self) -> String {
        self.server.local_addr().to_string()
    }
}

/// Starts `server` serving the app, with members jack and jill.
pub async fn start(server: AsyncServer) -> App {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = AsyncDatabase::open(dir.path().join("abuse.sqlite3")).expect("database");
    db.create_tables(&[Member::SCHEMA]).await.expect("tables");
    let hasher = PasswordHasher::new(2, None, Duration::from_secs(60));
    for (username, password) in [("jack", JACK_PASSWORD), ("jill", JILL_PASSWORD)] {
        let password = hasher.hash(password).await.expect("hash");
        db.insert(&Member {
            username: username.to_owned(),
            password,
        })
        .await
        .expect("member");
    }
    let router = Router::new()
        .private_key([9u8; 32])
        .and_then(|r| {
            r.state(db.clone())
                .mapping(views![login, add, whoami, hold, count_leaves])
        })
        .expect("router");
    let server = server.router(router).start().await.expect("server starts");
    App {
        server,
        _db: db,
        _dir: dir,
    }
}

/// A client connecting from `ip`, that does not reconnect (an attacker's connection, or one
/// whose refusal the test wants to see).
pub async fn client_from(app: &App, ip: &str) -> Result<ConnectionHandler, ConnectError> {
    let config = ClientConfig::default()
        .local_addr(Some(ip.parse::<IpAddr>().expect("an address")))
        .reconnect(Reconnect::default().enabled(false))
        .call_timeout(PATIENCE);
    ConnectionHandler::connect_with(app.addr(), config).await
}

/// A TCP connection to the app from `ip`.
pub async fn socket_from(app: &App, ip: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    // An attacker's unsent bytes are in its own kernel, not the server's; here both are one
    // kernel, and 200 flooding sockets with the usual send buffers (up to 4 MiB each) would push
    // loopback TCP toward its memory limit, where the kernel drops everyone's packets. A small
    // send buffer keeps the attack at the server's door without that.
    socket.set_send_buffer_size(64 * 1024).expect("send buffer");
    socket
        .bind(format!("{ip}:0").parse().expect("address"))
        .expect("bind to a loopback address");
    socket
        .connect(app.server.local_addr())
        .await
        .expect("tcp connect")
}

/// A hand-driven peer from `ip`, for saying what the real client never would.
pub struct RawPeer {
    pub framed: Framed<TcpStream, FrameCodec>,
}

impl RawPeer {
    pub async fn connect_from(app: &App, ip: &str) -> RawPeer {
        RawPeer {
            framed: Framed::new(socket_from(app, ip).await, wire::codec(64 * 1024 * 1024)),
        }
    }

    pub async fn send(&mut self, envelope: Envelope<'_>) {
        let body = envelope.encode().expect("encodes");
        self.framed.send(body).await.expect("send");
    }

    /// The next frame; `None` when the server closed.
    pub async fn next(&mut self) -> Option<bytes::Bytes> {
        match tokio::time::timeout(PATIENCE, self.framed.next()).await {
            Ok(Some(Ok(frame))) => Some(frame.freeze()),
            Ok(_) => None,
            Err(_) => panic!("the server sent nothing within {PATIENCE:?}"),
        }
    }

    /// Says `Hello`; the server's answer.
    pub async fn hello(&mut self) -> Result<SessionTokenBytes, String> {
        self.send(Envelope::Hello {
            magic: wire::MAGIC,
            version: wire::PROTOCOL_VERSION,
            resume: None,
            max_frame: 1 << 24,
        })
        .await;
        let Some(frame) = self.next().await else {
            return Err("closed".to_owned());
        };
        match Envelope::decode(&frame).expect("decodes") {
            Envelope::Welcome { token, .. } => Ok(token),
            other => Err(format!("{other:?}")),
        }
    }

    /// Calls `view` with raw payload bytes; the result bytes or the error.
    pub async fn call_raw(
        &mut self,
        id: u64,
        view: &str,
        payload: &[u8],
    ) -> Result<Vec<u8>, (wire::ErrorCode, String)> {
        self.send(Envelope::Call { id, view, payload }).await;
        loop {
            let frame = self.next().await.expect("a reply");
            match Envelope::decode(&frame).expect("decodes") {
                Envelope::Reply { id: got, result } if got == id => {
                    return result
                        .map(|b| b.to_vec())
                        .map_err(|e| (e.code, e.message.to_owned()))
                }
                Envelope::Ping { nonce } => self.send(Envelope::Pong { nonce }).await,
                _ => {}
            }
        }
    }
}

/// The addresses 127.0.0.`first` ..= 127.0.0.`last`.
pub fn addresses(first: u8, last: u8) -> Vec<String> {
    (first..=last).map(|n| format!("127.0.0.{n}")).collect()
}
