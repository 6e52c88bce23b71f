//! What the cluster tests share: views, nodes of one cluster, and waiting for a condition.

use std::time::Duration;

use fluxon::{
    view, views, AsyncServer, Cluster, ConnectionHandler, Request, Router, RunningServer,
};

pub use crate::redis::Redis;
pub use crate::support::PATIENCE;

/// The key every node of the tests' clusters shares.
pub const KEY: [u8; 32] = [7u8; 32];

#[view]
pub async fn add(_req: Request, (a, b): (i64, i64)) -> i64 {
    a + b
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

/// The original README's chat: the sender's message to user `to`, wherever they are
/// connected; whether anyone took it.
#[view]
pub async fn send_message(req: Request, (to, text): (i64, String)) -> bool {
    let from = req.user_id().unwrap_or(0);
    req.server()
        .reverse_request(to, "receive_message", &(from, text))
        .await
}

#[view]
pub async fn join(req: Request, group: String) {
    req.join_group(&group);
}

/// The views every node serves, signed with [`KEY`].
pub fn router() -> Router {
    Router::new()
        .private_key(KEY)
        .expect("a key")
        .mapping(views![
            add,
            whoami,
            login_as,
            logout,
            session,
            send_message,
            join
        ])
        .expect("views")
}

/// The cluster settings of the tests: a short heartbeat, so deaths are seen within a second.
pub fn cluster(redis: &Redis) -> Cluster {
    Cluster::redis(redis.url())
        .prefix("test")
        .heartbeat(Duration::from_millis(200))
        .timeout(Duration::from_millis(500))
}

/// A node of the cluster in `redis`. Every client of the tests comes from 127.0.0.1: no
/// per-address connection limit.
pub async fn node(redis: &Redis) -> RunningServer {
    node_with(redis, |server| server).await
}

/// A node of the cluster in `redis`, configured further by `more`.
pub async fn node_with(
    redis: &Redis,
    more: impl FnOnce(AsyncServer) -> AsyncServer,
) -> RunningServer {
    more(
        AsyncServer::new(0)
            .router(router())
            .max_connections_per_peer(None)
            .cluster(cluster(redis)),
    )
    .start()
    .await
    .expect("a node starts")
}

/// The address clients dial for `node`.
pub fn addr(node: &RunningServer) -> String {
    node.local_addr().to_string()
}

/// A client of `node`.
pub async fn client(node: &RunningServer) -> ConnectionHandler {
    ConnectionHandler::connect(addr(node))
        .await
        .expect("the client connects")
}

/// Waits until `check` holds, at most [`PATIENCE`]; whether it did.
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Opens a connection to `addr` by hand and says Hello presenting `resume`; whether the node
/// resumed that session (the protocol as a client written from its docs speaks it).
pub async fn resumes(addr: &str, resume: fluxon::wire::SessionTokenBytes) -> bool {
    use fluxon::wire::{self, Envelope};
    use futures_util::{SinkExt, StreamExt};
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("tcp connect");
    let mut framed = tokio_util::codec::Framed::new(stream, wire::codec(1 << 20));
    let hello = Envelope::Hello {
        magic: wire::MAGIC,
        version: wire::PROTOCOL_VERSION,
        resume: Some(resume),
        max_frame: 1 << 20,
    };
    framed
        .send(hello.encode().expect("encodes"))
        .await
        .expect("send");
    let frame = tokio::time::timeout(PATIENCE, framed.next())
        .await
        .expect("a reply in time")
        .expect("a frame")
        .expect("readable");
    match Envelope::decode(&frame).expect("decodes") {
        Envelope::Welcome { resumed, .. } => resumed,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

/// The sessions `user` is logged in on at `node`, as raw ids.
pub fn sessions_of(node: &RunningServer, user: i64) -> Vec<[u8; 16]> {
    node.handle()
        .user_sessions(user)
        .iter()
        .map(|id| *id.as_bytes())
        .collect()
}

/// The Redis key of the record of the session `token` names (under the tests' prefix).
pub fn record_of(token: &fluxon::wire::SessionTokenBytes) -> String {
    let hex: String = token.id.iter().map(|b| format!("{b:02x}")).collect();
    format!("test:s:{hex}")
}
