//! Sessions: logins, resume after reconnect, forged tokens, several devices.

use std::time::Duration;

use fluxon::auth::SessionId;
use fluxon::wire::Envelope;
use fluxon::AsyncServer;

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
async fn grant_write(
    req: fluxon::Request,
    path: String,
) -> Result<fluxon::cloud::Grant, fluxon::ViewError> {
    Ok(req.grant_access(fluxon::cloud::CloudOperation::WriteFile, &path)?)
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

/// Says `Hello` (resuming `resume`); the token the server answers with and whether it resumed.
async fn welcome(
    server: &fluxon::RunningServer,
    resume: Option<fluxon::wire::SessionTokenBytes>,
) -> (RawPeer, fluxon::wire::SessionTokenBytes, bool) {
    let mut peer = RawPeer::connect(server).await;
    peer.send(Envelope::Hello {
        magic: fluxon::wire::MAGIC,
        version: fluxon::wire::PROTOCOL_VERSION,
        resume,
        max_frame: 1 << 20,
    })
    .await;
    let frame = peer.next().await.expect("an answer to Hello");
    match Envelope::decode(&frame).expect("decodes") {
        Envelope::Welcome { token, resumed, .. } => (peer, token, resumed),
        other => panic!("expected Welcome, got {other:?}"),
    }
}

async fn user_of(peer: &mut RawPeer, id: u64) -> Option<i64> {
    let who = peer.call(id, "whoami", &()).await.expect("whoami");
    postcard::from_bytes(&who).expect("an Option<i64>")
}

/// Session fixation: a token someone learned (or planted) before the login is useless after it.
#[tokio::test]
async fn a_login_rotates_the_token_and_the_token_from_before_resumes_nothing() {
    let server = start_default().await;
    let conn = connect(&server).await;
    let before = conn.session_token().expect("a token");
    conn.call(login_as, &11).await.unwrap();
    let after = conn.session_token().expect("a token");
    assert_ne!(before, after, "the client was sent the new token");
    assert_eq!(before.id, after.id, "the same session");

    let (mut fixer, _, resumed) = welcome(&server, Some(before)).await;
    assert!(!resumed, "the token from before the login resumes nothing");
    assert_eq!(user_of(&mut fixer, 1).await, None);

    let (mut holder, _, resumed) = welcome(&server, Some(after)).await;
    assert!(resumed);
    assert_eq!(user_of(&mut holder, 1).await, Some(11));
    // The client's own reconnect uses the new token and keeps the login.
    let sid = server.handle().user_sessions(11)[0];
    assert!(server.handle().disconnect_session(sid));
    assert!(conn.wait_connected(PATIENCE).await);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while conn.connect_count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(conn.call(whoami, &()).await.unwrap(), Some(11));
    assert!(conn.session_resumed());
    server.shutdown().await;
}

/// A login keeps only the connection that logged in: another connection riding the same session
/// (someone who resumed it with a stolen, pre-login token) is closed.
#[tokio::test]
async fn a_login_closes_the_sessions_other_connections() {
    let server = start_default().await;
    let (mut first, token, _) = welcome(&server, None).await;
    let (mut rider, ridden, resumed) = welcome(&server, Some(token)).await;
    assert!(resumed && ridden.id == token.id, "both on one session");
    first.call(1, "login_as", &12i64).await.unwrap();
    let said = rider.read_to_close().await;
    assert_eq!(said.as_deref(), Some("goodbye: disconnected by the server"));
    assert_eq!(user_of(&mut first, 2).await, Some(12));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_at_its_lifetime_however_busy_it_is() {
    let server = start(AsyncServer::new(0).session_lifetime(Duration::from_millis(600))).await;
    let conn = connect(&server).await;
    conn.call(login_as, &13).await.unwrap();
    let started = tokio::time::Instant::now();
    // Busy all along: at its lifetime the session still ends, and the client starts over.
    while conn.connect_count() < 2 {
        assert!(
            started.elapsed() < PATIENCE,
            "the session outlived its lifetime"
        );
        let _ = conn.call(add, &(1, 1)).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert!(conn.wait_connected(PATIENCE).await);
    assert!(!conn.session_resumed(), "an ended session is not resumed");
    assert_eq!(conn.call(whoami, &()).await.unwrap(), None);
    assert!(server.handle().user_sessions(13).is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn end_session_from_a_background_task_closes_and_forgets_it() {
    let server = start_default().await;
    let handle = server.handle();
    let conn = connect(&server).await;
    conn.call(login_as, &14).await.unwrap();
    let sid = handle.user_sessions(14)[0];
    let ended = tokio::spawn({
        let handle = handle.clone();
        async move { handle.end_session(sid) }
    })
    .await
    .unwrap();
    assert!(ended);
    assert!(!handle.end_session(sid), "already gone");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while conn.connect_count() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(conn.wait_connected(PATIENCE).await);
    assert!(!conn.session_resumed());
    assert_eq!(conn.call(whoami, &()).await.unwrap(), None);
    assert!(handle.user_sessions(14).is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn end_user_sessions_logs_a_user_out_everywhere() {
    let server = start_default().await;
    let handle = server.handle();
    let devices = [
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
    ];
    for device in &devices {
        device.call(login_as, &15).await.unwrap();
    }
    let bystander = connect(&server).await;
    bystander.call(login_as, &16).await.unwrap();
    assert_eq!(handle.end_user_sessions(15), 3);
    for device in &devices {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while device.connect_count() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "never reconnected");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(device.call(whoami, &()).await.unwrap(), None);
    }
    assert_eq!(bystander.call(whoami, &()).await.unwrap(), Some(16));
    assert_eq!(bystander.connect_count(), 1);
    server.shutdown().await;
}

/// Connection churn cannot push out the sessions of users who are away: 50,000 anonymous
/// handshakes through a registry of 1,000 sessions leave 100 logged-in, disconnected sessions
/// resumable with their logins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_of_fifty_thousand_anonymous_handshakes_keeps_a_hundred_logged_in_sessions() {
    let limits = fluxon::Limits::default().max_sessions(1_000);
    let server = start(one_address_for_all(AsyncServer::new(0).limits(limits))).await;
    let handle = server.handle();
    let mut tokens = Vec::new();
    for user in 0..100i64 {
        let (mut peer, _, _) = welcome(&server, None).await;
        peer.call(1, "login_as", &user).await.unwrap();
        tokens.push((user, peer.token.expect("the rotated token")));
    }
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while handle.connection_count() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "connections stayed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    let addr = server.local_addr();
    let hello = {
        let body = Envelope::Hello {
            magic: fluxon::wire::MAGIC,
            version: fluxon::wire::PROTOCOL_VERSION,
            resume: None,
            max_frame: 1 << 20,
        }
        .encode()
        .unwrap();
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        frame
    };
    let churn: Vec<_> = (0..8)
        .map(|_| {
            let hello = hello.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                for _ in 0..6_250 {
                    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                    stream.write_all(&hello).await.unwrap();
                    // The Welcome: its length, then its body.
                    let mut len = [0u8; 4];
                    stream.read_exact(&mut len).await.unwrap();
                    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                    stream.read_exact(&mut body).await.unwrap();
                }
            })
        })
        .collect();
    for task in churn {
        task.await.unwrap();
    }
    let churned = started.elapsed();
    assert!(
        handle.session_count() <= 1_000,
        "{}",
        handle.session_count()
    );
    for (user, token) in tokens {
        let (mut peer, _, resumed) = welcome(&server, Some(token)).await;
        assert!(resumed, "user {user}'s session was evicted by the churn");
        assert_eq!(user_of(&mut peer, 2).await, Some(user));
    }
    eprintln!("50,000 anonymous handshakes in {churned:?}");
    server.shutdown().await;
}
