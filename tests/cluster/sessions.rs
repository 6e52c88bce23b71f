//! Sessions shared by the nodes: a token made on one resumes on another with its login; logins,
//! logouts and ended sessions reach every node.

use std::time::Duration;

use fluxon::ConnectionHandler;

use crate::common::*;

/// `conn`'s session id, asked of the node it is on.
async fn session_of(conn: &ConnectionHandler) -> [u8; 16] {
    conn.call(session, &()).await.expect("session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_node_resumes_on_another_with_its_login() {
    let redis = Redis::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let conn = ConnectionHandler::connect_any([addr(&a), addr(&b)])
        .await
        .expect("connects to the first");
    conn.call(login_as, &41).await.expect("login on A");
    let made_on_a = session_of(&conn).await;
    // A goes away; the client carries on on B, in the same session, logged in.
    a.shutdown().await;
    assert!(
        eventually(|| async { conn.connect_count() >= 2 && conn.is_connected() }).await,
        "the client never reached B"
    );
    assert!(conn.session_resumed(), "B did not resume A's session");
    assert_eq!(session_of(&conn).await, made_on_a);
    assert_eq!(conn.call(whoami, &()).await.expect("whoami"), Some(41));
    assert_eq!(
        sessions_of(&b, 41),
        vec![made_on_a],
        "B knows the session as user 41's"
    );
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_or_unknown_token_gets_a_fresh_session_on_another_node() {
    let redis = Redis::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let conn = client(&a).await;
    conn.call(login_as, &8).await.expect("login");
    let mut token = conn.session_token().expect("a token");
    // The same session, a tampered MAC: B must not hand out user 8's session.
    token.mac[31] ^= 1;
    assert!(
        !resumes(&addr(&b), token).await,
        "a tampered token resumed a session on B"
    );
    conn.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_node_rotates_the_token_the_others_accept() {
    let redis = Redis::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let conn = client(&a).await;
    conn.call(login_as, &3).await.expect("login");
    let logged_in = conn.session_token().expect("token");
    // The same session on B, through a second connection presenting the token.
    assert!(
        resumes(&addr(&b), logged_in).await,
        "B resumes the session A made"
    );
    conn.call(logout, &()).await.expect("logout on A");
    // B learns of the logout: the token from before the logout resumes nothing there.
    assert!(
        eventually(|| async { !resumes(&addr(&b), logged_in).await }).await,
        "B still accepts the token from before the logout"
    );
    // And the new token, sent to the client on A, resumes the (logged-out) session on B.
    let fresh = conn.session_token().expect("token");
    assert_ne!(fresh, logged_in);
    assert!(resumes(&addr(&b), fresh).await, "B refuses the new token");
    assert!(
        b.handle().user_sessions(3).is_empty(),
        "B still has user 3 logged in"
    );
    conn.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_session_on_one_node_ends_it_on_the_node_serving_it() {
    let redis = Redis::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let conn = client(&a).await;
    conn.call(login_as, &12).await.expect("login");
    let id = a.handle().user_sessions(12)[0];
    let token = conn.session_token().expect("token");
    // B never served it, and ends it anyway.
    b.handle().end_session(id);
    assert!(
        eventually(|| async { a.handle().user_sessions(12).is_empty() }).await,
        "A still has the session B ended"
    );
    // Its token resumes nothing, on either node.
    for node in [&a, &b] {
        assert!(
            !resumes(&addr(node), token).await,
            "an ended session resumed"
        );
    }
    // The client was moved to a fresh, anonymous session.
    assert!(eventually(|| async { conn.is_connected() && conn.connect_count() >= 2 }).await);
    assert_eq!(conn.call(whoami, &()).await.expect("whoami"), None);
    conn.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_users_sessions_on_one_node_ends_them_everywhere() {
    let redis = Redis::start();
    let a = node(&redis).await;
    let b = node(&redis).await;
    let phone = client(&a).await;
    let laptop = client(&b).await;
    phone.call(login_as, &77).await.expect("login");
    laptop.call(login_as, &77).await.expect("login");
    let phone_token = phone.session_token().expect("token");
    // A third session of user 77's, made on A and idle now: no node serves it.
    let tablet = client(&a).await;
    tablet.call(login_as, &77).await.expect("login");
    let tablet_token = tablet.session_token().expect("token");
    tablet.close().await;
    assert_eq!(b.handle().end_user_sessions(77), 1, "B had one");
    assert!(
        eventually(|| async { a.handle().user_sessions(77).is_empty() }).await,
        "A still has user 77's sessions"
    );
    for token in [phone_token, tablet_token] {
        for node in [&a, &b] {
            assert!(
                !resumes(&addr(node), token).await,
                "an ended session resumed"
            );
        }
    }
    phone.close().await;
    laptop.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_idle_past_its_ttl_resumes_nowhere() {
    let redis = Redis::start();
    let limits = fluxon::Limits::default().session_ttl(Duration::from_millis(300));
    let start = |limits: fluxon::Limits| {
        fluxon::AsyncServer::new(0)
            .router(router())
            .limits(limits)
            .cluster(cluster(&redis))
            .start()
    };
    let a = start(limits.clone()).await.expect("A");
    let b = start(limits).await.expect("B");
    let conn = client(&a).await;
    conn.call(login_as, &4).await.expect("login");
    let token = conn.session_token().expect("token");
    conn.close().await;
    let record = record_of(&token);
    assert_eq!(redis.command(&["EXISTS", &record]).as_deref(), Some(":1"));
    // Within its TTL it resumes on B (whose connection then closes: idle again)...
    assert!(resumes(&addr(&b), token).await, "B refused a live session");
    tokio::time::sleep(Duration::from_millis(900)).await;
    // ...and past it, nowhere: not on B, which served it last, nor on A, which made it.
    assert!(
        !resumes(&addr(&b), token).await,
        "an expired session resumed on B"
    );
    assert!(
        !resumes(&addr(&a), token).await,
        "an expired session resumed on A"
    );
    assert_eq!(
        redis.command(&["EXISTS", &record]).as_deref(),
        Some(":0"),
        "its record outlived its TTL"
    );
    a.shutdown().await;
    b.shutdown().await;
}
