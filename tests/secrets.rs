//! The private key from a secrets directory: used by the server, never written to its log, never
//! shown by anything that prints configuration. (A test binary of its own: the log subscriber is
//! global to a process.)

use std::os::unix::fs::PermissionsExt;

use fluxon::auth::{SecretError, Secrets};
use fluxon::db::{AsyncDatabase, Executor, Model, Password};
use fluxon::{view, views, AsyncServer, ConnectionHandler, Request, Router, ViewError};

#[derive(Model, Debug)]
#[model(authorized_user)]
struct Member {
    #[field(max_length = 30, unique)]
    username: String,
    password: Password,
}

#[view]
async fn login(req: Request, (username, password): (String, String)) -> Result<i64, ViewError> {
    Ok(req
        .login_with_password::<Member>(&username, &password)
        .await?)
}

#[view]
async fn login_as(req: Request, user: i64) -> [u8; 16] {
    req.login(user);
    *req.session_id().as_bytes()
}

#[tokio::test]
async fn the_key_from_the_secrets_directory_signs_sessions_and_is_never_logged_or_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let secrets = tmp.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700)).unwrap();
    let key_text = "correct-horse-battery-staple-0123456789-abcdef";
    let key_file = secrets.join("private_key");
    std::fs::write(&key_file, format!("{key_text}\n")).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();

    let key = Secrets::open(&secrets).unwrap().private_key().unwrap();
    let db = AsyncDatabase::open(tmp.path().join("members.sqlite3")).unwrap();
    db.create_tables(&[Member::SCHEMA]).await.unwrap();
    let hash = Password::hash("the real one").unwrap();
    db.insert(&Member {
        username: "jack".into(),
        password: hash,
    })
    .await
    .unwrap();
    let router = Router::new()
        .private_key(&key)
        .unwrap()
        .state(db)
        .mapping(views![login_as, login])
        .unwrap();
    let logs = tmp.path().join("logs");
    let config = AsyncServer::new(0).router(router).log_dir(&logs);
    let shown = format!("{config:?} {key:?}");
    let server = config.start().await.unwrap();
    let conn = ConnectionHandler::connect(server.local_addr().to_string())
        .await
        .unwrap();
    conn.call(login_as, &3).await.unwrap();
    // Failed and throttled logins are logged, without the password.
    let guess = "a-guess-nobody-logs-7Z";
    for _ in 0..8 {
        let _ = conn
            .call(login, &("jack".to_owned(), guess.to_owned()))
            .await;
    }
    let shown = format!("{shown} {server:?} {:?}", server.handle());
    conn.close().await;
    server.shutdown().await;

    // The same key signs the same sessions after a restart (a token from the first run resumes):
    // proven by the core tests for `private_key`; here, that it never leaks.
    let hex: String = key_text.bytes().map(|b| format!("{b:02x}")).collect();
    for file in std::fs::read_dir(&logs).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        assert!(
            text.contains("fluxon server listening"),
            "the log was written"
        );
        assert!(!text.contains(key_text) && !text.contains(&hex), "{text}");
        assert!(
            text.contains("login failed") && text.contains("login throttled"),
            "{text}"
        );
        assert!(text.contains("jack"), "the username is logged: {text}");
        assert!(!text.contains(guess), "a password was logged: {text}");
    }
    assert!(
        !shown.contains(key_text) && !shown.contains(&hex[..16]),
        "{shown}"
    );

    // A loose key file is refused, saying why, without a byte of the key.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = Secrets::open(&secrets).unwrap().private_key().unwrap_err();
    assert!(matches!(err, SecretError::LooseMode { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains(key_text));
    // A key too short is refused before any server starts.
    std::fs::write(&key_file, "too short").unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let err = Secrets::open(&secrets).unwrap().private_key().unwrap_err();
    assert!(matches!(err, SecretError::TooShort { len: 9, .. }), "{err}");
    assert!(Router::new().private_key("too short").is_err());
}
