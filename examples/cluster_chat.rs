//! Cluster chat: three Fluxon nodes sharing sessions and reverse requests through Redis, clients
//! on different nodes talking, and a node stopped mid-way while its client carries on from
//! another node in the same session.
//!
//! `cargo run --example cluster_chat` uses the Redis at `FLUXON_REDIS_URL`, or starts its own
//! `redis-server` (Debian's `redis-server` package; `./scripts/test` installs it) on a free
//! loopback port in a temp dir. Exits 0.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use fluxon::{
    reverse, view, views, AsyncServer, Cluster, ConnectionHandler, OrUser, Request, Router,
    RunningServer, ViewError,
};

/// Every node's private key: a token or grant one node makes holds on the others. A real app
/// reads it from a secret store (`fluxon::auth::secrets`), never from its source.
const KEY: [u8; 32] = *b"cluster chat example key, 32 b.!";

/// What a client is sent for each message: who from, and the text.
#[reverse]
async fn receive_message(message: (i64, String));

/// Logs the session in as `user` (a real app checks a password: `login_with_password`).
#[view]
async fn login_as(req: Request, user: i64) {
    req.login(user);
}

/// Sends `text` to user `to`, on whichever node they are connected.
#[view]
async fn send_message(req: Request, (to, text): (i64, String)) -> Result<String, ViewError> {
    let me = req.user_id().or_user("log in first")?;
    let delivered = req
        .server()
        .reverse_request(to, receive_message, &(me, text))
        .await;
    Ok(if delivered {
        "sent!".to_owned()
    } else {
        format!("user {to} is offline!")
    })
}

/// A Redis for the example: `FLUXON_REDIS_URL`, or a `redis-server` of its own (stopped on drop).
struct Redis {
    url: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Redis {
    fn get() -> anyhow::Result<Redis> {
        if let Ok(url) = std::env::var("FLUXON_REDIS_URL") {
            return Ok(Redis {
                url,
                child: None,
                _dir: None,
            });
        }
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context(
                "cannot run redis-server: install Debian's redis-server package \
                 (./scripts/test does), or set FLUXON_REDIS_URL",
            )?;
        let redis = Redis {
            url: format!("redis://127.0.0.1:{port}/"),
            child: Some(child),
            _dir: Some(dir),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn node(redis: &Redis) -> anyhow::Result<RunningServer> {
    let router = Router::new()
        .private_key(KEY)?
        .mapping(views![login_as, send_message])?;
    Ok(AsyncServer::new(0)
        .router(router)
        .cluster(Cluster::redis(&redis.url).prefix("cluster-chat"))
        .start()
        .await?)
}

/// A client connected to `first` (failing over to the others), logged in as `user`, keeping
/// what it receives.
async fn chatter(
    addrs: &[String],
    first: usize,
    user: i64,
) -> anyhow::Result<(ConnectionHandler, Arc<Mutex<Vec<(i64, String)>>>)> {
    let order: Vec<String> = addrs
        .iter()
        .cycle()
        .skip(first)
        .take(addrs.len())
        .cloned()
        .collect();
    let conn = ConnectionHandler::connect_any(order).await?;
    conn.call(login_as, &user).await?;
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&inbox);
    conn.on(receive_message, move |(from, text): (i64, String)| {
        println!("  user {user} got from user {from}: {text}");
        if let Ok(mut inbox) = kept.lock() {
            inbox.push((from, text));
        }
        async {}
    });
    Ok((conn, inbox))
}

/// Waits until `inbox` holds `n` messages.
async fn until_received(inbox: &Mutex<Vec<(i64, String)>>, n: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    while inbox.lock().map(|m| m.len()).unwrap_or(0) < n {
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "a message never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let redis = Redis::get()?;
    let nodes = vec![
        node(&redis).await?,
        node(&redis).await?,
        node(&redis).await?,
    ];
    let addrs: Vec<String> = nodes.iter().map(|n| n.local_addr().to_string()).collect();
    println!("three nodes: {addrs:?}, Redis at {}", redis.url);

    let (alice, _) = chatter(&addrs, 0, 1).await?;
    let (bob, bob_inbox) = chatter(&addrs, 2, 2).await?;
    println!("alice (user 1) is on node 1, bob (user 2) on node 3");
    let reply = alice
        .call(send_message, &(2, "hi bob, from node 1".to_owned()))
        .await?;
    println!("alice -> bob: {reply}");
    ensure!(reply == "sent!", "{reply}");
    until_received(&bob_inbox, 1).await?;

    println!("node 3 stops; bob's client carries on from another node");
    let mut nodes = nodes;
    let third = nodes.pop().context("three nodes")?;
    third.shutdown().await;
    let start = Instant::now();
    while bob.connect_count() < 2 || !bob.is_connected() {
        ensure!(
            start.elapsed() < Duration::from_secs(10),
            "bob never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ensure!(bob.session_resumed(), "bob's session did not resume");
    let reply = alice
        .call(send_message, &(2, "still there?".to_owned()))
        .await?;
    println!("alice -> bob: {reply}");
    ensure!(reply == "sent!", "{reply}");
    until_received(&bob_inbox, 2).await?;
    let reply = bob
        .call(send_message, &(1, "yes, from another node".to_owned()))
        .await?;
    println!("bob -> alice: {reply}");
    ensure!(reply == "sent!", "{reply}");

    let reply = alice.call(send_message, &(3, "anyone?".to_owned())).await?;
    println!("alice -> user 3: {reply}");
    ensure!(reply == "user 3 is offline!", "{reply}");

    alice.close().await;
    bob.close().await;
    for node in nodes {
        node.shutdown().await;
    }
    println!("done");
    Ok(())
}
