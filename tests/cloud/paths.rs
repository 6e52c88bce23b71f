//! Paths that would lead out of the cloud folder or into someone else's root are refused, each
//! kind on its own.

use fluxon::cloud::{CloudErrorCode, CloudOperation::*, Permission};

use crate::common::{failed, grant, refusal, try_grant, Cloud, Raw, RawRequest};

#[tokio::test]
async fn a_view_cannot_grant_an_escaping_path() {
    let cloud = Cloud::start().await;
    let (conn, _) = cloud.owner(1, "jack", 1000).await;
    for (path, why) in [
        ("jack/../jill/a.txt", "`..`"),
        ("/etc/passwd", "absolute"),
        ("jack/a\0b", "NUL"),
        ("jack\\..\\jill", "backslash"),
        ("jack/.fluxon-part-0", "invalid path component"),
    ] {
        let err = try_grant(&conn, WriteFile, path, None).await.unwrap_err();
        assert!(err.contains(why), "{path:?}: {err}");
    }
}

#[tokio::test]
async fn the_endpoint_refuses_escaping_paths_even_with_a_genuine_grant() {
    let cloud = Cloud::start().await;
    let (conn, _) = cloud.owner(1, "jack", 1000).await;
    let genuine = grant(&conn, ReadFile, "jack/a.txt").await;
    for (path, why) in [
        ("jack/../jack/a.txt", "`..`"),
        ("/jack/a.txt", "absolute"),
        ("jack/a.txt\0", "NUL"),
        ("jack\\a.txt", "backslash"),
    ] {
        let mut raw = Raw::connect(&cloud).await;
        raw.request(
            &conn,
            RawRequest::ReadFile {
                grant: genuine.clone(),
                path: path.into(),
                offset: 0,
            },
        )
        .await;
        let (code, message) = failed(raw.response().await);
        assert_eq!(code, CloudErrorCode::BadPath, "{path:?}");
        assert!(message.contains(why), "{path:?}: {message}");
    }
}

#[tokio::test]
async fn a_symlink_out_of_the_cloud_folder_is_not_followed() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 1 << 20).await;
    let outside = cloud.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
    // Made behind the server's back.
    std::os::unix::fs::symlink(&outside, cloud.folder().join("jack/escape")).unwrap();

    let (code, message) = refusal(
        connector
            .read_bytes(&grant(&conn, ReadFile, "jack/escape/secret.txt").await)
            .await,
    );
    assert_eq!(code, CloudErrorCode::BadPath);
    assert!(message.contains("leads out"), "{message}");
    let (code, _) = refusal(
        connector
            .write_bytes(&grant(&conn, WriteFile, "jack/escape/new.txt").await, b"x")
            .await,
    );
    assert_eq!(code, CloudErrorCode::BadPath);
    assert!(!outside.join("new.txt").exists());
    let (code, _) = refusal(
        connector
            .delete_item(&grant(&conn, DeleteItem, "jack/escape/secret.txt").await)
            .await,
    );
    assert_eq!(code, CloudErrorCode::BadPath);
    assert!(outside.join("secret.txt").exists());
    // A tree does not wander through it either.
    let tree = connector
        .read_tree(&grant(&conn, ReadTree, "jack").await)
        .await
        .unwrap();
    assert!(tree.children.is_empty(), "{tree:?}");
}

#[tokio::test]
async fn a_path_into_another_owners_root_is_refused() {
    let cloud = Cloud::start().await;
    let (jack, jacks) = cloud.owner(1, "jack", 1000).await;
    jacks
        .write_bytes(&grant(&jack, WriteFile, "jack/private.txt").await, b"mine")
        .await
        .unwrap();
    let (jill, jills) = cloud.owner(2, "jill", 1000).await;

    // A careful view refuses to grant.
    let err = jill
        .send_request::<_, fluxon::cloud::Grant>(
            "grant_checked",
            &(
                ReadFile,
                "jack/private.txt",
                Permission::READ_FILE.bits(),
                "jack/private.txt",
            ),
        )
        .await
        .map_err(|e| e.to_string())
        .unwrap_err();
    assert!(err.contains("denied"), "{err}");

    // A careless view grants, and the endpoint refuses anyway, for every operation.
    let (code, _) = refusal(
        jills
            .read_bytes(&grant(&jill, ReadFile, "jack/private.txt").await)
            .await,
    );
    assert_eq!(code, CloudErrorCode::Forbidden);
    let (code, _) = refusal(
        jills
            .write_bytes(
                &grant(&jill, WriteFile, "jack/private.txt").await,
                b"theirs",
            )
            .await,
    );
    assert_eq!(code, CloudErrorCode::Forbidden);
    let (code, _) = refusal(
        jills
            .write_bytes(&grant(&jill, WriteFile, "jack/new.txt").await, b"theirs")
            .await,
    );
    assert_eq!(code, CloudErrorCode::Forbidden);
    for (op, path) in [
        (DeleteItem, "jack/private.txt"),
        (CreateDirectory, "jack/sub"),
        (ReadTree, "jack"),
        (Stat, "jack/private.txt"),
    ] {
        let g = grant(&jill, op, path).await;
        let result = match op {
            DeleteItem => jills.delete_item(&g).await,
            CreateDirectory => jills.create_directory(&g).await,
            ReadTree => jills.read_tree(&g).await.map(drop),
            _ => jills.stat(&g).await.map(drop),
        };
        assert_eq!(refusal(result).0, CloudErrorCode::Forbidden, "{op:?}");
    }
    assert_eq!(
        std::fs::read(cloud.folder().join("jack/private.txt")).unwrap(),
        b"mine"
    );
    assert!(!cloud.folder().join("jack/new.txt").exists());
    assert!(!cloud.folder().join("jack/sub").exists());
    // Jill's own root is hers.
    jills
        .write_bytes(&grant(&jill, WriteFile, "jill/a.txt").await, b"hers")
        .await
        .unwrap();
}
