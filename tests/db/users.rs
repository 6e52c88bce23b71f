//! The user model: argon2id hashes only, login by username and password through a real server,
//! and `Request::user`.

use fluxon::db::{Executor, Password};
use fluxon::{view, views, AsyncServer, ConnectionHandler, Request, Router, ViewError};

use crate::models::*;

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

#[view]
async fn me(req: Request) -> Result<Option<String>, ViewError> {
    Ok(req.user::<User>().await?.map(|u| u.fields.username))
}

async fn signup_login_and_the_logged_in_user(backend: Backend) {
    let (db, _dir) = async_database_on(backend).await;
    let router = Router::new()
        .state(db.clone())
        .mapping(views![signup, login, me])
        .unwrap();
    let server = AsyncServer::new(0).router(router).start().await.unwrap();
    let conn = ConnectionHandler::connect(server.local_addr().to_string())
        .await
        .unwrap();

    let secret = "tr0ub4dor&3 ✓";
    let id = conn
        .call(signup, &("jack".to_owned(), secret.to_owned()))
        .await
        .unwrap();
    assert_eq!(
        conn.call(me, &()).await.unwrap(),
        None,
        "signed up, not logged in"
    );

    for (name, password) in [("jack", "wrong"), ("nobody", secret), ("jack", "")] {
        let err = conn
            .call(login, &(name.to_owned(), password.to_owned()))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("wrong username or password"),
            "{err}"
        );
    }
    assert_eq!(
        conn.call(me, &()).await.unwrap(),
        None,
        "failed logins change nothing"
    );

    assert_eq!(
        conn.call(login, &("jack".to_owned(), secret.to_owned()))
            .await
            .unwrap(),
        id
    );
    assert_eq!(conn.call(me, &()).await.unwrap().as_deref(), Some("jack"));

    // A user deleted meanwhile: the session is logged out the next time it asks who it is.
    let other = ConnectionHandler::connect(server.local_addr().to_string())
        .await
        .unwrap();
    let jill = other
        .call(signup, &("jill".to_owned(), "jill's secret".to_owned()))
        .await
        .unwrap();
    other
        .call(login, &("jill".to_owned(), "jill's secret".to_owned()))
        .await
        .unwrap();
    assert_eq!(server.handle().user_sessions(jill).len(), 1);
    db.delete(User::username.eq("jill")).await.unwrap();
    assert_eq!(other.call(me, &()).await.unwrap(), None);
    assert!(
        server.handle().user_sessions(jill).is_empty(),
        "the deleted user's session is logged out"
    );
    other.close().await;

    // Only the hash is stored.
    let stored: Vec<(String,)> = db
        .execute(
            fluxon::db::Raw::query("SELECT password FROM \"user\" WHERE username = ?").bind("jack"),
        )
        .await
        .unwrap();
    let stored = &stored[0].0;
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains(secret));
    // Nowhere on disk: the SQLite file and its log, or every file of the PostgreSQL server's.
    let files: Vec<std::path::PathBuf> = match backend {
        Backend::Sqlite => vec![
            _dir.path().join("test.sqlite3"),
            _dir.path().join("test.sqlite3-wal"),
        ],
        Backend::Postgres => files_under(&crate::postgres::server().dir.join("data"), 10_000),
    };
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "plaintext on disk in {}",
            file.display()
        );
    }
    server.shutdown().await;
}

/// Every file under `dir`, at most `max` of them.
fn files_under(dir: &std::path::Path, max: usize) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if files.len() < max {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn a_second_user_model_is_refused() {
    #[derive(fluxon::db::Model)]
    #[model(authorized_user, table = "admin")]
    struct Admin {
        username: String,
        password: Password,
    }
    let dir = tempfile::tempdir().unwrap();
    let db = fluxon::db::Database::open(dir.path().join("x.sqlite3")).unwrap();
    use fluxon::db::Model;
    let err = db
        .create_tables(&[User::SCHEMA, Admin::SCHEMA])
        .unwrap_err();
    assert!(err.to_string().contains("two user models"), "{err}");
}

crate::backends!(sync: ; async: signup_login_and_the_logged_in_user);
