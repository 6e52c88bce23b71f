//! Every operation through the connector, with the disk and the metadata checked after each.

use std::sync::{Arc, Mutex};

use fluxon::cloud::{
    CloudAuditEntry, CloudErrorCode, CloudOperation::*, CloudOwner, ItemKind, Progress,
};
use fluxon::db::Executor;

use crate::common::{grant, pattern, refusal, Cloud};

async fn used(cloud: &Cloud, name: &str) -> i64 {
    let owner = cloud
        .db
        .check(CloudOwner::name.eq(name))
        .first()
        .await
        .unwrap()
        .unwrap();
    owner.used
}

async fn every_operation_does_what_it_says_on_disk_and_in_the_metadata(
    backend: crate::postgres::Backend,
) {
    let cloud = Cloud::start_on(backend).await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 20).await;
    let root = cloud.folder().join("jack");
    assert!(root.is_dir(), "create_owner makes the root directory");

    connector
        .create_directory(&grant(&conn, CreateDirectory, "jack/docs").await)
        .await
        .unwrap();
    assert!(root.join("docs").is_dir());

    // Bytes in, bytes out.
    let stat = connector
        .write_bytes(&grant(&conn, WriteFile, "jack/docs/a.txt").await, b"hello")
        .await
        .unwrap();
    assert_eq!(stat.size, 5);
    assert_eq!(stat.kind, ItemKind::File);
    assert_eq!(
        stat.blake3.as_deref(),
        Some(&*blake3::hash(b"hello").to_hex())
    );
    assert_eq!(stat.content_type.as_deref(), Some("text/plain"));
    assert_eq!(std::fs::read(root.join("docs/a.txt")).unwrap(), b"hello");
    let read = connector
        .read_bytes(&grant(&conn, ReadFile, "jack/docs/a.txt").await)
        .await
        .unwrap();
    assert_eq!(read, b"hello");

    // A file from disk, read back to disk and from an offset into a writer.
    let local = cloud.dir.path().join("local.bin");
    let content = pattern(300_000, 1);
    std::fs::write(&local, &content).unwrap();
    let reports = Arc::new(Mutex::new(Vec::<Progress>::new()));
    let seen = Arc::clone(&reports);
    let tracked = connector
        .clone()
        .on_progress(move |p| seen.lock().unwrap().push(p));
    tracked
        .write_path(&grant(&conn, WriteFile, "jack/docs/b.bin").await, &local)
        .await
        .unwrap();
    {
        let reports = reports.lock().unwrap();
        assert!(
            reports.len() >= 2,
            "progress reported per chunk: {reports:?}"
        );
        assert!(reports.windows(2).all(|w| w[0].done < w[1].done));
        assert_eq!(
            reports.last().copied(),
            Some(Progress {
                done: 300_000,
                total: 300_000
            })
        );
    }
    let copy = cloud.dir.path().join("copy.bin");
    let n = connector
        .read_to_path(&grant(&conn, ReadFile, "jack/docs/b.bin").await, &copy)
        .await
        .unwrap();
    assert_eq!(n, 300_000);
    assert_eq!(std::fs::read(&copy).unwrap(), content);
    let mut tail = Vec::new();
    let n = connector
        .read_to_writer(
            &grant(&conn, ReadFile, "jack/docs/b.bin").await,
            &mut tail,
            299_000,
        )
        .await
        .unwrap();
    assert_eq!(n, 1_000);
    assert_eq!(tail, content[299_000..]);

    // Replacing a file counts only the new size.
    connector
        .write_bytes(
            &grant(&conn, WriteFile, "jack/docs/a.txt").await,
            b"hello, world",
        )
        .await
        .unwrap();
    assert_eq!(used(&cloud, "jack").await, 12 + 300_000);

    // Tree and stat.
    let tree = connector
        .read_tree(&grant(&conn, ReadTree, "jack").await)
        .await
        .unwrap();
    assert_eq!(tree.files(), ["jack/docs/a.txt", "jack/docs/b.bin"]);
    let docs = tree.find("jack/docs").unwrap();
    assert_eq!(docs.kind, ItemKind::Directory);
    assert_eq!(docs.children.len(), 2);
    assert_eq!(tree.find("jack/docs/b.bin").unwrap().size, 300_000);
    let stat = connector
        .stat(&grant(&conn, Stat, "jack/docs").await)
        .await
        .unwrap();
    assert_eq!(
        (stat.kind, stat.size, stat.blake3),
        (ItemKind::Directory, 300_012, None)
    );
    let stat = connector
        .stat(&grant(&conn, Stat, "jack/docs/b.bin").await)
        .await
        .unwrap();
    assert_eq!(
        stat.blake3.unwrap(),
        blake3::hash(&content).to_hex().as_str()
    );
    assert_eq!(
        stat.content_type.as_deref(),
        Some("application/octet-stream")
    );

    // Delete a file, then the directory with the rest.
    connector
        .delete_item(&grant(&conn, DeleteItem, "jack/docs/a.txt").await)
        .await
        .unwrap();
    assert!(!root.join("docs/a.txt").exists());
    let (code, _) = refusal(
        connector
            .read_bytes(&grant(&conn, ReadFile, "jack/docs/a.txt").await)
            .await,
    );
    assert_eq!(code, CloudErrorCode::NotFound);
    assert_eq!(used(&cloud, "jack").await, 300_000);
    connector
        .delete_item(&grant(&conn, DeleteItem, "jack/docs").await)
        .await
        .unwrap();
    assert!(!root.join("docs").exists());
    assert_eq!(used(&cloud, "jack").await, 0);
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "no remains");
    // An owner's root cannot be deleted.
    let (code, _) = refusal(
        connector
            .delete_item(&grant(&conn, DeleteItem, "jack").await)
            .await,
    );
    assert_eq!(code, CloudErrorCode::Forbidden);
    assert!(root.is_dir());

    // Every operation is in the audit log, with who did it and how it went.
    let audit = cloud.db.check_all::<CloudAuditEntry>().all().await.unwrap();
    assert_eq!(audit.len(), 14, "{audit:#?}");
    assert!(audit.iter().all(|e| e.user_id == Some(1)));
    let ops: Vec<_> = audit.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops[..3], ["CreateDirectory", "WriteFile", "ReadFile"]);
    let write = audit
        .iter()
        .find(|e| e.path == "jack/docs/b.bin" && e.operation == "WriteFile")
        .unwrap();
    assert_eq!((write.outcome.as_str(), write.bytes), ("ok", 300_000));
    let last = audit.last().unwrap();
    assert_eq!(last.operation, "DeleteItem");
    assert!(last.outcome.contains("denied"), "{}", last.outcome);
}

async fn creating_what_exists_or_inside_what_does_not_is_refused(
    backend: crate::postgres::Backend,
) {
    let cloud = Cloud::start_on(backend).await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 20).await;
    let docs = grant(&conn, CreateDirectory, "jack/docs").await;
    connector.create_directory(&docs).await.unwrap();
    let (code, _) = refusal(connector.create_directory(&docs).await);
    assert_eq!(code, CloudErrorCode::AlreadyExists);
    let (code, _) = refusal(
        connector
            .create_directory(&grant(&conn, CreateDirectory, "jack/no/such").await)
            .await,
    );
    assert_eq!(code, CloudErrorCode::NotFound);
    let (code, _) = refusal(
        connector
            .write_bytes(&grant(&conn, WriteFile, "jack/missing/a.txt").await, b"x")
            .await,
    );
    assert_eq!(code, CloudErrorCode::NotFound);
    // A file where a directory is.
    let (code, _) = refusal(
        connector
            .write_bytes(&grant(&conn, WriteFile, "jack/docs").await, b"x")
            .await,
    );
    assert_eq!(code, CloudErrorCode::AlreadyExists);
    assert!(cloud.folder().join("jack/docs").is_dir());
    // Reading past the end.
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/docs/a").await, b"abc")
        .await
        .unwrap();
    let (code, _) = refusal(
        connector
            .read_to_writer(&grant(&conn, ReadFile, "jack/docs/a").await, Vec::new(), 4)
            .await,
    );
    assert_eq!(code, CloudErrorCode::BadRequest);
    // An empty file is a file.
    let stat = connector
        .write_bytes(&grant(&conn, WriteFile, "jack/docs/empty").await, b"")
        .await
        .unwrap();
    assert_eq!(stat.size, 0);
    let back = connector
        .read_bytes(&grant(&conn, ReadFile, "jack/docs/empty").await)
        .await
        .unwrap();
    assert!(back.is_empty());
}

/// The metadata on each backend.
mod on {
    use super::*;

    crate::backends!(sync: ; async: every_operation_does_what_it_says_on_disk_and_in_the_metadata, creating_what_exists_or_inside_what_does_not_is_refused);
}
