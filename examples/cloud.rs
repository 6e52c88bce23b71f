//! Cloud storage, the original README's flow end to end: sign up, log in, create an owner, create
//! a folder, write a real file, read it back (compared byte for byte), read the tree, delete.
//!
//! `cargo run --example cloud` runs a server with its cloud endpoint and a client in one process,
//! in a temporary directory, prints each step, and exits 0.

use anyhow::{ensure, Context};
use fluxon::cloud::{CloudOperation, CloudStorageServer, Grant, Permission};
use fluxon::db::{AsyncDatabase, Executor, Model, Password};
use fluxon::{view, views, AsyncServer, ConnectionHandler, OrUser, Request, Router, ViewError};

#[derive(Model, Debug)]
#[model(authorized_user)]
struct User {
    #[field(max_length = 30, unique)]
    username: String,
    password: Password,
}

/// The storage every user gets: the server decides it, never the client.
const STORAGE_PER_USER: u64 = 10 << 20;

/// The password is hashed within the server's hashing bound, off the runtime's threads.
#[view]
async fn signup(req: Request, (username, password): (String, String)) -> Result<i64, ViewError> {
    let password = req.hash_password(&password).await?;
    Ok(req.db()?.insert(&User { username, password }).await?)
}

#[view]
async fn login(req: Request, (username, password): (String, String)) -> Result<i64, ViewError> {
    Ok(req
        .login_with_password::<User>(&username, &password)
        .await?)
}

/// Gives the logged-in user a root directory named after them, with the server's storage limit
/// (a limit the client chose would be no limit at all).
#[view]
async fn create_owner(req: Request) -> Result<String, ViewError> {
    let user = req.user::<User>().await?.or_user("log in first")?;
    req.cloud()?
        .create_owner(&user.username, user.id, STORAGE_PER_USER)
        .await?;
    Ok(user.fields.username)
}

/// The permission a cloud operation needs, and on which item: making something needs the right
/// on the directory it goes into.
fn needed(operation: CloudOperation, path: &str) -> (Permission, String) {
    let parent = path.rsplit_once('/').map_or(path, |(p, _)| p).to_owned();
    match operation {
        CloudOperation::CreateDirectory => (Permission::CREATE_SUB_DIRECTORY, parent),
        CloudOperation::WriteFile => (Permission::CREATE_FILE, parent),
        CloudOperation::ReadFile | CloudOperation::Stat => (Permission::READ_FILE, path.into()),
        CloudOperation::DeleteItem => (Permission::DELETE_SUB_DIRECTORY, path.into()),
        CloudOperation::ReadTree => (Permission::READ_TREE_DIRECTORY, path.into()),
    }
}

/// Checks the permission, then grants: the one place a client gets cloud access from.
#[view]
async fn grant(
    req: Request,
    (operation, path): (CloudOperation, String),
) -> Result<Grant, ViewError> {
    let (permission, on) = needed(operation, &path);
    req.require_cloud_permission(permission, &on).await?;
    Ok(req.grant_access(operation, &path)?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = AsyncDatabase::open(dir.path().join("app.sqlite3"))?;
    db.create_tables(&[User::SCHEMA]).await?;
    let router = Router::new()
        .state(db)
        .mapping(views![signup, login, create_owner, grant])?;
    let server = AsyncServer::new(0)
        .router(router)
        .cloud_storage(CloudStorageServer::new(0, dir.path().join("cloud")))
        .start()
        .await?;
    let cloud_addr = server
        .cloud_addr()
        .context("the cloud endpoint is not up")?;
    println!(
        "server on {}, cloud storage on {cloud_addr}",
        server.local_addr()
    );

    let conn = ConnectionHandler::connect(server.local_addr().to_string()).await?;
    let id: i64 = conn
        .send_request("signup", &("jack", "correct horse"))
        .await?;
    println!("signup: user {id}");
    let _: i64 = conn
        .send_request("login", &("jack", "correct horse"))
        .await?;
    println!("login: ok");
    let root: String = conn.send_request("create_owner", &()).await?;
    println!("create_owner: `{root}` with 10 MiB");

    let storage = conn.cloud_connector(cloud_addr.to_string());
    // Every transfer starts with a grant from the view (a typed call).
    let ask = |operation, path: &str| {
        let conn = conn.clone();
        let payload = (operation, path.to_owned());
        async move { conn.call(grant, &payload).await.context("grant") }
    };

    storage
        .create_directory(&ask(CloudOperation::CreateDirectory, "jack/docs").await?)
        .await?;
    println!("create_folder: jack/docs");

    // A real file: this example's own source, plus some bulk.
    let local = dir.path().join("report.txt");
    let mut content = include_str!("cloud.rs").repeat(40).into_bytes();
    content.extend((0..200_000u32).map(|i| (i % 251) as u8));
    std::fs::write(&local, &content)?;
    let stat = storage
        .write_path(
            &ask(CloudOperation::WriteFile, "jack/docs/report.txt").await?,
            &local,
        )
        .await?;
    println!(
        "write_file: {} bytes, BLAKE3 {}",
        stat.size,
        stat.blake3.as_deref().unwrap_or("?")
    );

    let copy = dir.path().join("copy.txt");
    storage
        .read_to_path(
            &ask(CloudOperation::ReadFile, "jack/docs/report.txt").await?,
            &copy,
        )
        .await?;
    ensure!(std::fs::read(&copy)? == content, "the copy differs");
    println!("read_file: {} bytes, identical", content.len());

    let tree = storage
        .read_tree(&ask(CloudOperation::ReadTree, "jack").await?)
        .await?;
    println!("read_tree: {:?}", tree.files());

    storage
        .delete_item(&ask(CloudOperation::DeleteItem, "jack/docs").await?)
        .await?;
    let tree = storage
        .read_tree(&ask(CloudOperation::ReadTree, "jack").await?)
        .await?;
    ensure!(tree.children.is_empty(), "jack/docs is still there");
    println!("delete_item: jack/docs and everything in it");

    // What the user may not do, they cannot be granted.
    let refused = conn
        .call(
            grant,
            &(CloudOperation::ReadFile, "jill/secrets.txt".into()),
        )
        .await;
    ensure!(refused.is_err(), "a grant into another owner's root");
    println!(
        "grant into another owner's root: refused ({})",
        refused.err().map(|e| e.to_string()).unwrap_or_default()
    );

    conn.close().await;
    server.shutdown().await;
    Ok(())
}
