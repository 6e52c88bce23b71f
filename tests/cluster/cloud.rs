//! Cloud grants across nodes: a grant made on one node is accepted by another node's cloud
//! endpoint, and a logout on the first revokes it there too. (File bytes stay on each node's
//! disk until object storage: these tests check grants only.)

use fluxon::cloud::{CloudErrorCode, CloudOperation, CloudStorageServer, ConnectorError, Grant};
use fluxon::db::AsyncDatabase;
use fluxon::{view, views, AsyncServer, OrUser, Request, Router, RunningServer, ViewError};

use crate::common::*;

#[view]
async fn make_owner(req: Request, name: String) -> Result<i64, ViewError> {
    let user = req.user_id().or_user("log in first")?;
    Ok(req.cloud()?.create_owner(&name, user, 1 << 20).await?)
}

#[view]
async fn write_grant(req: Request, path: String) -> Result<Grant, ViewError> {
    Ok(req.grant_access(CloudOperation::WriteFile, &path)?)
}

/// A node with a cloud endpoint: its own folder under `dir`, the metadata in the database
/// every node shares (`place`: PostgreSQL).
async fn cloud_node(
    redis: &Redis,
    dir: &std::path::Path,
    place: &str,
    name: &str,
) -> RunningServer {
    let db = AsyncDatabase::open(place).expect("database");
    let router = Router::new()
        .private_key(KEY)
        .expect("key")
        .state(db)
        .mapping(views![login_as, logout, make_owner, write_grant])
        .expect("views");
    AsyncServer::new(0)
        .router(router)
        .cluster(cluster(redis))
        .cloud_storage(CloudStorageServer::new(0, dir.join(name)))
        .start()
        .await
        .expect("a node with a cloud endpoint")
}

fn refused<T: std::fmt::Debug>(result: Result<T, ConnectorError>) -> (CloudErrorCode, String) {
    match result {
        Err(ConnectorError::Refused { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_made_on_one_node_works_on_anothers_endpoint_until_a_logout_anywhere() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let place = crate::postgres::fresh_database();
    let a = cloud_node(&redis, dir.path(), &place, "a").await;
    let b = cloud_node(&redis, dir.path(), &place, "b").await;
    let conn = client(&a).await;
    conn.call(login_as, &1).await.expect("login");
    let _: i64 = conn
        .send_request("make_owner", &"jack")
        .await
        .expect("owner");
    // The owner's root folder was made on A's disk; B's disk gets one by hand (bytes are per
    // node until object storage).
    std::fs::create_dir_all(dir.path().join("b/jack")).expect("B's root folder");
    // Made on A, presented to B's endpoint: B looks the session up and accepts it.
    let on_b = conn.cloud_connector(b.cloud_addr().expect("B's endpoint").to_string());
    let first: Grant = conn
        .send_request("write_grant", &"jack/a.txt")
        .await
        .expect("grant");
    on_b.write_bytes(&first, b"hello")
        .await
        .expect("B accepts A's grant");
    assert!(dir.path().join("b/jack/a.txt").exists());
    // A grant made before the logout on A: B refuses it after.
    let second: Grant = conn
        .send_request("write_grant", &"jack/b.txt")
        .await
        .expect("grant");
    conn.call(logout, &()).await.expect("logout on A");
    let revoked = eventually(|| async {
        matches!(
            on_b.write_bytes(&second, b"x").await,
            Err(ConnectorError::Refused { message, .. }) if message.contains("logged out")
        )
    })
    .await;
    assert!(revoked, "B kept accepting a grant A's logout revoked");
    let (code, message) = refused(on_b.write_bytes(&second, b"x").await);
    assert_eq!(code, CloudErrorCode::BadGrant);
    assert!(message.contains("logged out"), "{message}");
    conn.close().await;
    a.shutdown().await;
    b.shutdown().await;
}
