//! The cloud endpoint under attack: forged grants, a flood of uploads that never finish, a
//! trickle, a peer opening connections past its cap. Each test checks that the attacker is held
//! *and* that a [`Bystander`] is served while the attack goes on.

use std::time::{Duration, Instant};

use fluxon::cloud::{
    CloudAuditEntry, CloudDirectory, CloudErrorCode, CloudFile, CloudOperation, CloudOperation::*,
    CloudOwner, CloudRole, CloudRoleAssignment, CloudUpload, Grant,
};
use fluxon::db::{AsyncDatabase, Executor, Row};
use fluxon::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::bystander::ROOT;
use crate::common::{
    connect_from, failed, forged, grant, hidden_files, pattern, refusal, Cloud, Raw, RawRequest,
    RawResponse, PATIENCE,
};

/// The request for `operation` on `path` with `grant` (whatever the grant really allows).
fn request(operation: CloudOperation, grant: Grant, path: &str) -> RawRequest {
    let path = path.to_owned();
    match operation {
        CreateDirectory => RawRequest::CreateDirectory { grant, path },
        WriteFile => RawRequest::WriteFile {
            grant,
            path,
            size: 1000,
            resume: false,
        },
        ReadFile => RawRequest::ReadFile {
            grant,
            path,
            offset: 0,
        },
        DeleteItem => RawRequest::DeleteItem { grant, path },
        ReadTree => RawRequest::ReadTree {
            grant,
            path,
            after: None,
        },
        Stat => RawRequest::Stat { grant, path },
    }
}

/// Every row of the cloud tables but the bystander's audit lines, as text.
async fn snapshot(db: &AsyncDatabase) -> String {
    let owners = db.check_all::<CloudOwner>().all().await.unwrap();
    let directories = db.check_all::<CloudDirectory>().all().await.unwrap();
    let files = db.check_all::<CloudFile>().all().await.unwrap();
    let uploads = db.check_all::<CloudUpload>().all().await.unwrap();
    let roles = db.check_all::<CloudRole>().all().await.unwrap();
    let assignments = db.check_all::<CloudRoleAssignment>().all().await.unwrap();
    let audit: Vec<_> = db
        .check_all::<CloudAuditEntry>()
        .all()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !e.path.starts_with(ROOT))
        .collect();
    format!("{owners:?}\n{directories:?}\n{files:?}\n{uploads:?}\n{roles:?}\n{assignments:?}\n{audit:?}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_forged_grants_write_nothing_while_a_bystander_is_served() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 20).await;
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/a.txt").await, b"mine")
        .await
        .unwrap();
    connector
        .create_directory(&grant(&conn, CreateDirectory, "jack/d").await)
        .await
        .unwrap();
    let bystander = crate::bystander::start(&cloud, false).await;
    let before = snapshot(&cloud.db).await;
    let refused_before = cloud.server.handle().stats().cloud_grants_refused;

    let targets = [
        (CreateDirectory, "jack/new"),
        (WriteFile, "jack/b.txt"),
        (WriteFile, "jack/a.txt"),
        (ReadFile, "jack/a.txt"),
        (DeleteItem, "jack/a.txt"),
        (DeleteItem, "jack/d"),
        (ReadTree, "jack"),
        (Stat, "jack/a.txt"),
    ];
    let mut genuine = Vec::new();
    for (operation, path) in targets {
        genuine.push((operation, path, grant(&conn, operation, path).await));
    }
    let token = conn.session_token().unwrap();
    let addr = cloud.cloud_addr();
    let rounds_before = bystander.calls();
    let started = Instant::now();
    // Eight attackers from another address, 125 forged requests each, one connection apiece.
    let attackers: Vec<_> = (0..8usize)
        .map(|task| {
            let (genuine, addr) = (genuine.clone(), addr.clone());
            tokio::spawn(async move {
                for i in 0..125usize {
                    let k = task * 125 + i;
                    let (operation, path, real) = &genuine[k % genuine.len()];
                    let stream = connect_from("127.0.0.2", &addr).await.unwrap();
                    let mut raw = Raw { stream };
                    raw.request_as(token, request(*operation, forged(real, k), path))
                        .await;
                    let (code, message) = failed(raw.response().await);
                    assert_eq!(code, CloudErrorCode::BadGrant, "{operation:?}: {message}");
                    assert!(message.contains("signature"), "{message}");
                }
            })
        })
        .collect();
    let served = bystander.served_now(2);
    let attack = futures_util::future::join_all(attackers);
    let ((), results) = tokio::join!(served, attack);
    let took = started.elapsed();
    for result in results {
        result.unwrap();
    }
    let rounds_during = bystander.calls() - rounds_before;
    assert!(
        rounds_during >= 2,
        "the bystander was served during the attack"
    );

    // A genuine grant with a forged or foreign token: refused the same way.
    let (other, _) = cloud.client(2).await;
    let foreign = other.session_token().unwrap();
    let mut tampered = token;
    tampered.mac[0] ^= 1;
    for (i, presented) in [tampered, foreign].into_iter().cycle().take(40).enumerate() {
        let (operation, path, real) = &genuine[i % genuine.len()];
        let mut raw = Raw::connect_from(&cloud, "127.0.0.2").await;
        raw.request_as(presented, request(*operation, real.clone(), path))
            .await;
        let (code, message) = failed(raw.response().await);
        assert_eq!(code, CloudErrorCode::BadGrant, "{message}");
        assert!(message.contains("another session"), "{message}");
    }

    let stats = cloud.server.handle().stats();
    assert_eq!(stats.cloud_grants_refused - refused_before, 1040);
    assert_eq!(
        snapshot(&cloud.db).await,
        before,
        "no row of any cloud table changed: no audit line, file, directory or upload"
    );
    assert_eq!(
        std::fs::read(cloud.folder().join("jack/a.txt")).unwrap(),
        b"mine"
    );
    assert!(cloud.folder().join("jack/d").is_dir());
    assert!(!cloud.folder().join("jack/new").exists());
    assert!(partials(&cloud).is_empty());
    // The genuine grants still work, and are audited.
    let stat = connector.stat(&genuine[7].2).await.unwrap();
    assert_eq!(stat.size, 4);
    let served = bystander.finish().await;
    eprintln!(
        "1000 forged grants in {took:?}; bystander: {rounds_during} rounds during the attack, \
         slowest round {:?}",
        served.slowest
    );
}

/// Starts a raw upload of `path` declaring `size`; `Ok(offset)` at `Ready` (the connection is
/// then cut after a few bytes), or the refusal.
async fn start_upload(
    cloud: &Cloud,
    conn: &fluxon::ConnectionHandler,
    path: &str,
    size: u64,
    resume: bool,
) -> Result<u64, (CloudErrorCode, String)> {
    let g = grant(conn, WriteFile, path).await;
    let mut raw = Raw::connect_from(cloud, "127.0.0.2").await;
    let request = RawRequest::WriteFile {
        grant: g,
        path: path.to_owned(),
        size,
        resume,
    };
    raw.request(conn, request).await;
    match raw.response().await {
        RawResponse::Ready { offset } => {
            let _ = raw.stream.write_all(&[7; 10]).await;
            Ok(offset)
        }
        RawResponse::Failed { code, message } => Err((code, message)),
        other => panic!("{other:?}"),
    }
}

/// The partial files under Jack's root.
fn partials(cloud: &Cloud) -> Vec<String> {
    hidden_files(&cloud.folder().join("jack"))
        .into_iter()
        .filter(|name| name.starts_with(".fluxon-part-"))
        .collect()
}

async fn uploads(cloud: &Cloud) -> Vec<Row<CloudUpload>> {
    cloud.db.check_all::<CloudUpload>().all().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unfinished_uploads_stops_at_the_quota_and_the_item_limit() {
    let cloud = Cloud::start_with(Limits::default(), |c| c.max_items_per_owner(16)).await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 20).await;
    let bystander = crate::bystander::start(&cloud, true).await;

    // Uploads of 100 000 bytes that never finish: ten fit in 1 MiB, the eleventh is refused at
    // its header, before `Ready`.
    let mut held = 0;
    let mut refused = None;
    for i in 0..50 {
        if i == 5 {
            bystander.served_now(1).await;
        }
        match start_upload(&cloud, &conn, &format!("jack/part{i}"), 100_000, false).await {
            Ok(0) => held += 1,
            Ok(offset) => panic!("a fresh upload resumed from {offset}"),
            Err(refusal) => {
                refused = Some(refusal);
                break;
            }
        }
    }
    assert_eq!(held, 10);
    let (code, message) = refused.expect("the flood is stopped");
    assert_eq!(code, CloudErrorCode::OverQuota);
    assert!(
        message.contains("100000 bytes needed, 48576 available"),
        "{message}"
    );
    bystander.served_now(2).await;
    let reserved = uploads(&cloud).await;
    assert_eq!(reserved.len(), 10);
    assert!(reserved.iter().all(|u| u.size == 100_000));
    assert_eq!(partials(&cloud).len(), 10, "one partial per upload");

    // A real file sees the reservations too.
    let (code, _) = refusal(
        connector
            .write_bytes(&grant(&conn, WriteFile, "jack/real").await, &[1; 50_000])
            .await,
    );
    assert_eq!(code, CloudErrorCode::OverQuota);
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/real").await, &[1; 40_000])
        .await
        .unwrap();

    // A path has one partial: declaring another size replaces it (and its reservation).
    assert_eq!(
        start_upload(&cloud, &conn, "jack/part0", 10, true).await,
        Ok(0)
    );
    let part0 = uploads(&cloud)
        .await
        .into_iter()
        .find(|u| u.path == "jack/part0")
        .unwrap();
    assert_eq!(part0.size, 10);
    assert_eq!(partials(&cloud).len(), 10);
    // ... which frees room for one more.
    assert_eq!(
        start_upload(&cloud, &conn, "jack/part10", 100_000, false).await,
        Ok(0)
    );

    // Items: the root, 11 uploads and a file are 13 of 16.
    for i in 0..3 {
        assert_eq!(
            start_upload(&cloud, &conn, &format!("jack/tiny{i}"), 1, false).await,
            Ok(0)
        );
    }
    let (code, message) = start_upload(&cloud, &conn, "jack/tiny3", 1, false)
        .await
        .unwrap_err();
    assert_eq!(code, CloudErrorCode::TooManyItems, "{message}");
    let (code, _) = refusal(
        connector
            .create_directory(&grant(&conn, CreateDirectory, "jack/dir").await)
            .await,
    );
    assert_eq!(code, CloudErrorCode::TooManyItems);
    // Replacing a file adds no item.
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/real").await, b"x")
        .await
        .unwrap();
    assert_eq!(partials(&cloud).len(), 14);
    let served = bystander.finish().await;
    assert!(served.calls > 3, "{served:?}");
}

/// Reads one frame from `read` and decodes it as a response.
async fn read_response(read: &mut tokio::net::tcp::OwnedReadHalf) -> RawResponse {
    let mut len = [0u8; 4];
    read.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    read.read_exact(&mut body).await.unwrap();
    postcard::from_bytes(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickle_is_cut_within_its_window_either_way_and_a_cut_upload_resumes() {
    let _memory = crate::common::MEMORY.lock().await;
    let window = Duration::from_secs(2);
    let cloud = Cloud::start_with(Limits::default(), |c| {
        c.min_transfer_rate(16 * 1024, window)
    })
    .await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 30).await;
    let bystander = crate::bystander::start(&cloud, true).await;
    let content = pattern(64 * 1024, 5);

    // An upload that sends one byte a second.
    let mut raw = Raw::connect_from(&cloud, "127.0.0.2").await;
    let request = RawRequest::WriteFile {
        grant: grant(&conn, WriteFile, "jack/slow.bin").await,
        path: "jack/slow.bin".into(),
        size: content.len() as u64,
        resume: true,
    };
    raw.request(&conn, request).await;
    assert!(matches!(
        raw.response().await,
        RawResponse::Ready { offset: 0 }
    ));
    let ready = Instant::now();
    let (mut read, mut write) = raw.stream.into_split();
    let trickle = {
        let content = content.clone();
        tokio::spawn(async move {
            for byte in content.iter().take(30) {
                if write.write_all(std::slice::from_ref(byte)).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    let cut = async {
        let response = tokio::time::timeout(PATIENCE, read_response(&mut read)).await;
        (response.expect("the trickle is cut"), ready.elapsed())
    };
    let ((response, after), ()) = tokio::join!(cut, bystander.served_now(3));
    trickle.abort();
    let (code, message) = failed(response);
    assert_eq!(code, CloudErrorCode::TooSlow, "{message}");
    assert!(message.contains("16384 bytes a second"), "{message}");
    assert!(
        after >= window - Duration::from_millis(100) && after <= window + Duration::from_secs(2),
        "cut after {after:?}"
    );
    assert_eq!(cloud.server.handle().stats().cloud_transfers_too_slow, 1);

    // What came stays for a resume: only the rest travels.
    assert_eq!(partials(&cloud).len(), 1);
    let local = cloud.dir.path().join("slow.bin");
    std::fs::write(&local, &content).unwrap();
    connector
        .write_path(&grant(&conn, WriteFile, "jack/slow.bin").await, &local)
        .await
        .unwrap();
    assert!(std::fs::read(cloud.folder().join("jack/slow.bin")).unwrap() == content);
    let audit = cloud.db.check_all::<CloudAuditEntry>().all().await.unwrap();
    let writes: Vec<_> = audit
        .iter()
        .filter(|e| e.path == "jack/slow.bin")
        .map(|e| (e.outcome.split(':').next().unwrap_or_default(), e.bytes))
        .collect();
    let held = writes[0].1;
    assert!(held >= 1, "{writes:?}");
    assert_eq!(
        writes,
        [("too slow", held), ("ok", content.len() as i64 - held)]
    );

    // A download whose reader stops reading: cut too, once the socket buffers are full.
    let big = pattern(32 << 20, 6);
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/big.bin").await, &big)
        .await
        .unwrap();
    let mut raw = Raw::connect_from(&cloud, "127.0.0.2").await;
    let request = RawRequest::ReadFile {
        grant: grant(&conn, ReadFile, "jack/big.bin").await,
        path: "jack/big.bin".into(),
        offset: 0,
    };
    raw.request(&conn, request).await;
    assert!(matches!(raw.response().await, RawResponse::Sending { .. }));
    let stalled = Instant::now();
    let cut = async {
        // The reader reads nothing; the endpoint counts the cut when it makes it.
        while cloud.server.handle().stats().cloud_transfers_too_slow < 2 {
            assert!(stalled.elapsed() < PATIENCE, "the stalled download is cut");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stalled.elapsed()
    };
    let (download_cut, ()) = tokio::join!(cut, bystander.served_now(3));
    assert!(
        download_cut <= window + Duration::from_secs(2),
        "cut {download_cut:?} after the reader stopped"
    );
    let mut received = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let drained = tokio::time::timeout(PATIENCE, async {
        loop {
            match raw.stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the endpoint closed the stalled download");
    assert!(
        received < big.len(),
        "{received} bytes: the download was cut"
    );
    assert_eq!(cloud.server.handle().stats().cloud_transfers_too_slow, 2);
    let served = bystander.finish().await;
    eprintln!(
        "trickle cut {after:?} after Ready (window {window:?}); stalled download cut \
         {download_cut:?} after the reader stopped, {} of {} bytes sent; bystander slowest round {:?}",
        received,
        big.len(),
        served.slowest
    );
}

/// What a raw connection reads within `wait`: the endpoint's refusal, `"closed"`, or `None` if
/// it is still open and quiet.
async fn turned_away(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut len = [0u8; 4];
    match tokio::time::timeout(wait, stream.read_exact(&mut len)).await {
        Err(_) => None,
        Ok(Err(_)) => Some("closed".into()),
        Ok(Ok(_)) => {
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            stream.read_exact(&mut body).await.ok()?;
            match postcard::from_bytes::<RawResponse>(&body).ok()? {
                RawResponse::Failed { code, message } => {
                    assert_eq!(code, CloudErrorCode::ServerFull, "{message}");
                    Some(message)
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_past_its_cap_is_turned_away_while_another_connects_and_works() {
    let cloud = Cloud::start_with(Limits::default(), |c| {
        c.max_connections_per_peer(Some(4))
            .max_handshakes(64, Some(2))
    })
    .await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 20).await;
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/a.txt").await, b"a")
        .await
        .unwrap();
    let bystander = crate::bystander::start(&cloud, true).await;

    // Four working connections from 127.0.0.2, each past its first request.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut raw = Raw::connect_from(&cloud, "127.0.0.2").await;
        let request = RawRequest::Stat {
            grant: grant(&conn, Stat, "jack/a.txt").await,
            path: "jack/a.txt".into(),
        };
        raw.request(&conn, request).await;
        assert!(matches!(raw.response().await, RawResponse::Stat(_)));
        held.push(raw);
    }
    let mut fifth = connect_from("127.0.0.2", &cloud.cloud_addr())
        .await
        .unwrap();
    let why = turned_away(&mut fifth, PATIENCE)
        .await
        .expect("the fifth is turned away");
    assert!(
        why == "closed" || why.contains("from your address"),
        "{why}"
    );
    for raw in &mut held {
        assert!(
            turned_away(&mut raw.stream, Duration::from_millis(100))
                .await
                .is_none(),
            "admitted ones stay"
        );
    }

    // Two silent connections from 127.0.0.3 hold its handshake slots; a third is turned away.
    let _silent = [
        connect_from("127.0.0.3", &cloud.cloud_addr())
            .await
            .unwrap(),
        connect_from("127.0.0.3", &cloud.cloud_addr())
            .await
            .unwrap(),
    ];
    let mut third = connect_from("127.0.0.3", &cloud.cloud_addr())
        .await
        .unwrap();
    let why = turned_away(&mut third, PATIENCE)
        .await
        .expect("the third is turned away");
    assert!(
        why == "closed" || why.contains("handshakes from your address"),
        "{why}"
    );

    // Meanwhile 127.0.0.1 connects and works, and the bystander is served.
    let content = pattern(300_000, 8);
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/b.bin").await, &content)
        .await
        .unwrap();
    let back = connector
        .read_bytes(&grant(&conn, ReadFile, "jack/b.bin").await)
        .await
        .unwrap();
    assert!(back == content);
    bystander.served_now(3).await;
    let refused = cloud.server.handle().stats().cloud_refused;
    assert!(refused.peer_connections >= 1, "{refused:?}");
    assert!(refused.peer_handshakes >= 1, "{refused:?}");

    // The slots come back with the connections.
    drop(held);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut raw = Raw::connect_from(&cloud, "127.0.0.2").await;
        let request = RawRequest::Stat {
            grant: grant(&conn, Stat, "jack/a.txt").await,
            path: "jack/a.txt".into(),
        };
        raw.request(&conn, request).await;
        let mut len = [0u8; 4];
        if raw.stream.read_exact(&mut len).await.is_ok() {
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            raw.stream.read_exact(&mut body).await.unwrap();
            if let Ok(RawResponse::Stat(stat)) = postcard::from_bytes(&body) {
                assert_eq!(stat.size, 1);
                break;
            }
        }
        assert!(Instant::now() < deadline, "127.0.0.2 is admitted again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let served = bystander.finish().await;
    assert!(served.calls >= 3, "{served:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_balancer_the_cap_counts_the_address_its_proxy_header_names() {
    // The server's balancer (127.0.0.9) speaks the PROXY protocol to the cloud endpoint too.
    let server = fluxon::AsyncServer::new(0).proxy_protocol(["127.0.0.9".parse().unwrap()]);
    let cloud = Cloud::start_server(server, |c| c.max_connections_per_peer(Some(1))).await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 20).await;
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/a.txt").await, b"a")
        .await
        .unwrap();
    let through = |real: &'static str| {
        let addr = cloud.cloud_addr();
        async move {
            let mut stream = connect_from("127.0.0.9", &addr).await.unwrap();
            let header = format!("PROXY TCP4 {real} 127.0.0.1 50000 9000\r\n");
            stream.write_all(header.as_bytes()).await.unwrap();
            Raw { stream }
        }
    };
    // One connection of 203.0.113.1, working: its cap of one.
    let mut first = through("203.0.113.1").await;
    let stat = |grant| RawRequest::Stat {
        grant,
        path: "jack/a.txt".into(),
    };
    first
        .request(&conn, stat(grant(&conn, Stat, "jack/a.txt").await))
        .await;
    assert!(matches!(first.response().await, RawResponse::Stat(_)));
    // A second of the same client is turned away; another client through the same balancer
    // is served.
    let mut second = through("203.0.113.1").await;
    let why = turned_away(&mut second.stream, PATIENCE)
        .await
        .expect("the second connection of 203.0.113.1 is turned away");
    assert!(
        why == "closed" || why.contains("from your address"),
        "{why}"
    );
    let mut other = through("203.0.113.2").await;
    other
        .request(&conn, stat(grant(&conn, Stat, "jack/a.txt").await))
        .await;
    assert!(matches!(other.response().await, RawResponse::Stat(_)));
    // The balancer without a header gets nothing.
    let mut bare = Raw {
        stream: connect_from("127.0.0.9", &cloud.cloud_addr())
            .await
            .unwrap(),
    };
    bare.request(&conn, stat(grant(&conn, Stat, "jack/a.txt").await))
        .await;
    assert_eq!(
        turned_away(&mut bare.stream, PATIENCE).await.as_deref(),
        Some("closed")
    );
}
