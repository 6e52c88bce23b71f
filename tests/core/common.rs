//! Views and helpers shared by the core tests.

use std::time::Duration;

use bytes::Bytes;
use fluxon::wire::{self, Envelope, FrameCodec, SessionTokenBytes};
use fluxon::{
    ensure, view, views, AsyncServer, ConnectionHandler, OrUser, Request, Router, RunningServer,
    ViewError,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

/// Upper bound for anything a test waits on.
pub const PATIENCE: Duration = Duration::from_secs(10);

#[view]
pub async fn echo(_req: Request, text: String) -> String {
    text
}

#[view]
pub async fn add(_req: Request, (a, b): (i64, i64)) -> Result<i64, ViewError> {
    a.checked_add(b).or_user(format!("{a} + {b} overflows"))
}

/// Fails with the message given, written for the client.
#[view]
pub async fn fail(_req: Request, message: String) -> Result<(), ViewError> {
    Err(ViewError::user(message))
}

/// Reads a file the server does not have: the I/O error, naming the path, goes to `?`.
#[view]
pub async fn read_secret(_req: Request, name: String) -> Result<Vec<u8>, ViewError> {
    let path = format!("/nonexistent-fluxon-dir/{name}");
    let read = std::fs::read(&path);
    Ok(read.map_err(|e| std::io::Error::new(e.kind(), format!("cannot read {path}: {e}")))?)
}

/// A seat booking's own error type: the client gets it typed.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum SeatError {
    Taken { by: String },
    NoSuchSeat(u32),
}

/// Seat 7 is taken by "ada"; seats above 9 do not exist; the rest are booked.
#[view]
pub async fn book(_req: Request, seat: u32) -> Result<u32, SeatError> {
    match seat {
        7 => Err(SeatError::Taken { by: "ada".into() }),
        10.. => Err(SeatError::NoSuchSeat(seat)),
        _ => Ok(seat),
    }
}

/// Both kinds of error in one view: seat 0 is a message for the client, seat 7 the view's own
/// error, seats above 9 an internal one (their file does not exist), the rest are booked.
#[view]
pub async fn book_checked(_req: Request, seat: u32) -> Result<u32, ViewError<SeatError>> {
    ensure!(seat != 0, "seat 0 is the stage");
    if seat == 7 {
        return Err(ViewError::typed(SeatError::Taken { by: "ada".into() }));
    }
    if seat > 9 {
        let _: Vec<u8> = std::fs::read(format!("/nonexistent-fluxon-dir/seat-{seat}"))?;
    }
    let seat = seat.checked_mul(1).or_user("no such seat")?;
    Ok(seat)
}

#[view]
pub async fn boom(_req: Request) -> u8 {
    panic!("boom goes the view")
}

/// Waits `ms` milliseconds, then answers `id`.
#[view]
pub async fn tagged(_req: Request, (id, ms): (u64, u64)) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    id
}

#[view]
pub async fn whoami(req: Request) -> Option<i64> {
    req.user_id()
}

#[view]
pub async fn login_as(req: Request, user: i64) {
    req.login(user);
}

#[view]
pub async fn logout(req: Request) {
    req.logout();
}

#[view]
pub async fn session(req: Request) -> [u8; 16] {
    *req.session_id().as_bytes()
}

/// A plain fn: `Handle::block_on` panics on a runtime worker thread and works on a blocking one,
/// so a reply proves the view ran off the runtime's workers.
#[view]
pub fn off_runtime(_req: Request, n: u64) -> u64 {
    tokio::runtime::Handle::current().block_on(async move { n * 2 })
}

/// The bytes reversed (a view whose payload and reply are byte strings).
#[view]
pub async fn reversed(_req: Request, mut data: Vec<u8>) -> Vec<u8> {
    data.reverse();
    data
}

#[view]
pub async fn big_reply(_req: Request, len: usize) -> Vec<u8> {
    vec![7u8; len]
}

pub fn router() -> Router {
    Router::new()
        .private_key([42u8; 32])
        .and_then(|r| {
            r.mapping(views![
                echo,
                add,
                fail,
                read_secret,
                book,
                book_checked,
                boom,
                tagged,
                whoami,
                login_as,
                logout,
                session,
                off_runtime,
                big_reply,
                reversed
            ])
        })
        .expect("the test router is valid")
}

pub async fn start(server: AsyncServer) -> RunningServer {
    server
        .router(router())
        .start()
        .await
        .expect("server starts")
}

/// `server` with the per-peer limits off: every test client connects from 127.0.0.1, and the tests
/// that open many connections test other bounds (the per-peer ones have tests of their own).
pub fn one_address_for_all(server: AsyncServer) -> AsyncServer {
    server
        .max_connections_per_peer(None)
        .max_handshakes(100_000, None)
}

pub async fn start_default() -> RunningServer {
    start(AsyncServer::new(0)).await
}

pub async fn connect(server: &RunningServer) -> ConnectionHandler {
    ConnectionHandler::connect(server.local_addr().to_string())
        .await
        .expect("client connects")
}

/// A hand-driven peer, for saying what the real client never would.
pub struct RawPeer {
    pub framed: Framed<TcpStream, FrameCodec>,
    /// The newest session token the server sent (`Welcome`, then `Token` at logins).
    pub token: Option<SessionTokenBytes>,
}

impl RawPeer {
    pub async fn connect(server: &RunningServer) -> RawPeer {
        let stream = TcpStream::connect(server.local_addr())
            .await
            .expect("tcp connect");
        RawPeer {
            framed: Framed::new(stream, wire::codec(64 * 1024 * 1024)),
            token: None,
        }
    }

    pub async fn send(&mut self, envelope: Envelope<'_>) {
        let body = envelope.encode().expect("encodes");
        self.framed.send(body).await.expect("send");
    }

    pub async fn hello(&mut self, resume: Option<SessionTokenBytes>) -> SessionTokenBytes {
        self.send(Envelope::Hello {
            magic: wire::MAGIC,
            version: wire::PROTOCOL_VERSION,
            resume,
            max_frame: 1 << 24,
        })
        .await;
        let frame = self.next().await.expect("welcome");
        match Envelope::decode(&frame).expect("decodes") {
            Envelope::Welcome { token, .. } => {
                self.token = Some(token);
                token
            }
            other => panic!("expected Welcome, got {other:?}"),
        }
    }

    /// The next frame, `None` at end of stream or error; panics if nothing comes within PATIENCE.
    pub async fn next(&mut self) -> Option<Bytes> {
        match tokio::time::timeout(PATIENCE, self.framed.next()).await {
            Ok(Some(Ok(frame))) => Some(frame.freeze()),
            Ok(_) => None,
            Err(_) => panic!("the server sent nothing within {PATIENCE:?}"),
        }
    }

    /// Calls a view and returns the result bytes or error code.
    pub async fn call<P: serde::Serialize>(
        &mut self,
        id: u64,
        view: &str,
        payload: &P,
    ) -> Result<Vec<u8>, wire::ErrorCode> {
        let payload = postcard::to_allocvec(payload).expect("payload encodes");
        self.send(Envelope::Call {
            id,
            view,
            payload: &payload,
        })
        .await;
        loop {
            let frame = self.next().await.expect("a reply");
            match Envelope::decode(&frame).expect("decodes") {
                Envelope::Reply { id: got, result } if got == id => {
                    return result.map(|b| b.to_vec()).map_err(|e| e.code)
                }
                Envelope::Ping { nonce } => self.send(Envelope::Pong { nonce }).await,
                Envelope::Token { token } => self.token = Some(token),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Reads until the server closes; returns the Goodbye or Refused text seen on the way, if any.
    pub async fn read_to_close(&mut self) -> Option<String> {
        let mut said = None;
        while let Some(frame) = self.next().await {
            match Envelope::decode(&frame) {
                Ok(Envelope::Goodbye { reason }) => said = Some(format!("goodbye: {reason}")),
                Ok(Envelope::Refused { reason, message }) => {
                    said = Some(format!("refused ({reason}): {message}"))
                }
                _ => {}
            }
        }
        said
    }
}
