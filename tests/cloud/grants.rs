//! Grants refused for every reason a grant can be wrong: expired, forged, presented by another
//! session, for another path or another operation, or revoked by a logout.

use std::time::Duration;

use fluxon::cloud::{CloudErrorCode, CloudOperation::*, Grant};
use fluxon::Limits;

use crate::common::{failed, grant, refusal, Cloud, Raw, RawRequest};

#[tokio::test]
async fn an_expired_grant_is_refused() {
    let limits = Limits::default().grant_ttl(Duration::from_secs(1));
    let cloud = Cloud::start_with(limits, |c| c).await;
    let (conn, connector) = cloud.owner(1, "jack", 1000).await;
    let write = grant(&conn, WriteFile, "jack/a.txt").await;
    connector.write_bytes(&write, b"in time").await.unwrap();
    let late = grant(&conn, WriteFile, "jack/b.txt").await;
    // Expiry has a one-second resolution: two seconds is past it whatever the phase.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (code, message) = refusal(connector.write_bytes(&late, b"too late").await);
    assert_eq!(code, CloudErrorCode::BadGrant);
    assert!(message.contains("expired"), "{message}");
    assert!(!cloud.folder().join("jack/b.txt").exists());
}

#[tokio::test]
async fn a_forged_or_tampered_grant_is_refused() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 1000).await;
    let genuine = grant(&conn, WriteFile, "jack/a.txt").await;
    let mut bytes = postcard::to_allocvec(&genuine).unwrap();
    // The MAC is the last 32 bytes.
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let forged: Grant = postcard::from_bytes(&bytes).unwrap();
    let (code, message) = refusal(connector.write_bytes(&forged, b"x").await);
    assert_eq!(code, CloudErrorCode::BadGrant);
    assert!(message.contains("signature"), "{message}");

    // Raise the size limit by rewriting the body: the MAC no longer matches.
    let limited = crate::common::try_grant(&conn, WriteFile, "jack/a.txt", Some(10))
        .await
        .unwrap();
    let mut bytes = postcard::to_allocvec(&limited).unwrap();
    // The body ends with Some(10) = 01 0A, just before the MAC.
    let at = bytes.len() - 33;
    assert_eq!(bytes[at], 10);
    bytes[at] = 100;
    let widened: Grant = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(widened.max_size(), Some(100));
    let (code, _) = refusal(connector.write_bytes(&widened, &[0; 50]).await);
    assert_eq!(code, CloudErrorCode::BadGrant);
    assert!(!cloud.folder().join("jack/a.txt").exists());
}

#[tokio::test]
async fn a_grant_presented_by_another_session_is_refused() {
    let cloud = Cloud::start().await;
    let (conn, _) = cloud.owner(1, "jack", 1000).await;
    let write = grant(&conn, WriteFile, "jack/a.txt").await;
    // The same user, logged in on another client: another session.
    let (_other_conn, other) = cloud.client(1).await;
    let (code, message) = refusal(other.write_bytes(&write, b"x").await);
    assert_eq!(code, CloudErrorCode::BadGrant);
    assert!(message.contains("another session"), "{message}");
    assert!(!cloud.folder().join("jack/a.txt").exists());
}

#[tokio::test]
async fn a_grant_for_another_path_or_operation_is_refused() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 1000).await;
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/a.txt").await, b"a")
        .await
        .unwrap();

    // The connector always names the grant's own path; a raw client names another.
    let read_a = grant(&conn, ReadFile, "jack/a.txt").await;
    let mut raw = Raw::connect(&cloud).await;
    raw.request(
        &conn,
        RawRequest::ReadFile {
            grant: read_a.clone(),
            path: "jack/b.txt".into(),
            offset: 0,
        },
    )
    .await;
    let (code, message) = failed(raw.response().await);
    assert_eq!(code, CloudErrorCode::BadGrant);
    assert!(message.contains("another path"), "{message}");

    // A read grant used to write, delete or list.
    let (code, message) = refusal(connector.write_bytes(&read_a, b"overwrite").await);
    assert_eq!(code, CloudErrorCode::BadGrant);
    assert!(message.contains("ReadFile"), "{message}");
    let (code, _) = refusal(connector.delete_item(&read_a).await);
    assert_eq!(code, CloudErrorCode::BadGrant);
    assert_eq!(
        std::fs::read(cloud.folder().join("jack/a.txt")).unwrap(),
        b"a"
    );
    // ... while it still reads.
    assert_eq!(connector.read_bytes(&read_a).await.unwrap(), b"a");
}

#[tokio::test]
async fn a_logout_revokes_the_sessions_grants() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 1000).await;
    let write = grant(&conn, WriteFile, "jack/a.txt").await;
    let () = conn.send_request("logout", &()).await.unwrap();
    let (code, message) = refusal(connector.write_bytes(&write, b"x").await);
    assert_eq!(code, CloudErrorCode::BadGrant);
    assert!(message.contains("logged out"), "{message}");
    // Logging in again (even as the same user) does not revive it.
    let () = conn.send_request("login_as", &1i64).await.unwrap();
    let (code, _) = refusal(connector.write_bytes(&write, b"x").await);
    assert_eq!(code, CloudErrorCode::BadGrant);
    assert!(!cloud.folder().join("jack/a.txt").exists());
}

#[tokio::test]
async fn garbage_and_foreign_requests_get_a_clear_refusal_and_others_are_still_served() {
    let cloud = Cloud::start().await;
    let (conn, connector) = cloud.owner(1, "jack", 1000).await;
    // Not postcard of a request at all.
    let mut raw = Raw::connect(&cloud).await;
    raw.frame(b"\xff\xff\xff garbage").await;
    let (code, _) = failed(raw.response().await);
    assert_eq!(code, CloudErrorCode::BadRequest);
    // A frame over the request limit.
    let mut raw = Raw::connect(&cloud).await;
    use tokio::io::AsyncWriteExt;
    raw.stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let (code, message) = failed(raw.response().await);
    assert_eq!(code, CloudErrorCode::BadRequest);
    assert!(message.contains("over the limit"), "{message}");
    // The endpoint and the main server still serve.
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/a.txt").await, b"fine")
        .await
        .unwrap();
    let echoed: String = conn.send_request("echo", "still here").await.unwrap();
    assert_eq!(echoed, "still here");
}

#[tokio::test]
async fn a_request_of_another_protocol_version_is_told_so() {
    let cloud = Cloud::start().await;
    let (conn, _) = cloud.owner(1, "jack", 1000).await;
    // Version 1's header, then whatever it carried.
    let mut body = postcard::to_allocvec(&(*b"FLXC", 1u16)).unwrap();
    body.extend_from_slice(&postcard::to_allocvec(&conn.session_token().unwrap()).unwrap());
    body.extend_from_slice(b"a version-1 request");
    let mut raw = Raw::connect(&cloud).await;
    raw.frame(&body).await;
    let (code, message) = failed(raw.response().await);
    assert_eq!(code, CloudErrorCode::BadRequest);
    assert!(
        message.contains("version 2") && message.contains("version 1"),
        "{message}"
    );
    assert_eq!(cloud.server.handle().stats().cloud_grants_refused, 0);
}
