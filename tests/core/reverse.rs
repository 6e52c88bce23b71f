//! Reverse requests: the server calls its clients, by user, session, group or everyone.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fluxon::{view, ConnectionHandler, ErrorCode, Request, ReverseError};
use futures_util::future::join_all;

use crate::common::*;
use crate::postgres::Backend;

#[view]
pub async fn join(req: Request, group: String) {
    req.join_group(&group);
}

/// Counts deliveries of "ping" and remembers the last payload.
fn counting(conn: &ConnectionHandler) -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    conn.on("ping", move |n: u64| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move { n + 1 }
    });
    count
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn server_with_groups() -> fluxon::RunningServer {
    let router = router().mapping(fluxon::views![join]).unwrap();
    fluxon::AsyncServer::new(0)
        .router(router)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn delivered_to_every_session_of_that_user_and_no_one_else() {
    let server = start_default().await;
    let handle = server.handle();
    let (phone, laptop, other, anonymous) = (
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
    );
    for (conn, user) in [(&phone, 1), (&laptop, 1), (&other, 2)] {
        conn.call(login_as, &user).await.unwrap();
    }
    let counts: Vec<_> = [&phone, &laptop, &other, &anonymous]
        .iter()
        .map(|c| counting(c))
        .collect();

    assert!(handle.reverse_request(1, "ping", &7u64).await);
    eventually("both of user 1's sessions", || {
        counts[0].load(Ordering::SeqCst) == 1 && counts[1].load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(counts[2].load(Ordering::SeqCst), 0, "user 2 got nothing");
    assert_eq!(
        counts[3].load(Ordering::SeqCst),
        0,
        "the anonymous client got nothing"
    );

    assert!(
        !handle.reverse_request(3, "ping", &0u64).await,
        "an offline user: false"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn to_one_session_a_group_and_everyone() {
    let server = server_with_groups().await;
    let handle = server.handle();
    let conns = join_all((0..4).map(|_| connect(&server))).await;
    let counts: Vec<_> = conns.iter().map(counting).collect();
    conns[0].call(join, &"blue".to_owned()).await.unwrap();
    conns[1].call(join, &"blue".to_owned()).await.unwrap();
    assert_eq!(
        handle.group_members("blue").await.expect("members").len(),
        2
    );

    assert_eq!(handle.reverse_request_group("blue", "ping", &1u64).await, 2);
    eventually("the group", || {
        counts[0].load(Ordering::SeqCst) == 1 && counts[1].load(Ordering::SeqCst) == 1
    })
    .await;

    let third: [u8; 16] = conns[2].call(session, &()).await.unwrap();
    let third = handle
        .sessions_list()
        .into_iter()
        .map(|(id, _, _)| id)
        .find(|id| *id.as_bytes() == third)
        .unwrap();
    assert!(handle.reverse_request_session(third, "ping", &2u64).await);
    eventually("one session", || counts[2].load(Ordering::SeqCst) == 1).await;

    assert_eq!(handle.broadcast("ping", &3u64).await, 4);
    eventually("everyone", || {
        counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum::<usize>()
            == 3 + 4
    })
    .await;
    assert_eq!(
        counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect::<Vec<_>>(),
        [2, 2, 2, 1]
    );
    assert_eq!(
        handle.reverse_request_group("nobody", "ping", &4u64).await,
        0
    );
    server.shutdown().await;
}

/// A message a client shows, and its answer: the declaration both sides are checked against.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Note {
    pub from: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Seen {
    Shown { chars: usize },
}

/// Shows a note; answers how much was shown.
#[fluxon::reverse]
pub async fn show_note(note: Note) -> Seen;

/// Sent under another name than the function's.
#[fluxon::reverse(name = "bell")]
pub async fn ring();

#[tokio::test]
async fn declared_reverse_requests_are_typed_on_both_sides() {
    let server = server_with_groups().await;
    let handle = server.handle();
    let conn = connect(&server).await;
    let other = connect(&server).await;
    conn.call(login_as, &7).await.unwrap();
    let shown = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = Arc::clone(&shown);
    conn.on(show_note, move |note: Note| {
        let chars = note.text.chars().count();
        keep.lock().unwrap().push(note);
        async move { Seen::Shown { chars } }
    });
    let rings = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&rings);
    other.on(ring, move |()| {
        counted.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    let note = Note {
        from: "ann".into(),
        text: "héllo".into(),
    };
    // A call checked against the declaration: a `Note` in, a `Seen` out, no annotations.
    let seen = handle
        .reverse_call(7, show_note, &note, PATIENCE)
        .await
        .unwrap();
    assert_eq!(seen, Seen::Shown { chars: 5 });
    assert!(handle.reverse_request(7, show_note, &note).await);
    eventually("the second note", || shown.lock().unwrap().len() == 2).await;
    assert_eq!(shown.lock().unwrap()[0], note);
    // The declared name is what goes on the wire: a by-name handler sees it too.
    assert_eq!(handle.broadcast(ring, &()).await, 2);
    eventually("the bell", || rings.load(Ordering::SeqCst) == 1).await;
    other.call(join, &"desk".to_owned()).await.unwrap();
    assert_eq!(handle.reverse_request_group("desk", ring, &()).await, 1);
    eventually("the second bell", || rings.load(Ordering::SeqCst) == 2).await;
    // And the by-name form still reaches a declared handler.
    let by_name: Seen = handle
        .reverse_call(7, "show_note", &note, PATIENCE)
        .await
        .unwrap();
    assert_eq!(by_name, Seen::Shown { chars: 5 });
    server.shutdown().await;
}

#[tokio::test]
async fn a_reply_is_awaited_and_typed() {
    let server = start_default().await;
    let handle = server.handle();
    let conn = connect(&server).await;
    conn.call(login_as, &5).await.unwrap();
    counting(&conn);
    let reply: u64 = handle
        .reverse_call(5, "ping", &41u64, PATIENCE)
        .await
        .unwrap();
    assert_eq!(reply, 42);
    let wrong = handle
        .reverse_call::<_, String>(5, "ping", &1u64, PATIENCE)
        .await
        .unwrap_err();
    assert!(matches!(wrong, ReverseError::BadReply { .. }), "{wrong}");
    let offline = handle
        .reverse_call::<_, u64>(6, "ping", &1u64, PATIENCE)
        .await
        .unwrap_err();
    assert!(matches!(offline, ReverseError::Offline));
    let unhandled = handle
        .reverse_call::<_, u64>(5, "nope", &1u64, PATIENCE)
        .await
        .unwrap_err();
    assert!(
        matches!(
            unhandled,
            ReverseError::Client {
                code: ErrorCode::NoHandler,
                ..
            }
        ),
        "{unhandled}"
    );
    let bad_payload = handle
        .reverse_call::<_, u64>(5, "ping", &"text", PATIENCE)
        .await
        .unwrap_err();
    assert!(
        matches!(
            bad_payload,
            ReverseError::Client {
                code: ErrorCode::BadPayload,
                ..
            }
        ),
        "{bad_payload}"
    );
    assert_eq!(
        conn.call(add, &(1, 1)).await.unwrap(),
        2,
        "the connection carries on"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_never_replies_times_out_and_one_that_leaves_is_reported() {
    let server = start_default().await;
    let handle = server.handle();
    let conn = connect(&server).await;
    conn.call(login_as, &8).await.unwrap();
    let mut queue = conn.reverse_requests(8);
    let ask = tokio::spawn({
        let handle = handle.clone();
        async move {
            handle
                .reverse_call::<_, u64>(8, "question", &1u64, Duration::from_millis(200))
                .await
        }
    });
    let held = queue.next().await.expect("queued");
    assert_eq!(held.name(), "question");
    match ask.await.unwrap() {
        Err(ReverseError::Timeout(limit)) => assert_eq!(limit, Duration::from_millis(200)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    drop(held);

    let ask = tokio::spawn({
        let handle = handle.clone();
        async move {
            handle
                .reverse_call::<_, u64>(8, "question", &2u64, PATIENCE)
                .await
        }
    });
    let held = queue.next().await.expect("queued");
    conn.close().await;
    let result = ask.await.unwrap();
    assert!(
        matches!(result, Err(ReverseError::Disconnected)),
        "{result:?}"
    );
    drop(held);
    server.shutdown().await;
}

#[tokio::test]
async fn the_queue_takes_what_has_no_handler_and_answers_in_its_own_time() {
    use futures_util::StreamExt;
    let server = start_default().await;
    let handle = server.handle();
    let conn = connect(&server).await;
    conn.call(login_as, &9).await.unwrap();
    let mut queue = conn.reverse_requests(8);
    let ask = tokio::spawn({
        let handle = handle.clone();
        async move {
            handle
                .reverse_call::<_, String>(9, "confirm", &"delete it?".to_owned(), PATIENCE)
                .await
        }
    });
    let incoming = StreamExt::next(&mut queue).await.unwrap();
    assert_eq!(incoming.payload::<String>().unwrap(), "delete it?");
    incoming.reply(&"yes".to_owned()).await.unwrap();
    assert_eq!(ask.await.unwrap().unwrap(), "yes");

    let ask = tokio::spawn({
        let handle = handle.clone();
        async move {
            handle
                .reverse_call::<_, String>(9, "confirm", &"really?".to_owned(), PATIENCE)
                .await
        }
    });
    queue.next().await.unwrap().reject("no").await.unwrap();
    let refused = ask.await.unwrap().unwrap_err();
    assert!(
        matches!(refused, ReverseError::Client { ref message, .. } if message == "no"),
        "{refused}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_each_receive_one_broadcast_exactly_once() {
    let server = start(one_address_for_all(
        fluxon::AsyncServer::new(0).max_connections(2000),
    ))
    .await;
    let addr = server.local_addr().to_string();
    let conns: Vec<ConnectionHandler> =
        join_all((0..1000).map(|_| ConnectionHandler::connect(addr.clone())))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let counts: Vec<_> = conns.iter().map(counting).collect();
    assert_eq!(server.handle().broadcast("ping", &1u64).await, 1000);
    eventually("all 1000", || {
        counts.iter().all(|c| c.load(Ordering::SeqCst) >= 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        counts.iter().all(|c| c.load(Ordering::SeqCst) == 1),
        "exactly once"
    );
    server.shutdown().await;
}

#[test]
fn the_blocking_client_handles_and_queues_reverse_requests() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(start_default());
    let handle = server.handle();
    let conn =
        fluxon::blocking::ConnectionHandler::connect(server.local_addr().to_string()).unwrap();
    conn.call(login_as, &12).unwrap();
    conn.on("double", |n: u64| {
        std::thread::sleep(Duration::from_millis(5)); // may block: it runs on a pool thread
        n * 2
    });
    let doubled: u64 = runtime
        .block_on(handle.reverse_call(12, "double", &21u64, PATIENCE))
        .unwrap();
    assert_eq!(doubled, 42);

    let mut queue = conn.reverse_requests(4);
    let ask = runtime.spawn({
        let handle = handle.clone();
        async move {
            handle
                .reverse_call::<_, String>(12, "name", &(), PATIENCE)
                .await
        }
    });
    let incoming = queue.next_timeout(PATIENCE).expect("a request");
    assert_eq!(incoming.name(), "name");
    incoming.reply(&"gui".to_owned()).unwrap();
    assert_eq!(runtime.block_on(ask).unwrap().unwrap(), "gui");
    assert!(queue.next_timeout(Duration::from_millis(20)).is_none());
    conn.close();
    runtime.block_on(server.shutdown());
}

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_cannot_grow_server_memory_and_is_dropped() {
    let server = start(
        fluxon::AsyncServer::new(0)
            .outgoing_buffer(64 * 1024)
            .idle_timeout(Duration::from_millis(500)),
    )
    .await;
    let handle = server.handle();
    let good = connect(&server).await;
    let received = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&received);
    good.on("blob", move |blob: Vec<u8>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move { blob.len() }
    });
    // A peer that completes the handshake and then never reads a byte.
    let mut mute = RawPeer::connect(&server).await;
    mute.hello(None).await;

    let payload = vec![7u8; 64 * 1024];
    let before = resident_bytes();
    let mut taken_by_both = 0;
    for _ in 0..600 {
        // 38 MiB offered to each; the mute peer's queue fills, then sends to it fail at once.
        if handle.broadcast("blob", &payload).await == 2 {
            taken_by_both += 1;
        }
    }
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        taken_by_both < 300,
        "sends to the full queue failed instead of queueing: {taken_by_both}"
    );
    assert!(
        grown < 32 * 1024 * 1024,
        "server memory grew by {grown} bytes for a peer that reads nothing"
    );

    // The stuck peer is dropped by its writer's stall timeout (the idle timeout); the good client
    // was served all along.
    eventually("the stuck peer to be dropped", || {
        handle.connection_count() == 1
    })
    .await;
    eventually("the good client's blobs", || {
        received.load(Ordering::SeqCst) > 0
    })
    .await;
    assert_eq!(good.call(add, &(2, 3)).await.unwrap(), 5);
    server.shutdown().await;
}

async fn the_mailbox_delivers_what_was_sent_while_away_in_order_and_once(backend: Backend) {
    let (place, _dir) = crate::postgres::place(backend);
    let db = fluxon::db::AsyncDatabase::open(&place).unwrap();
    let server = start(fluxon::AsyncServer::new(0).mailbox(db)).await;
    let handle = server.handle();
    for text in ["one", "two", "three"] {
        assert!(
            !handle
                .reverse_request_or_keep(20, "note", &text.to_owned())
                .await
                .unwrap(),
            "kept"
        );
    }
    assert_eq!(handle.kept_for(20).await.unwrap(), 3);

    // A client without a handler for it does not acknowledge: everything stays.
    let first = connect(&server).await;
    first.call(login_as, &20).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        handle.kept_for(20).await.unwrap(),
        3,
        "not acknowledged, not removed"
    );
    first.close().await;

    // The next client handles it: all three arrive, in order, once each, and are removed.
    let second = connect(&server).await;
    let got = notes(&second);
    second.call(login_as, &20).await.unwrap();
    eventually("the kept notes", || got.lock().unwrap().len() == 3).await;
    eventually("the mailbox to empty", || {
        futures_util::FutureExt::now_or_never(handle.kept_for(20)).and_then(Result::ok) == Some(0)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*got.lock().unwrap(), ["one", "two", "three"]);

    // Online now: delivered at once, nothing kept.
    assert!(handle
        .reverse_request_or_keep(20, "note", &"four".to_owned())
        .await
        .unwrap());
    eventually("the live note", || got.lock().unwrap().len() == 4).await;
    assert_eq!(handle.kept_for(20).await.unwrap(), 0);
    server.shutdown().await;
}

async fn the_mailbox_delivers_when_a_logged_in_session_resumes(backend: Backend) {
    let (place, _dir) = crate::postgres::place(backend);
    let db = fluxon::db::AsyncDatabase::open(&place).unwrap();
    let server = start(fluxon::AsyncServer::new(0).mailbox(db)).await;
    let handle = server.handle();
    let mut config = fluxon::ClientConfig::default();
    config.reconnect.initial_backoff = Duration::from_millis(500);
    let conn = ConnectionHandler::connect_with(server.local_addr().to_string(), config)
        .await
        .unwrap();
    let got = notes(&conn);
    conn.call(login_as, &30).await.unwrap();

    // The connection drops (the session and its login stay); while it is away, a note is kept.
    let sid = handle.user_sessions(30)[0];
    assert!(handle.disconnect_session(sid));
    eventually("the connection to close", || handle.connection_count() == 0).await;
    assert!(!handle
        .reverse_request_or_keep(30, "note", &"while away".to_owned())
        .await
        .unwrap());
    // The client resumes its session by itself, and the note follows.
    eventually("the kept note", || got.lock().unwrap().len() == 1).await;
    assert_eq!(*got.lock().unwrap(), ["while away"]);
    assert!(conn.session_resumed());
    server.shutdown().await;
}

/// Keeps every "note" reverse request `conn` receives, in order.
fn notes(conn: &ConnectionHandler) -> Arc<std::sync::Mutex<Vec<String>>> {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    conn.on("note", move |text: String| {
        sink.lock().unwrap().push(text);
        async {}
    });
    got
}

async fn mailbox_server(
    backend: Backend,
    limits: fluxon::MailboxLimits,
) -> (fluxon::RunningServer, tempfile::TempDir) {
    let (place, dir) = crate::postgres::place(backend);
    let db = fluxon::db::AsyncDatabase::open(&place).unwrap();
    let server = start(
        fluxon::AsyncServer::new(0)
            .mailbox(db)
            .mailbox_limits(limits),
    )
    .await;
    (server, dir)
}

async fn the_mailbox_keeps_at_most_its_limit_per_user(backend: Backend) {
    let limits = fluxon::MailboxLimits::default().per_user(3);
    let (server, _dir) = mailbox_server(backend, limits).await;
    let handle = server.handle();
    for n in 0..3 {
        assert!(!handle
            .reverse_request_or_keep(40, "note", &n)
            .await
            .unwrap());
    }
    let full = handle.reverse_request_or_keep(40, "note", &3).await;
    assert!(
        matches!(full, Err(ReverseError::MailboxFull { user: 40, limit: 3 })),
        "{full:?}"
    );
    assert_eq!(handle.kept_for(40).await.unwrap(), 3);
    // Another user's mailbox is not affected.
    assert!(!handle
        .reverse_request_or_keep(41, "note", &0)
        .await
        .unwrap());
    server.shutdown().await;
}

async fn the_mailbox_forgets_messages_past_their_ttl(backend: Backend) {
    let limits = fluxon::MailboxLimits::default().ttl(Duration::from_secs(1));
    let (server, _dir) = mailbox_server(backend, limits).await;
    let handle = server.handle();
    assert!(!handle
        .reverse_request_or_keep(42, "note", &"stale".to_owned())
        .await
        .unwrap());
    // SQLite's timestamps have whole seconds: past the TTL for sure after two.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let conn = connect(&server).await;
    let got = notes(&conn);
    assert!(!handle
        .reverse_request_or_keep(42, "note", &"fresh".to_owned())
        .await
        .unwrap());
    conn.call(login_as, &42).await.unwrap();
    eventually("the fresh note", || got.lock().unwrap().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*got.lock().unwrap(), ["fresh"], "the stale one is gone");
    assert_eq!(handle.kept_for(42).await.unwrap(), 0);
    server.shutdown().await;
}

/// A message the client never acknowledges (no handler for it) is retried with back-off, then set
/// aside as a dead letter, and the messages behind it are delivered.
async fn an_unanswerable_message_becomes_a_dead_letter_and_the_rest_are_delivered(
    backend: Backend,
) {
    let limits = fluxon::MailboxLimits::default()
        .max_tries(3)
        .first_retry(Duration::from_millis(20));
    let (server, _dir) = mailbox_server(backend, limits).await;
    let handle = server.handle();
    assert!(!handle
        .reverse_request_or_keep(43, "nobody_handles_this", &0u8)
        .await
        .unwrap());
    for text in ["second", "third"] {
        assert!(!handle
            .reverse_request_or_keep(43, "note", &text.to_owned())
            .await
            .unwrap());
    }
    let conn = connect(&server).await;
    let got = notes(&conn);
    conn.call(login_as, &43).await.unwrap();
    eventually("the notes behind the bad one", || {
        got.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(*got.lock().unwrap(), ["second", "third"]);
    assert_eq!(handle.dead_letters_for(43).await.unwrap(), 1);
    // The last one is removed once its acknowledgement is in.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while handle.kept_for(43).await.unwrap() != 0 {
        assert!(tokio::time::Instant::now() < deadline, "still kept");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.shutdown().await;
}

/// A lone call reads its own reply from the socket (no hop through the link's task): whatever
/// else the server sends meanwhile must still be handled, and a call that gives up must hand the
/// reading back, or nothing would read the socket until the next call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_call_reads_for_the_link_and_hands_the_reading_back_when_it_gives_up() {
    let server = start_default().await;
    let handle = server.handle();
    let conn = connect(&server).await;
    conn.call(login_as, &1).await.unwrap();
    let count = counting(&conn);

    // A reverse request that arrives while the lone call waits is read by the call, and handled.
    let poke = {
        let handle = handle.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            handle.reverse_request(1, "ping", &1u64).await
        })
    };
    assert_eq!(conn.call(tagged, &(5, 400)).await.unwrap(), 5);
    assert!(poke.await.unwrap());
    eventually("the request read by the call", || {
        count.load(Ordering::SeqCst) == 1
    })
    .await;

    // A lone call that times out, then one whose future is dropped: each waited on the socket.
    let impatient = conn.clone().call_timeout(Duration::from_millis(100));
    assert!(matches!(
        impatient.call(tagged, &(6, 1_500)).await,
        Err(fluxon::CallError::Timeout(_))
    ));
    assert!(
        tokio::time::timeout(Duration::from_millis(100), conn.call(tagged, &(7, 1_500)))
            .await
            .is_err()
    );
    // No call is waiting now: the link's task must be the one reading.
    assert!(handle.reverse_request(1, "ping", &2u64).await);
    eventually("the request after the calls gave up", || {
        count.load(Ordering::SeqCst) == 2
    })
    .await;
    // The late replies are dropped as unclaimed; the connection serves on.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(conn.call(echo, &"still".to_owned()).await.unwrap(), "still");
    assert_eq!(conn.connect_count(), 1, "never reconnected");
    server.shutdown().await;
}

/// The mailbox keeps its messages in the database: each of these runs on both backends.
mod mailbox {
    use super::*;

    crate::backends!(sync: ; async: the_mailbox_delivers_what_was_sent_while_away_in_order_and_once, the_mailbox_delivers_when_a_logged_in_session_resumes, the_mailbox_keeps_at_most_its_limit_per_user, the_mailbox_forgets_messages_past_their_ttl, an_unanswerable_message_becomes_a_dead_letter_and_the_rest_are_delivered);
}
