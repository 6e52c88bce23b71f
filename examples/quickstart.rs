//! Quickstart: a server with a few views, and a client that signs up, logs in and calls them.
//!
//! `cargo run --example quickstart` starts both in one process, prints every reply, and exits 0.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;
use fluxon::{view, views, AsyncServer, ConnectionHandler, Request, Router};

/// The users this server knows, name -> id, kept in memory: shared with every view through
/// `Router::state`.
#[derive(Default)]
struct Users(Mutex<HashMap<String, i64>>);

/// Registers a username and returns its new user id.
#[view]
async fn signup(req: Request, username: String) -> Result<i64, String> {
    let users = req.state::<Users>().ok_or("no user table")?;
    let mut users = users.0.lock().map_err(|_| "user table poisoned")?;
    if username.trim().is_empty() {
        return Err("a username is required".into());
    }
    if users.contains_key(&username) {
        return Err(format!("{username} is taken"));
    }
    let id = users.len() as i64 + 1;
    users.insert(username, id);
    Ok(id)
}

/// Logs this session in as a registered user.
#[view]
async fn login(req: Request, username: String) -> Result<String, String> {
    let id = {
        let users = req.state::<Users>().ok_or("no user table")?;
        let users = users.0.lock().map_err(|_| "user table poisoned")?;
        *users
            .get(&username)
            .ok_or(format!("no user named {username}"))?
    };
    req.login(id);
    Ok(format!("welcome back, {username} (user {id})"))
}

/// Who is this session logged in as? A view without a payload.
#[view]
async fn whoami(req: Request) -> Option<i64> {
    req.user_id()
}

/// A plain `fn` view: runs on the blocking pool, so heavy work never stalls the server.
#[view]
fn sum(_req: Request, numbers: Vec<i64>) -> i64 {
    numbers.iter().sum()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let router = Router::new()
        .state(Users::default())
        .mapping(views![signup, login, whoami, sum])?;
    let server = AsyncServer::new(0).router(router).start().await?;
    let addr = server.local_addr().to_string();
    println!("server listening on {addr}");

    let conn = ConnectionHandler::connect(addr).await?;
    let id = conn.call(signup, &"jack".to_owned()).await?;
    println!("signup(jack)        -> user id {id}");
    let taken = conn.call(signup, &"jack".to_owned()).await;
    println!(
        "signup(jack) again  -> {}",
        taken.err().context("a second signup must fail")?
    );
    println!("whoami()            -> {:?}", conn.call(whoami, &()).await?);
    println!(
        "login(jack)         -> {}",
        conn.call(login, &"jack".to_owned()).await?
    );
    println!("whoami()            -> {:?}", conn.call(whoami, &()).await?);
    let total: i64 = conn.send_request("sum", &vec![1i64, 2, 3, 4]).await?;
    println!("sum([1, 2, 3, 4])   -> {total} (called by name)");
    let missing = conn.send_request::<_, ()>("nope", &()).await;
    println!(
        "nope()              -> {}",
        missing.err().context("an unknown view must fail")?
    );

    conn.close().await;
    server.shutdown().await;
    println!("done");
    Ok(())
}
