//! The cloud endpoint's listener and connections: admission per peer address (its own
//! [`Peers`], apart from the main port's), then one task per connection reading requests one
//! after another and handing each to [`ops`](super::ops).
//!
//! A connection holds a handshake slot from its accept until its first request has been read,
//! which must happen within the handshake timeout (TLS included): a flood of connections that
//! never speak takes handshake slots, not the ones working clients hold.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::error::{CloudError, CloudErrorCode};
use super::ops;
use super::protocol::{self, Response, MAX_REQUEST};
use super::server::Endpoint;
use crate::admission::{full_message, slot, Admitted, Counters, PeerLimits, Peers, RefusalLog};
use crate::wire::Capacity;

/// Accepts cloud connections until shutdown.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    endpoint: Arc<Endpoint>,
    tracker: TaskTracker,
) {
    let settings = endpoint.settings;
    let peers = Peers::new(PeerLimits {
        connections: settings.max_connections,
        connections_per_peer: settings.max_connections_per_peer,
        handshakes: settings.max_handshakes,
        handshakes_per_peer: settings.max_handshakes_per_peer,
        ipv6_prefix: settings.ipv6_prefix,
    });
    let refusals = Arc::new(RefusalLog::new());
    tracker.spawn(super::sweep::sweep_loop(Arc::clone(&endpoint)));
    // Balancer connections waiting for their PROXY header: at most as many as handshakes.
    let headers = Arc::new(Semaphore::new(settings.max_handshakes));
    while let Some((stream, peer)) = Peers::next(&listener, &endpoint.shutdown).await {
        if !endpoint.balancers.includes(peer.ip()) {
            admit(stream, peer, &endpoint, &peers, &refusals, &tracker);
            continue;
        }
        let Ok(permit) = Arc::clone(&headers).try_acquire_owned() else {
            continue;
        };
        let (endpoint, peers, refusals) = (
            Arc::clone(&endpoint),
            Arc::clone(&peers),
            Arc::clone(&refusals),
        );
        let inner = tracker.clone();
        tracker.spawn(async move {
            let mut stream = stream;
            let limit = endpoint.settings.handshake_timeout;
            match crate::admission::read_proxy_header(&mut stream, peer, limit).await {
                Ok(real) => {
                    drop(permit);
                    admit(stream, real, &endpoint, &peers, &refusals, &inner);
                }
                Err(err) => tracing::info!(balancer = %peer, %err, "cloud connection closed"),
            }
        });
    }
}

/// Serves a connection from `peer` if the limits admit it, else turns it away.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    endpoint: &Arc<Endpoint>,
    peers: &Arc<Peers>,
    refusals: &RefusalLog,
    tracker: &TaskTracker,
) {
    match peers.admit(peer.ip()) {
        Ok(admitted) => {
            let endpoint = Arc::clone(endpoint);
            let span = tracing::info_span!("cloud", %peer);
            tracker.spawn(serve(stream, peer, endpoint, admitted).instrument(span));
        }
        Err(capacity) => {
            Counters::bump(&endpoint.counters().cloud_refused[slot(capacity)]);
            refusals.note(capacity, peer);
            refuse(&stream, capacity, endpoint.tls.is_some());
        }
    }
}

/// Turns a connection away at a limit, at the cost of one non-blocking write: a clear-text peer
/// reads why, a TLS peer (which could only read it after a handshake) is closed without a word.
fn refuse(stream: &TcpStream, capacity: Capacity, tls: bool) {
    if tls {
        return;
    }
    let response = Response::Failed {
        code: CloudErrorCode::ServerFull,
        message: full_message(capacity).to_owned(),
    };
    if let Ok(body) = postcard::to_allocvec(&response) {
        let mut framed = u32::try_from(body.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes()
            .to_vec();
        framed.extend_from_slice(&body);
        let _ = stream.try_write(&framed);
    }
}

/// One connection: requests one after another until the peer closes, goes quiet, breaks the
/// protocol or an operation fails (a failed answer closes the connection, since a write's bytes
/// may still be on their way).
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    endpoint: Arc<Endpoint>,
    mut admitted: Admitted,
) {
    let handshake = endpoint.settings.handshake_timeout;
    let deadline = crate::timer::after(tokio::time::Instant::now(), handshake);
    let secured = crate::tls::accept(stream, endpoint.tls.as_ref(), handshake).await;
    let Some(stream) = secured else {
        return;
    };
    let crate::wire::Halves {
        read,
        write: mut writer,
        ..
    } = stream.split();
    let mut reader = BufReader::with_capacity(64 * 1024, read);
    let mut first = true;
    loop {
        // The first request is due by the handshake's deadline, the others within the idle time.
        let until = if first {
            deadline
        } else {
            crate::timer::after(tokio::time::Instant::now(), endpoint.settings.idle_timeout)
        };
        let frame = tokio::select! {
            () = endpoint.shutdown.cancelled() => break,
            frame = tokio::time::timeout_at(until, protocol::read_frame(&mut reader, MAX_REQUEST)) => frame,
        };
        let body = match frame {
            Err(_) | Ok(Ok(None)) => break,
            Ok(Err(err)) => {
                fail(&mut writer, &CloudError::BadRequest(err.to_string())).await;
                break;
            }
            Ok(Ok(Some(body))) => body,
        };
        let (session, request) = match protocol::decode_request(&body) {
            Ok(pair) => pair,
            Err(message) => {
                fail(&mut writer, &CloudError::BadRequest(message)).await;
                break;
            }
        };
        if first {
            admitted.handshake_done();
            first = false;
        }
        // A shutdown lets a transfer in progress run for the grace period, then cuts it (a cut
        // write stays resumable).
        let cut = async {
            endpoint.shutdown.cancelled().await;
            tokio::time::sleep(endpoint.grace).await;
        };
        let outcome = tokio::select! {
            outcome = ops::handle(&endpoint, peer, session, request, &mut reader, &mut writer) => outcome,
            () = cut => Err(ops::Failed { error: CloudError::ShuttingDown, tell_peer: false }),
        };
        match outcome {
            Ok(response) => {
                if protocol::write_frame(&mut writer, &response).await.is_err()
                    || writer.flush().await.is_err()
                {
                    break;
                }
            }
            Err(failed) => {
                if failed.tell_peer {
                    fail(&mut writer, &failed.error).await;
                }
                break;
            }
        }
    }
    let _ = writer.shutdown().await;
    drop(admitted);
}

async fn fail(writer: &mut crate::wire::BoxWrite, err: &CloudError) {
    let response = Response::Failed {
        code: err.code(),
        message: err.to_string(),
    };
    let send = async {
        protocol::write_frame(writer, &response).await?;
        writer.flush().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), send).await;
}
