//! Quickstart: a server with a few views, and a client that signs up, logs in and calls them.
//!
//! `cargo run --example quickstart` starts both in one process, prints every reply, and exits 0.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::Context;
use fluxon::{
    ensure, view, views, AsyncServer, CallError, ConnectionHandler, OrUser, Request, Router,
    ViewError,
};
use serde::{Deserialize, Serialize};

/// The users this server knows, name -> id, kept in memory: shared with every view through
/// `Router::state`.
#[derive(Default)]
struct Users(Mutex<HashMap<String, i64>>);

/// Registers a username and returns its new user id. A failure written for the client
/// (`bail!`) reaches it as it is.
#[view]
async fn signup(req: Request, username: String) -> Result<i64, ViewError> {
    let users = req.state::<Users>().or_user("no user table")?;
    let mut users = users.0.lock().or_user("user table poisoned")?;
    ensure!(!username.trim().is_empty(), "a username is required");
    ensure!(!users.contains_key(&username), "{username} is taken");
    let id = users.len() as i64 + 1;
    users.insert(username, id);
    Ok(id)
}

/// Why a login failed: an error of the app's own type, which the client gets typed
/// (`CallError::View(LoginFailed::NoSuchUser)`) and matches on.
#[derive(Debug, Serialize, Deserialize)]
enum LoginFailed {
    NoSuchUser,
}

/// Logs this session in as a registered user.
#[view]
async fn login(req: Request, username: String) -> Result<String, LoginFailed> {
    let id = req
        .state::<Users>()
        .and_then(|users| users.0.lock().ok()?.get(&username).copied())
        .ok_or(LoginFailed::NoSuchUser)?;
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
    match conn.call(login, &"jill".to_owned()).await {
        Err(CallError::View(LoginFailed::NoSuchUser)) => {
            println!("login(jill)         -> no such user (a typed error)")
        }
        other => anyhow::bail!("jill is not a user: {other:?}"),
    }
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
