//! Interrupted, resumed, corrupted, oversized and concurrent uploads.

use std::time::Duration;

use fluxon::cloud::{CloudAuditEntry, CloudErrorCode, CloudOperation::*};
use fluxon::db::Executor;
use tokio::io::AsyncWriteExt;

use crate::common::{
    failed, grant, hidden_files, pattern, refusal, try_grant, Cloud, Raw, RawRequest, RawResponse,
    PATIENCE,
};

/// A raw upload of `path` started: the header sent and `Ready` from the start received.
async fn raw_upload(
    cloud: &Cloud,
    conn: &fluxon::ConnectionHandler,
    path: &str,
    size: u64,
    resume: bool,
) -> Raw {
    let mut raw = Raw::connect(cloud).await;
    let request = RawRequest::WriteFile {
        grant: grant(conn, WriteFile, path).await,
        path: path.into(),
        size,
        resume,
    };
    raw.request(conn, request).await;
    assert!(matches!(
        raw.response().await,
        RawResponse::Ready { offset: 0 }
    ));
    raw
}

/// Waits until the endpoint has let go of the cut connection's upload (it audits when done).
async fn wait_for_audits(cloud: &Cloud, n: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let count = cloud
            .db
            .check_all::<CloudAuditEntry>()
            .count()
            .await
            .unwrap();
        if count as usize >= n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{count} audits");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_upload_cut_off_mid_stream_leaves_no_file_and_resumes_where_it_stopped() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 10 << 20).await;
    let content = pattern(3 << 20, 7);
    let local = cloud.dir.path().join("big.bin");
    std::fs::write(&local, &content).unwrap();
    let target = cloud.folder().join("jack/big.bin");

    // Send the first 1 MiB (plus a bit), then vanish.
    let cut = (1 << 20) + 4321;
    let mut raw = raw_upload(&cloud, &conn, "jack/big.bin", content.len() as u64, true).await;
    raw.stream.write_all(&content[..cut]).await.unwrap();
    raw.stream.flush().await.unwrap();
    drop(raw);
    wait_for_audits(&cloud, 1).await;
    assert!(!target.exists(), "nothing visible after a cut upload");
    let hidden = hidden_files(&cloud.folder());
    assert_eq!(
        hidden.len(),
        1,
        "the partial file is kept for a resume: {hidden:?}"
    );
    let tree = connector
        .read_tree(&grant(&conn, ReadTree, "jack").await)
        .await
        .unwrap();
    assert!(tree.children.is_empty(), "trees never show partial files");

    // The connector resumes: the endpoint confirms the offset, only the rest travels.
    let stat = connector
        .write_path(&grant(&conn, WriteFile, "jack/big.bin").await, &local)
        .await
        .unwrap();
    assert_eq!(stat.size, content.len() as u64);
    assert_eq!(std::fs::read(&target).unwrap(), content);
    assert!(hidden_files(&cloud.folder()).is_empty());
    let audit = cloud.db.check_all::<CloudAuditEntry>().all().await.unwrap();
    let writes: Vec<_> = audit
        .iter()
        .filter(|e| e.operation == "WriteFile")
        .collect();
    assert_eq!(writes.len(), 2);
    assert!(
        writes[0].outcome.contains("stopped after"),
        "{}",
        writes[0].outcome
    );
    assert_eq!(writes[0].bytes, cut as i64);
    assert_eq!(writes[1].outcome, "ok");
    assert_eq!(
        writes[1].bytes,
        (content.len() - cut) as i64,
        "only the rest was sent"
    );
}

#[tokio::test]
async fn a_hash_mismatch_is_rejected_and_leaves_nothing() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 20).await;
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/a.txt").await, b"original")
        .await
        .unwrap();
    let mut raw = raw_upload(&cloud, &conn, "jack/a.txt", 8, false).await;
    raw.stream.write_all(b"tampered").await.unwrap();
    raw.commit(blake3::hash(b"declared")).await;
    let (code, message) = failed(raw.response().await);
    assert_eq!(code, CloudErrorCode::HashMismatch);
    assert!(
        message.contains(&*blake3::hash(b"tampered").to_hex()),
        "{message}"
    );
    assert_eq!(
        std::fs::read(cloud.folder().join("jack/a.txt")).unwrap(),
        b"original",
        "the old file stays"
    );
    assert!(
        hidden_files(&cloud.folder()).is_empty(),
        "no partial file left"
    );
}

#[tokio::test]
async fn over_quota_is_rejected_before_any_byte_is_taken() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 1000).await;
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/a").await, &[1; 600])
        .await
        .unwrap();
    // 600 used: 400 left. The header alone is answered, with no byte sent.
    let mut raw = Raw::connect(&cloud).await;
    raw.request(
        &conn,
        RawRequest::WriteFile {
            grant: grant(&conn, WriteFile, "jack/b").await,
            path: "jack/b".into(),
            size: 401,
            resume: false,
        },
    )
    .await;
    let (code, message) = failed(raw.response().await);
    assert_eq!(code, CloudErrorCode::OverQuota);
    assert!(
        message.contains("401 bytes needed, 400 available"),
        "{message}"
    );
    assert!(hidden_files(&cloud.folder()).is_empty());
    assert!(!cloud.folder().join("jack/b").exists());
    // Exactly what is left fits; replacing a file counts its old size as free.
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/b").await, &[2; 400])
        .await
        .unwrap();
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/a").await, &[3; 600])
        .await
        .unwrap();
    let (code, _) = refusal(
        connector
            .write_bytes(&grant(&conn, WriteFile, "jack/c").await, &[4; 1])
            .await,
    );
    assert_eq!(code, CloudErrorCode::OverQuota);
    // A grant's own size limit.
    let small = try_grant(&conn, WriteFile, "jack/a", Some(10))
        .await
        .unwrap();
    let (code, message) = refusal(connector.write_bytes(&small, &[5; 11]).await);
    assert_eq!(code, CloudErrorCode::OverQuota);
    assert!(message.contains("allows 10"), "{message}");
    assert_eq!(
        std::fs::read(cloud.folder().join("jack/a")).unwrap(),
        [3; 600]
    );
}

#[tokio::test]
async fn concurrent_uploads_to_different_files_all_land_whole() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 64 << 20).await;
    let mut uploads = Vec::new();
    for i in 0..8u64 {
        let g = grant(&conn, WriteFile, &format!("jack/f{i}.bin")).await;
        let connector = connector.clone();
        uploads.push(tokio::spawn(async move {
            let content = pattern(700_000 + i as usize * 1000, i);
            connector.write_bytes(&g, &content).await.map(|_| content)
        }));
    }
    for (i, upload) in uploads.into_iter().enumerate() {
        let content = upload.await.unwrap().unwrap();
        let on_disk = std::fs::read(cloud.folder().join(format!("jack/f{i}.bin"))).unwrap();
        assert!(on_disk == content, "file {i} landed whole");
    }
    let owner = cloud
        .db
        .check(fluxon::cloud::CloudOwner::name.eq("jack"))
        .first()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.used, (0..8).map(|i| 700_000 + i * 1000).sum::<i64>());
}

#[tokio::test]
async fn a_second_upload_of_a_path_in_progress_is_turned_away_and_calls_go_on() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 20).await;
    let mut raw = raw_upload(&cloud, &conn, "jack/a", 1000, false).await;
    raw.stream.write_all(&[1; 10]).await.unwrap();
    // While that upload stalls: the same path is busy, other paths and calls are served.
    let (code, _) = refusal(
        connector
            .write_bytes(&grant(&conn, WriteFile, "jack/a").await, b"x")
            .await,
    );
    assert_eq!(code, CloudErrorCode::Busy);
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/b").await, b"y")
        .await
        .unwrap();
    let echoed: String = conn.send_request("echo", "served").await.unwrap();
    assert_eq!(echoed, "served");
    drop(raw);
}

#[tokio::test]
async fn an_upload_that_goes_quiet_is_cut_at_the_idle_timeout() {
    let cloud = Cloud::start_with(fluxon::Limits::default(), |c| {
        c.idle_timeout(Duration::from_millis(300))
    })
    .await;
    let (conn, _) = cloud.owner(1, "jack", 1 << 20).await;
    let mut raw = raw_upload(&cloud, &conn, "jack/a", 1000, false).await;
    raw.stream.write_all(&[1; 10]).await.unwrap();
    let (code, message) = failed(raw.response().await);
    assert_eq!(code, CloudErrorCode::BadRequest);
    assert!(message.contains("stopped after 10 bytes"), "{message}");
    assert!(!cloud.folder().join("jack/a").exists());
}

#[tokio::test]
async fn a_cut_off_download_to_a_path_resumes_and_a_corrupt_one_is_refused() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 10 << 20).await;
    let content = pattern(2 << 20, 11);
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/big.bin").await, &content)
        .await
        .unwrap();

    // What an interrupted download leaves: the first part, in the hidden file beside the target.
    let target = cloud.dir.path().join("big.bin");
    let partial = cloud.dir.path().join(".big.bin.fluxon-download");
    std::fs::write(&partial, &content[..700_000]).unwrap();
    let n = connector
        .read_to_path(&grant(&conn, ReadFile, "jack/big.bin").await, &target)
        .await
        .unwrap();
    assert_eq!(n, content.len() as u64);
    assert!(std::fs::read(&target).unwrap() == content);
    assert!(!partial.exists());
    let audit = cloud.db.check_all::<CloudAuditEntry>().all().await.unwrap();
    let read = audit.iter().rfind(|e| e.operation == "ReadFile").unwrap();
    assert_eq!(
        read.bytes,
        (content.len() - 700_000) as i64,
        "only the rest travelled"
    );

    // A partial file whose bytes are not the file's: the whole-file hash catches it.
    let mut wrong = content[..700_000].to_vec();
    wrong[1234] ^= 0xff;
    std::fs::remove_file(&target).unwrap();
    std::fs::write(&partial, &wrong).unwrap();
    let err = connector
        .read_to_path(&grant(&conn, ReadFile, "jack/big.bin").await, &target)
        .await
        .unwrap_err();
    assert!(
        matches!(err, fluxon::cloud::ConnectorError::HashMismatch { .. }),
        "{err:?}"
    );
    assert!(
        !target.exists() && !partial.exists(),
        "nothing corrupt is left"
    );
    // ... and the next try starts clean.
    connector
        .read_to_path(&grant(&conn, ReadFile, "jack/big.bin").await, &target)
        .await
        .unwrap();
    assert!(std::fs::read(&target).unwrap() == content);
}

#[tokio::test]
async fn shutdown_cuts_a_stalled_upload_after_the_grace_period_and_keeps_it_resumable() {
    let limits = fluxon::Limits::default().shutdown_grace(Duration::from_millis(200));
    let cloud = Cloud::start_with(limits, |c| c).await;
    let (conn, _) = cloud.owner(1, "jack", 1 << 20).await;
    let mut raw = raw_upload(&cloud, &conn, "jack/a", 1000, true).await;
    raw.stream.write_all(&[1; 300]).await.unwrap();
    raw.stream.flush().await.unwrap();
    // An idle cloud connection, too.
    let _idle = Raw::connect(&cloud).await;
    let Cloud { server, dir, .. } = cloud;
    tokio::time::timeout(PATIENCE, server.shutdown())
        .await
        .expect("shutdown finishes though a transfer was in progress");
    assert!(!dir.path().join("cloud/jack/a").exists());
    assert_eq!(
        hidden_files(&dir.path().join("cloud")).len(),
        1,
        "kept for a resume"
    );
}

#[tokio::test]
async fn a_resume_over_another_versions_partial_starts_over_and_lands_the_new_file() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 10 << 20).await;
    let old = pattern(1 << 20, 21);
    let mut raw = raw_upload(&cloud, &conn, "jack/doc.bin", old.len() as u64, true).await;
    raw.stream.write_all(&old[..400_000]).await.unwrap();
    raw.stream.flush().await.unwrap();
    drop(raw);
    wait_for_audits(&cloud, 1).await;

    // The local file changed since (same size): the held part no longer matches it.
    let mut new = old.clone();
    new[100] ^= 0x55;
    let local = cloud.dir.path().join("doc.bin");
    std::fs::write(&local, &new).unwrap();
    connector
        .write_path(&grant(&conn, WriteFile, "jack/doc.bin").await, &local)
        .await
        .unwrap();
    assert!(std::fs::read(cloud.folder().join("jack/doc.bin")).unwrap() == new);
    assert!(hidden_files(&cloud.folder()).is_empty());
    let audit = cloud.db.check_all::<CloudAuditEntry>().all().await.unwrap();
    let outcomes: Vec<_> = audit
        .iter()
        .filter(|e| e.operation == "WriteFile")
        .map(|e| (e.outcome.split(':').next().unwrap_or_default(), e.bytes))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("bad request", 400_000),
            ("hash mismatch", (new.len() - 400_000) as i64),
            ("ok", new.len() as i64)
        ]
    );
}
