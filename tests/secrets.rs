//! The private key from a secrets directory: used by the server, never written to its log, never
//! shown by anything that prints configuration. (A test binary of its own: the log subscriber is
//! global to a process.)

use std::os::unix::fs::PermissionsExt;

use fluxon::auth::{SecretError, Secrets};
use fluxon::{view, views, AsyncServer, ConnectionHandler, Request, Router};

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
    let router = Router::new()
        .private_key(&key)
        .unwrap()
        .mapping(views![login_as])
        .unwrap();
    let logs = tmp.path().join("logs");
    let config = AsyncServer::new(0).router(router).log_dir(&logs);
    let shown = format!("{config:?} {key:?}");
    let server = config.start().await.unwrap();
    let conn = ConnectionHandler::connect(server.local_addr().to_string())
        .await
        .unwrap();
    conn.call(login_as, &3).await.unwrap();
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
