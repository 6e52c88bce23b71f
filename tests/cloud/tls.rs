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
    let config = ClientConfig {
        tls: Some(ClientTls::pinned(&certificate)),
        ..ClientConfig::default()
    };
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
    let untrusting = connector.clone().with_tls(Some(ClientTls::pinned(&other)));
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
    let plain = connector.clone().with_tls(None);
    assert!(plain
        .read_bytes(&grant(&conn, ReadFile, "jack/secret.bin").await)
        .await
        .is_err());
    assert!(!cloud.folder().join("jack/other.bin").exists());
}
