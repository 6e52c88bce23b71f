//! Groups and presence across nodes: join and leave from any node, members reached wherever
//! they are connected, who is online, and notices of joins and leaves.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxon::{ConnectionHandler, GroupNotice};

use crate::common::*;

/// Records every `news` payload `conn` gets.
fn inbox(conn: &ConnectionHandler) -> Arc<Mutex<Vec<u64>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&got);
    conn.on("news", move |n: u64| {
        kept.lock().expect("inbox").push(n);
        async {}
    });
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_joined_on_one_node_gets_group_messages_sent_from_another() {
    let redis = Redis::start();
    let (a, b, c) = (node(&redis).await, node(&redis).await, node(&redis).await);
    let member = client(&c).await;
    member.call(login_as, &21).await.expect("login");
    let bystander = client(&c).await;
    let (got, not_got) = (inbox(&member), inbox(&bystander));
    let member_session = c.handle().user_sessions(21)[0];
    // A joins C's session to the room; B sends to the room.
    a.handle().join_group(member_session, "room");
    assert!(
        eventually(|| async { c.handle().group_members_here("room") == vec![member_session] })
            .await,
        "C never learnt of the join"
    );
    assert_eq!(
        b.handle()
            .reverse_request_group("room", "news", &1u64)
            .await,
        1
    );
    assert!(eventually(|| async { *got.lock().expect("inbox") == vec![1] }).await);
    // Its members, asked of any node (A and B never served it).
    for node in [&a, &b, &c] {
        let members = node.handle().group_members("room").await.expect("members");
        assert_eq!(members, vec![member_session]);
    }
    // Who is online in the room, asked of any node.
    for node in [&a, &b, &c] {
        let presence = node.handle().presence("room").await.expect("presence");
        assert_eq!(presence.sessions, vec![(member_session, Some(21))]);
        assert_eq!(presence.users(), vec![21]);
    }
    // B takes it out again: nothing more reaches it.
    b.handle().leave_group(member_session, "room");
    assert!(eventually(|| async { c.handle().group_members_here("room").is_empty() }).await);
    assert_eq!(
        a.handle()
            .reverse_request_group("room", "news", &2u64)
            .await,
        0
    );
    assert!(a
        .handle()
        .presence("room")
        .await
        .expect("presence")
        .sessions
        .is_empty());
    let members = a.handle().group_members("room").await.expect("members");
    assert!(members.is_empty(), "{members:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*got.lock().expect("inbox"), vec![1]);
    assert!(not_got.lock().expect("inbox").is_empty());
    for node in [a, b, c] {
        node.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_keeps_its_groups_when_it_resumes_on_another_node_and_leaves_them_at_logout() {
    let redis = Redis::start();
    let (a, b, c) = (node(&redis).await, node(&redis).await, node(&redis).await);
    let conn = ConnectionHandler::connect_any([addr(&a), addr(&b)])
        .await
        .expect("connects");
    conn.call(login_as, &30).await.expect("login");
    conn.call(join, &"room".to_owned()).await.expect("joined");
    let got = inbox(&conn);
    a.shutdown().await;
    assert!(eventually(|| async { conn.connect_count() >= 2 && conn.is_connected() }).await);
    assert!(conn.session_resumed());
    // Still in the room on B: C's message reaches it there.
    assert_eq!(
        c.handle()
            .reverse_request_group("room", "news", &7u64)
            .await,
        1
    );
    assert!(eventually(|| async { *got.lock().expect("inbox") == vec![7] }).await);
    // Online, and a member, as B and C see it.
    let presence = c.handle().presence("room").await.expect("presence");
    assert_eq!(presence.users(), vec![30]);
    // A logout leaves every group, everywhere.
    conn.call(logout, &()).await.expect("logout");
    assert!(
        eventually(|| async {
            c.handle()
                .presence("room")
                .await
                .is_ok_and(|p| p.sessions.is_empty())
        })
        .await,
        "still in the room after logging out"
    );
    assert_eq!(
        c.handle()
            .reverse_request_group("room", "news", &8u64)
            .await,
        0
    );
    conn.close().await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_every_node_are_told_of_joins_and_leaves() {
    let redis = Redis::start();
    let notices = |server: fluxon::AsyncServer| server.group_notices("group_changed");
    let a = node_with(&redis, notices).await;
    let b = node_with(&redis, notices).await;
    let watcher = client(&b).await;
    watcher.call(login_as, &1).await.expect("login");
    watcher
        .call(join, &"room".to_owned())
        .await
        .expect("joined");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&seen);
    watcher.on("group_changed", move |notice: GroupNotice| {
        kept.lock().expect("seen").push(notice);
        async {}
    });
    let newcomer = client(&a).await;
    newcomer.call(login_as, &2).await.expect("login");
    newcomer
        .call(join, &"room".to_owned())
        .await
        .expect("joined");
    let joined = GroupNotice {
        group: "room".to_owned(),
        user: Some(2),
        joined: true,
    };
    assert!(
        eventually(|| async { seen.lock().expect("seen").contains(&joined) }).await,
        "the member on B was not told of the join on A: {:?}",
        seen.lock().expect("seen")
    );
    // Taken out by B, which never served that session: the notice still names its user.
    b.handle()
        .leave_group(a.handle().user_sessions(2)[0], "room");
    let left = GroupNotice {
        joined: false,
        ..joined
    };
    assert!(
        eventually(|| async { seen.lock().expect("seen").contains(&left) }).await,
        "not told of the leave"
    );
    watcher.close().await;
    newcomer.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_session_expired_is_taken_out_of_the_group() {
    let redis = Redis::start();
    let short = |server: fluxon::AsyncServer| {
        server.limits(fluxon::Limits::default().session_ttl(Duration::from_millis(300)))
    };
    let a = node_with(&redis, short).await;
    let conn = client(&a).await;
    conn.call(join, &"room".to_owned()).await.expect("joined");
    assert!(
        eventually(|| async { redis.command(&["SCARD", "test:g:room"]).as_deref() == Some(":1") })
            .await
    );
    conn.close().await;
    // Past the idle TTL its record expires; nothing ends it, so the group still names it until
    // someone looks.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let presence = a.handle().presence("room").await.expect("presence");
    assert!(presence.sessions.is_empty(), "{presence:?}");
    assert_eq!(
        redis.command(&["SCARD", "test:g:room"]).as_deref(),
        Some(":0"),
        "the expired member is still in the group's set"
    );
    a.shutdown().await;
}
