//! Roles assigned on an item give their permissions there and below, and nowhere else; the
//! endpoint checks them for every operation.

use fluxon::cloud::{CloudErrorCode, CloudOperation::*, Permission};

use crate::common::{grant, refusal, Cloud};

async fn a_role_on_a_directory_is_inherited_below_it_and_nowhere_else(
    backend: crate::postgres::Backend,
) {
    let cloud = Cloud::start_on(backend).await;
    let (jack, jacks) = cloud.owner(1, "jack", 1 << 20).await;
    for dir in ["jack/shared", "jack/shared/deep", "jack/other"] {
        jacks
            .create_directory(&grant(&jack, CreateDirectory, dir).await)
            .await
            .unwrap();
    }
    for file in ["jack/shared/deep/a.txt", "jack/other/b.txt"] {
        jacks
            .write_bytes(&grant(&jack, WriteFile, file).await, file.as_bytes())
            .await
            .unwrap();
    }
    let reader = (Permission::READ_FILE | Permission::READ_TREE_DIRECTORY).bits();
    let _: i64 = jack
        .send_request::<_, i64>("create_role", &("reader", reader))
        .await
        .map_err(|e| e.to_string())
        .unwrap();
    let (jill, jills) = cloud.client(2).await;
    // Jill cannot hand out roles on Jack's items.
    let err = jill
        .send_request::<_, ()>("assign_role", &(2i64, "reader", "jack/shared"))
        .await
        .map_err(|e| e.to_string())
        .unwrap_err();
    assert!(err.contains("denied"), "{err}");
    // Jack can.
    jack.send_request::<_, ()>("assign_role", &(2i64, "reader", "jack/shared"))
        .await
        .map_err(|e| e.to_string())
        .unwrap();

    // Below the item: read, list and stat, but not write or delete.
    let got = jills
        .read_bytes(&grant(&jill, ReadFile, "jack/shared/deep/a.txt").await)
        .await
        .unwrap();
    assert_eq!(got, b"jack/shared/deep/a.txt");
    let tree = jills
        .read_tree(&grant(&jill, ReadTree, "jack/shared").await)
        .await
        .unwrap();
    assert_eq!(tree.files(), ["jack/shared/deep/a.txt"]);
    let (code, message) = refusal(
        jills
            .write_bytes(
                &grant(&jill, WriteFile, "jack/shared/deep/a.txt").await,
                b"x",
            )
            .await,
    );
    assert_eq!(code, CloudErrorCode::Forbidden);
    assert!(message.contains("WRITE_FILE"), "{message}");
    let (code, message) = refusal(
        jills
            .write_bytes(&grant(&jill, WriteFile, "jack/shared/new.txt").await, b"x")
            .await,
    );
    assert_eq!(code, CloudErrorCode::Forbidden);
    assert!(message.contains("CREATE_FILE"), "{message}");
    let (code, _) = refusal(
        jills
            .delete_item(&grant(&jill, DeleteItem, "jack/shared/deep").await)
            .await,
    );
    assert_eq!(code, CloudErrorCode::Forbidden);

    // Beside and above the item: nothing.
    let (code, _) = refusal(
        jills
            .read_bytes(&grant(&jill, ReadFile, "jack/other/b.txt").await)
            .await,
    );
    assert_eq!(code, CloudErrorCode::Forbidden);
    let (code, _) = refusal(jills.read_tree(&grant(&jill, ReadTree, "jack").await).await);
    assert_eq!(code, CloudErrorCode::Forbidden);

    // The checking view agrees with the endpoint.
    let granted = jill
        .send_request::<_, fluxon::cloud::Grant>(
            "grant_checked",
            &(
                ReadFile,
                "jack/shared/deep/a.txt",
                Permission::READ_FILE.bits(),
                "jack/shared/deep/a.txt",
            ),
        )
        .await
        .map_err(|e| e.to_string());
    assert!(granted.is_ok(), "{granted:?}");

    // A writer role lets Jill create and replace files there, counted against Jack's quota.
    let writer = (Permission::CREATE_FILE | Permission::WRITE_FILE).bits();
    let _: i64 = jack
        .send_request::<_, i64>("create_role", &("writer", writer))
        .await
        .unwrap();
    jack.send_request::<_, ()>("assign_role", &(2i64, "writer", "jack/shared"))
        .await
        .map_err(|e| e.to_string())
        .unwrap();
    jills
        .write_bytes(
            &grant(&jill, WriteFile, "jack/shared/new.txt").await,
            b"from jill",
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(cloud.folder().join("jack/shared/new.txt")).unwrap(),
        b"from jill"
    );
}

async fn a_collaborator_deletes_inside_a_shared_directory_but_never_the_directory_itself(
    backend: crate::postgres::Backend,
) {
    let cloud = Cloud::start_on(backend).await;
    let (jack, jacks) = cloud.owner(1, "jack", 1 << 20).await;
    for dir in ["jack/shared", "jack/shared/sub", "jack/other"] {
        jacks
            .create_directory(&grant(&jack, CreateDirectory, dir).await)
            .await
            .unwrap();
    }
    for file in [
        "jack/shared/x.txt",
        "jack/shared/sub/y.txt",
        "jack/other/z.txt",
    ] {
        jacks
            .write_bytes(&grant(&jack, WriteFile, file).await, b"data")
            .await
            .unwrap();
    }
    let deleter = (Permission::DELETE_FILE
        | Permission::DELETE_SUB_DIRECTORY
        | Permission::READ_TREE_DIRECTORY)
        .bits();
    let _: i64 = jack
        .send_request("create_role", &("deleter", deleter))
        .await
        .unwrap();
    for on in ["jack/shared", "jack/other/z.txt"] {
        jack.send_request::<_, ()>("assign_role", &(2i64, "deleter", on))
            .await
            .map_err(|e| e.to_string())
            .unwrap();
    }
    let (jill, jills) = cloud.client(2).await;

    // Inside the shared directory: a file and a directory go.
    jills
        .delete_item(&grant(&jill, DeleteItem, "jack/shared/x.txt").await)
        .await
        .unwrap();
    jills
        .delete_item(&grant(&jill, DeleteItem, "jack/shared/sub").await)
        .await
        .unwrap();
    assert!(!cloud.folder().join("jack/shared/x.txt").exists());
    assert!(!cloud.folder().join("jack/shared/sub").exists());

    // The directory itself is its parent's to lose: refused, as creating it would be.
    let (code, message) = refusal(
        jills
            .delete_item(&grant(&jill, DeleteItem, "jack/shared").await)
            .await,
    );
    assert_eq!(code, CloudErrorCode::Forbidden);
    assert!(
        message.contains("DELETE_SUB_DIRECTORY") && message.contains("`jack`"),
        "{message}"
    );
    assert!(cloud.folder().join("jack/shared").is_dir());
    // A role on a file itself does not let her delete the file: that takes its directory.
    let (code, message) = refusal(
        jills
            .delete_item(&grant(&jill, DeleteItem, "jack/other/z.txt").await)
            .await,
    );
    assert_eq!(code, CloudErrorCode::Forbidden);
    assert!(message.contains("`jack/other`"), "{message}");
    assert!(cloud.folder().join("jack/other/z.txt").exists());
    // An owner's root stays, for anyone.
    for (conn, connector) in [(&jill, &jills), (&jack, &jacks)] {
        let (code, _) = refusal(
            connector
                .delete_item(&grant(conn, DeleteItem, "jack").await)
                .await,
        );
        assert_eq!(code, CloudErrorCode::Forbidden);
    }
    assert!(cloud.folder().join("jack").is_dir());
    // The owner deletes what he likes below it.
    jacks
        .delete_item(&grant(&jack, DeleteItem, "jack/shared").await)
        .await
        .unwrap();
    assert!(!cloud.folder().join("jack/shared").exists());
}

/// The metadata on each backend.
mod on {
    use super::*;

    crate::backends!(sync: ; async: a_role_on_a_directory_is_inherited_below_it_and_nowhere_else, a_collaborator_deletes_inside_a_shared_directory_but_never_the_directory_itself);
}
