//! The blocking connector, from a thread with no runtime, against a server on a runtime of its
//! own.

use fluxon::cloud::{CloudErrorCode, CloudOperation::*, ConnectorError, Grant};

use crate::common::Cloud;

#[test]
fn the_blocking_connector_does_every_operation() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cloud = runtime.block_on(Cloud::start());
    let conn = fluxon::blocking::ConnectionHandler::connect(cloud.server.local_addr().to_string())
        .unwrap();
    let () = conn.send_request("login_as", &1i64).unwrap();
    let _: i64 = conn
        .send_request("create_owner", &("jack", 4u64 << 20))
        .unwrap();
    let grant = |op, path: &str| -> Grant {
        conn.send_request::<_, Grant>("grant_any", &(op, path, None::<u64>))
            .map_err(|e| e.to_string())
            .unwrap()
    };
    let connector = conn.cloud_connector(cloud.cloud_addr());

    connector
        .create_directory(&grant(CreateDirectory, "jack/d"))
        .unwrap();
    connector
        .write_bytes(&grant(WriteFile, "jack/d/a.txt"), b"blocking")
        .unwrap();
    let content = crate::common::pattern(600_000, 9);
    connector
        .write_reader(
            &grant(WriteFile, "jack/d/b.bin"),
            std::io::Cursor::new(content.clone()),
            600_000,
        )
        .unwrap();
    let local = cloud.dir.path().join("b.bin");
    std::fs::write(&local, &content).unwrap();
    connector
        .write_path(&grant(WriteFile, "jack/d/c.bin"), &local)
        .unwrap();

    assert_eq!(
        connector
            .read_bytes(&grant(ReadFile, "jack/d/a.txt"))
            .unwrap(),
        b"blocking"
    );
    let copy = cloud.dir.path().join("copy.bin");
    connector
        .read_to_path(&grant(ReadFile, "jack/d/b.bin"), &copy)
        .unwrap();
    assert!(std::fs::read(&copy).unwrap() == content);
    let tail_path = cloud.dir.path().join("tail.bin");
    let tail = std::fs::File::create(&tail_path).unwrap();
    let n = connector
        .read_to_writer(&grant(ReadFile, "jack/d/c.bin"), tail, 500_000)
        .unwrap();
    assert_eq!(n, 100_000);
    assert!(std::fs::read(&tail_path).unwrap() == content[500_000..]);
    let tree = connector.read_tree(&grant(ReadTree, "jack")).unwrap();
    assert_eq!(
        tree.files(),
        ["jack/d/a.txt", "jack/d/b.bin", "jack/d/c.bin"]
    );
    assert_eq!(
        connector.stat(&grant(Stat, "jack/d/a.txt")).unwrap().size,
        8
    );
    connector.delete_item(&grant(DeleteItem, "jack/d")).unwrap();
    match connector.stat(&grant(Stat, "jack/d")) {
        Err(ConnectorError::Refused { code, .. }) => assert_eq!(code, CloudErrorCode::NotFound),
        other => panic!("expected NotFound, got {other:?}"),
    }
    drop(conn);
    runtime.block_on(cloud.server.shutdown());
}
