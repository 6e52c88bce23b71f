//! Sessions: logins, resume after reconnect, forged tokens, several devices.

use std::time::Duration;

use fluxon::auth::SessionId;
use fluxon::wire::Envelope;

use crate::common::*;

#[tokio::test]
async fn login_binds_the_session_and_logout_unbinds_it() {
    let server = start_default().await;
    let conn = connect(&server).await;
    assert_eq!(conn.call(whoami, &()).await.unwrap(), None);
    conn.call(login_as, &7).await.unwrap();
    assert_eq!(conn.call(whoami, &()).await.unwrap(), Some(7));
    conn.call(logout, &()).await.unwrap();
    assert_eq!(conn.call(whoami, &()).await.unwrap(), None);
    assert!(server.handle().user_sessions(7).is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn reconnect_resumes_the_session_and_keeps_the_login() {
    let server = start_default().await;
    let conn = connect(&server).await;
    conn.call(login_as, &99).await.unwrap();
    let before = conn.call(session, &()).await.unwrap();
    let sessions = server.handle().user_sessions(99);
    assert_eq!(sessions.len(), 1);

    assert!(server.handle().disconnect_session(sessions[0]));
    // The client notices, reconnects with its token, and carries on.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while conn.connect_count() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "client never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(conn.wait_connected(PATIENCE).await);
    assert!(conn.session_resumed());
    assert_eq!(
        conn.call(session, &()).await.unwrap(),
        before,
        "same session"
    );
    assert_eq!(
        conn.call(whoami, &()).await.unwrap(),
        Some(99),
        "login kept"
    );
    assert_eq!(
        server.handle().session_count(),
        1,
        "no second session was made"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn forged_or_tampered_token_gets_a_fresh_session_never_the_forged_one() {
    let server = start_default().await;
    let mut victim = RawPeer::connect(&server).await;
    victim.hello(None).await;
    victim.call(1, "login_as", &5i64).await.unwrap();
    // The login rotated the token: the one to steal is the new one.
    let token = victim.token.expect("the server sent the rotated token");

    for tamper in [0usize, 20, 47] {
        let mut forged = token;
        if tamper < 16 {
            forged.id[tamper] ^= 1;
        } else {
            forged.mac[tamper - 16] ^= 0x40;
        }
        let mut attacker = RawPeer::connect(&server).await;
        attacker
            .send(Envelope::Hello {
                magic: fluxon::wire::MAGIC,
                version: fluxon::wire::PROTOCOL_VERSION,
                resume: Some(forged),
                max_frame: 1 << 24,
            })
            .await;
        let frame = attacker.next().await.unwrap();
        match Envelope::decode(&frame).unwrap() {
            Envelope::Welcome {
                token: fresh,
                resumed,
                ..
            } => {
                assert!(!resumed, "a forged token must not resume");
                assert_ne!(fresh.id, token.id);
                assert_ne!(fresh.id, forged.id);
            }
            other => panic!("expected Welcome, got {other:?}"),
        }
        let who = attacker.call(2, "whoami", &()).await.unwrap();
        assert_eq!(
            postcard::from_bytes::<Option<i64>>(&who).unwrap(),
            None,
            "no stolen login"
        );
    }
    // The genuine token still resumes.
    let mut again = RawPeer::connect(&server).await;
    let resumed = again.hello(Some(token)).await;
    assert_eq!(resumed.id, token.id);
    let who = again.call(3, "whoami", &()).await.unwrap();
    assert_eq!(postcard::from_bytes::<Option<i64>>(&who).unwrap(), Some(5));
    server.shutdown().await;
}

#[tokio::test]
async fn token_from_another_server_key_is_not_honoured() {
    let a = start_default().await;
    let b = fluxon::AsyncServer::new(0)
        .router(
            fluxon::Router::new()
                .private_key([1u8; 32])
                .unwrap()
                .mapping(fluxon::views![whoami])
                .unwrap(),
        )
        .start()
        .await
        .unwrap();
    let mut peer = RawPeer::connect(&a).await;
    let token = peer.hello(None).await;
    let mut other = RawPeer::connect(&b).await;
    let got = other.hello(Some(token)).await;
    assert_ne!(got.id, token.id);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn one_user_on_several_sessions() {
    let server = start_default().await;
    let phone = connect(&server).await;
    let laptop = connect(&server).await;
    phone.call(login_as, &3).await.unwrap();
    laptop.call(login_as, &3).await.unwrap();
    let mut ids: Vec<SessionId> = server.handle().user_sessions(3);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2);
    assert_eq!(phone.call(whoami, &()).await.unwrap(), Some(3));
    assert_eq!(laptop.call(whoami, &()).await.unwrap(), Some(3));
    phone.call(logout, &()).await.unwrap();
    assert_eq!(
        laptop.call(whoami, &()).await.unwrap(),
        Some(3),
        "the other device stays in"
    );
    assert_eq!(server.handle().user_sessions(3).len(), 1);
    server.shutdown().await;
}

#[fluxon::view]
async fn grant_write(req: fluxon::Request, path: String) -> Result<fluxon::cloud::Grant, String> {
    req.grant_access(fluxon::cloud::CloudOperation::WriteFile, &path)
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_view_grants_cloud_access_bound_to_its_session_user_path_and_operation() {
    use fluxon::cloud::{CloudOperation, CloudPath, GrantError};
    let router = router().mapping(fluxon::views![grant_write]).unwrap();
    let server = fluxon::AsyncServer::new(0)
        .router(router)
        .start()
        .await
        .unwrap();
    let handle = server.handle();
    let conn = connect(&server).await;
    conn.call(login_as, &4).await.unwrap();
    let grant = conn
        .call(grant_write, &"jack//docs/a.txt".to_owned())
        .await
        .unwrap();
    let path = CloudPath::parse("jack/docs/a.txt").unwrap();
    let sid = handle
        .check_grant(&grant, CloudOperation::WriteFile, &path)
        .unwrap();
    assert_eq!(handle.user_sessions(4), vec![sid]);
    assert!(matches!(
        handle.check_grant(&grant, CloudOperation::ReadFile, &path),
        Err(GrantError::WrongOperation { .. })
    ));
    let other = CloudPath::parse("jill/docs/a.txt").unwrap();
    assert_eq!(
        handle.check_grant(&grant, CloudOperation::WriteFile, &other),
        Err(GrantError::WrongPath)
    );
    let bad = conn
        .call(grant_write, &"jack/../jill/x".to_owned())
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("`..` is not allowed"), "{bad}");

    // Logging out revokes what the session was granted.
    conn.call(logout, &()).await.unwrap();
    assert_eq!(
        handle.check_grant(&grant, CloudOperation::WriteFile, &path),
        Err(GrantError::Revoked)
    );
    // A server with another private key never accepts it (one with the same key knows no such
    // session: Revoked).
    let other_router = fluxon::Router::new().private_key([1u8; 32]).unwrap();
    let other_server = fluxon::AsyncServer::new(0)
        .router(other_router)
        .start()
        .await
        .unwrap();
    assert_eq!(
        other_server
            .handle()
            .check_grant(&grant, CloudOperation::WriteFile, &path),
        Err(GrantError::BadSignature)
    );
    other_server.shutdown().await;
    server.shutdown().await;
}
