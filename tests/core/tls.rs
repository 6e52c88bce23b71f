//! The same server over TLS: calls and reverse requests work, a client that does not trust the
//! certificate gets nowhere, and a clear-text client is refused.

use fluxon::tls::{ClientTls, TlsIdentity};
use fluxon::{AsyncServer, ClientConfig, ConnectError, ConnectionHandler};

use crate::common::*;

fn config(tls: ClientTls) -> ClientConfig {
    ClientConfig::default()
        .tls(Some(tls))
        .reconnect(fluxon::client::Reconnect::default().enabled(false))
}

#[tokio::test]
async fn calls_and_reverse_requests_work_over_tls_for_a_client_that_trusts_the_certificate() {
    let (identity, certificate) = TlsIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let server = start(AsyncServer::new(0).tls(identity)).await;
    let addr = server.local_addr().to_string();

    // Trusting it as a root: checked against the address dialled (127.0.0.1 is in the certificate).
    let rooted = ConnectionHandler::connect_with(
        addr.clone(),
        config(ClientTls::trusting(&certificate).unwrap()),
    )
    .await
    .unwrap();
    assert_eq!(rooted.call(add, &(20, 22)).await.unwrap(), 42);
    let big = rooted.call(big_reply, &(3 << 20)).await.unwrap();
    assert_eq!(big.len(), 3 << 20);
    assert!(big.iter().all(|&b| b == 7));

    // Pinned: exactly this certificate.
    let pinned = ConnectionHandler::connect_with(addr, config(ClientTls::pinned(&certificate)))
        .await
        .unwrap();
    let echoed: String = pinned.send_request("echo", "over tls").await.unwrap();
    assert_eq!(echoed, "over tls");
    pinned.call(login_as, &7).await.unwrap();
    pinned.on("double", |n: u64| async move { n * 2 });
    let reply: u64 = server
        .handle()
        .reverse_call(7, "double", &21u64, PATIENCE)
        .await
        .unwrap();
    assert_eq!(reply, 42);
    // Many calls at once share the TLS connection.
    let calls: Vec<_> = (0..200i64)
        .map(|i| {
            let conn = pinned.clone();
            tokio::spawn(async move { conn.call(add, &(i, 1)).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), i as i64 + 1);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_is_refused() {
    let (identity, _) = TlsIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let (_, other) = TlsIdentity::self_signed(&["localhost", "127.0.0.1"]).unwrap();
    let server = start(AsyncServer::new(0).tls(identity)).await;
    let addr = server.local_addr().to_string();
    for tls in [
        ClientTls::pinned(&other),
        ClientTls::trusting(&other).unwrap(),
    ] {
        let err = ConnectionHandler::connect_with(addr.clone(), config(tls))
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
        assert!(err.to_string().contains("certificate"), "{err}");
    }
    // A certificate for another name, trusted as a root, does not pass for this address.
    let (named, for_name) = TlsIdentity::self_signed(&["example.invalid"]).unwrap();
    let elsewhere = start(AsyncServer::new(0).tls(named)).await;
    let err = ConnectionHandler::connect_with(
        elsewhere.local_addr().to_string(),
        config(ClientTls::trusting(&for_name).unwrap()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ConnectError::Tls { .. }), "{err}");
    // A clear-text client gets no fluxon handshake out of a TLS server.
    let plain =
        ConnectionHandler::connect_with(addr, config(ClientTls::pinned(&other)).tls(None)).await;
    assert!(plain.is_err());
    // Meanwhile, nothing stopped a trusting client.
    assert_eq!(server.handle().connection_count(), 0);
    server.shutdown().await;
    elsewhere.shutdown().await;
}
