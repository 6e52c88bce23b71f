//! The cloud endpoint over TLS: an upload and a download for a connector that trusts the
//! certificate; refused for one that does not, or that speaks clear text.

use fluxon::cloud::{CloudOperation::*, ConnectorError};
use fluxon::tls::{ClientTls, TlsIdentity};
use fluxon::{AsyncServer, ClientConfig};

use crate::common::{grant, pattern, Cloud};

#[tokio::test]
async fn uploads_and_downloads_go_over_tls_and_untrusting_connectors_are_refused() {
    let (identity, certificate) = TlsIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    // The cloud endpoint presents the main server's certificate.
    let cloud = Cloud::start_server(AsyncServer::new(0).tls(identity), |c| c.secure(true)).await;
    let config = ClientConfig::default().tls(Some(ClientTls::pinned(&certificate)));
    let (conn, connector) = cloud.client_with(1, config).await;
    let _: i64 = conn
        .send_request("create_owner", &("jack", 16u64 << 20))
        .await
        .unwrap();

    let content = pattern(5 << 20, 4);
    let stat = connector
        .write_bytes(&grant(&conn, WriteFile, "jack/secret.bin").await, &content)
        .await
        .unwrap();
    assert_eq!(stat.size, 5 << 20);
    let local = cloud.dir.path().join("back.bin");
    connector
        .read_to_path(&grant(&conn, ReadFile, "jack/secret.bin").await, &local)
        .await
        .unwrap();
    assert!(std::fs::read(&local).unwrap() == content);

    // Another certificate pinned: the TLS handshake fails, nothing is read or written.
    let (_, other) = TlsIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let untrusting = connector.clone().tls(Some(ClientTls::pinned(&other)));
    let err = untrusting
        .read_bytes(&grant(&conn, ReadFile, "jack/secret.bin").await)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Tls { .. }), "{err}");
    let err = untrusting
        .write_bytes(&grant(&conn, WriteFile, "jack/other.bin").await, b"x")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Tls { .. }), "{err}");
    // Clear text to a TLS endpoint gets no answer it can use.
    let plain = connector.clone().tls(None);
    assert!(plain
        .read_bytes(&grant(&conn, ReadFile, "jack/secret.bin").await)
        .await
        .is_err());
    assert!(!cloud.folder().join("jack/other.bin").exists());
}

#[tokio::test]
async fn beside_a_tls_server_the_endpoint_speaks_tls_and_no_token_leaves_in_clear_text() {
    use fluxon::cloud::CloudAuditEntry;
    use fluxon::db::Executor;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (identity, certificate) = TlsIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    // Not asked to be secure: it is, because the main server is.
    let cloud = Cloud::start_server(AsyncServer::new(0).tls(identity), |c| c).await;
    let config = ClientConfig::default().tls(Some(ClientTls::pinned(&certificate)));
    let (conn, connector) = cloud.client_with(1, config).await;
    let _: i64 = conn
        .send_request("create_owner", &("jack", 1u64 << 20))
        .await
        .unwrap();
    connector
        .write_bytes(&grant(&conn, WriteFile, "jack/a.txt").await, b"over tls")
        .await
        .unwrap();
    let refused = cloud.server.handle().stats().cloud_grants_refused;
    let audited = cloud
        .db
        .check_all::<CloudAuditEntry>()
        .count()
        .await
        .unwrap();

    // Told to speak clear text: refused before connecting at all.
    let plain = connector.clone().tls(None);
    let err = plain
        .read_bytes(&grant(&conn, ReadFile, "jack/a.txt").await)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::ClearText { .. }), "{err}");
    assert!(err.to_string().contains("clear text"), "{err}");
    let err = plain
        .write_bytes(&grant(&conn, WriteFile, "jack/b.txt").await, b"x")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::ClearText { .. }), "{err}");
    // Pointed at a listener that would take anything: nothing arrives.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_addr = trap.local_addr().unwrap().to_string();
    let err = conn
        .cloud_connector(trap_addr.clone())
        .tls(None)
        .stat(&grant(&conn, Stat, "jack/a.txt").await)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::ClearText { .. }), "{err}");
    let accepted = tokio::time::timeout(std::time::Duration::from_millis(200), trap.accept()).await;
    assert!(
        accepted.is_err(),
        "the clear-text connector never connected"
    );

    // An endpoint that answers in clear text: the handshake fails, the request is never sent.
    let seen = tokio::spawn(async move {
        let (mut stream, _) = trap.accept().await.unwrap();
        let mut got = vec![0u8; 4096];
        let n = stream.read(&mut got).await.unwrap_or(0);
        let _ = stream.write_all(b"\0\0\0\x05FLXC!").await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            stream.read_to_end(&mut rest),
        )
        .await;
        got.truncate(n);
        got.extend(rest);
        got
    });
    let err = conn
        .cloud_connector(trap_addr)
        .stat(&grant(&conn, Stat, "jack/a.txt").await)
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectorError::Tls { .. }), "{err}");
    let got = seen.await.unwrap();
    assert_eq!(got.first(), Some(&0x16), "only a TLS ClientHello arrived");
    let token = conn.session_token().unwrap();
    assert!(
        !got.windows(4).any(|w| w == b"FLXC") && !got.windows(16).any(|w| w == token.id),
        "no request, no token"
    );

    // The endpoint saw none of it.
    assert_eq!(cloud.server.handle().stats().cloud_grants_refused, refused);
    assert_eq!(
        cloud
            .db
            .check_all::<CloudAuditEntry>()
            .count()
            .await
            .unwrap(),
        audited
    );
    assert!(!cloud.folder().join("jack/b.txt").exists());
    assert_eq!(
        connector
            .read_bytes(&grant(&conn, ReadFile, "jack/a.txt").await)
            .await
            .unwrap(),
        b"over tls"
    );
}
