//! Chat: the original Fluxon README's chat. Users sign up and log in; `send_message` reverse-requests
//! `receive_message` on the recipient's connected clients and answers "sent!" or
//! "<name> is offline!".
//!
//! `cargo run --example chat` runs the server and three clients in one process: Alice and Bob talk,
//! Carol signs up and leaves, and a message to her is answered "carol is offline!". Exits 0.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use fluxon::db::{AsyncDatabase, Executor};
use fluxon::{
    bail, reverse, view, views, AsyncServer, ConnectionHandler, OrUser, Request, Router, ViewError,
};
use fluxon_apps::school::{login, User, MODELS};

/// Anyone may join the chat. The password is hashed within the server's hashing bound, off the
/// runtime's threads (`Password::hash` would block a worker for the whole hash).
#[view]
async fn signup(req: Request, (username, password): (String, String)) -> Result<i64, ViewError> {
    let password = req.hash_password(&password).await?;
    Ok(req.db()?.insert(&User { username, password }).await?)
}

/// What a client is sent for each message: who from, and the text. Declared once, so the
/// server's send and the client's handler are both checked against it.
#[reverse]
async fn receive_message(message: (String, String));

/// Sends `text` to every connected client of the user named `to`.
#[view]
async fn send_message(req: Request, (to, text): (String, String)) -> Result<String, ViewError> {
    let me = req.user::<User>().await?.or_user("log in first")?;
    let db = req.db()?;
    let Some(recipient) = db.check(User::username.eq(to.as_str())).first().await? else {
        bail!("no user named {to}");
    };
    let delivered = req
        .server()
        .reverse_request(recipient.id, receive_message, &(me.fields.username, text))
        .await;
    Ok(if delivered {
        "sent!".to_owned()
    } else {
        format!("{to} is offline!")
    })
}

/// A connected, logged-in chat client that keeps what it receives.
async fn client(
    addr: &str,
    name: &str,
) -> anyhow::Result<(ConnectionHandler, Arc<Mutex<Vec<String>>>)> {
    let conn = ConnectionHandler::connect(addr).await?;
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&inbox);
    let me = name.to_owned();
    conn.on(receive_message, move |(from, text): (String, String)| {
        println!("  [{me}'s screen] {from}: {text}");
        if let Ok(mut inbox) = sink.lock() {
            inbox.push(format!("{from}: {text}"));
        }
        async {}
    });
    conn.call(signup, &(name.to_owned(), format!("{name}-password")))
        .await?;
    conn.call(login, &(name.to_owned(), format!("{name}-password")))
        .await?;
    Ok((conn, inbox))
}

async fn wait_for(inbox: &Mutex<Vec<String>>, count: usize) -> anyhow::Result<()> {
    for _ in 0..200 {
        if inbox.lock().map(|i| i.len()).unwrap_or(0) >= count {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    anyhow::bail!("a message did not arrive within 2 s")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("chat.sqlite3");
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    fluxon::migrate::apply(&path, &migrations, None)?;
    fluxon::migrate::check_drift(&path, &MODELS)?;
    let db = AsyncDatabase::open(&path)?;
    let router = Router::new()
        .state(db)
        .mapping(views![signup, login, send_message])?;
    let server = AsyncServer::new(0).router(router).start().await?;
    let addr = server.local_addr().to_string();

    let (alice, alice_inbox) = client(&addr, "alice").await?;
    let (bob, bob_inbox) = client(&addr, "bob").await?;
    let (carol, _) = client(&addr, "carol").await?;
    carol.close().await; // Carol leaves.

    let reply = alice
        .call(send_message, &("bob".into(), "hi Bob!".into()))
        .await?;
    println!("alice -> bob: {reply}");
    wait_for(&bob_inbox, 1).await?;
    let reply = bob
        .call(send_message, &("alice".into(), "hello Alice".into()))
        .await?;
    println!("bob -> alice: {reply}");
    wait_for(&alice_inbox, 1).await?;
    let reply = alice
        .call(send_message, &("carol".into(), "are you there?".into()))
        .await?;
    println!("alice -> carol: {reply}");
    anyhow::ensure!(reply == "carol is offline!", "carol should be offline");
    let unknown = alice
        .call(send_message, &("dave".into(), "hi".into()))
        .await;
    println!(
        "alice -> dave: {}",
        unknown.err().context("dave does not exist")?
    );

    alice.close().await;
    bob.close().await;
    server.shutdown().await;
    println!("done");
    Ok(())
}
