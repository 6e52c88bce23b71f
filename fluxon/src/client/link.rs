//! One physical connection of a client: connect, handshake, then serve it until it ends (its
//! frames are read by its task or by the calls waiting on it, see `reading`).

use std::sync::Arc;
use std::task::Poll;

use futures_util::SinkExt;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_util::codec::FramedWrite;

use super::reading::{ReadSide, Reader};
use super::shared::{Inner, LinkState};
use super::{ClientConfig, ConnectError};
use crate::armed::Armed;
use crate::timer::after;
use crate::wire::{self, Envelope, FrameCodec, FrameReader, Outbox, SessionTokenBytes};

/// Frames from the server larger than this are read exactly (no read-ahead past them); smaller
/// ones come with what else the socket has.
const READ_EXACT_PAST: usize = 64 * 1024;

pub(super) type Writer = FramedWrite<wire::BoxWrite, FrameCodec>;

/// A connection that has completed its handshake.
pub(super) struct Opened {
    pub reader: Reader,
    pub writer: Writer,
    pub token: SessionTokenBytes,
    pub resumed: bool,
    pub max_frame: usize,
    /// The socket, for calls written without the writer task (clear text only).
    pub direct: Option<Arc<tokio::net::tcp::OwnedWriteHalf>>,
}

/// Connects and performs the handshake, presenting `resume` if given.
pub(super) async fn open(
    addr: &str,
    resume: Option<SessionTokenBytes>,
    config: &ClientConfig,
) -> Result<Opened, ConnectError> {
    let limit = config.handshake_timeout;
    timeout(limit, open_inner(addr, resume, config))
        .await
        .unwrap_or(Err(ConnectError::Timeout(limit)))
}

async fn open_inner(
    addr: &str,
    resume: Option<SessionTokenBytes>,
    config: &ClientConfig,
) -> Result<Opened, ConnectError> {
    let io_error = |source| ConnectError::Io {
        addr: addr.to_owned(),
        source,
    };
    let stream = match config.local_addr {
        None => TcpStream::connect(addr).await.map_err(io_error)?,
        Some(local) => connect_from(addr, local).await.map_err(io_error)?,
    };
    stream.set_nodelay(true).map_err(io_error)?;
    let stream = match &config.tls {
        None => wire::Stream::Plain(stream),
        Some(tls) => match tls.connect(addr, stream).await {
            Ok(stream) => wire::Stream::TlsClient(Box::new(stream)),
            Err(err) => {
                return Err(ConnectError::Tls {
                    addr: addr.to_owned(),
                    reason: err.to_string(),
                })
            }
        },
    };
    let halves = stream.split();
    let direct = halves.direct;
    let mut reader = FrameReader::new(halves.read, config.max_frame, READ_EXACT_PAST, None);
    let mut writer = FramedWrite::new(halves.write, wire::codec(config.max_frame));

    let hello = Envelope::Hello {
        magic: wire::MAGIC,
        version: wire::PROTOCOL_VERSION,
        resume,
        max_frame: u32::try_from(config.max_frame).unwrap_or(u32::MAX),
    };
    let body = hello
        .encode()
        .map_err(|e| ConnectError::Handshake(e.to_string()))?;
    writer.send(body).await.map_err(io_error)?;
    let frame = match reader.next().await {
        Some(Ok(frame)) => frame.body,
        Some(Err(err)) => return Err(io_error(err)),
        None => {
            return Err(ConnectError::Handshake(
                "the server closed the connection during the handshake".to_owned(),
            ))
        }
    };
    match Envelope::decode(&frame) {
        Ok(Envelope::Welcome {
            token,
            resumed,
            max_frame,
        }) => Ok(Opened {
            reader,
            writer,
            token,
            resumed,
            direct,
            // Never send what either side would refuse.
            max_frame: usize::try_from(max_frame)
                .unwrap_or(usize::MAX)
                .min(config.max_frame),
        }),
        Ok(Envelope::Refused { reason, message }) => Err(ConnectError::Refused {
            reason,
            message: message.to_owned(),
        }),
        Ok(_) => Err(ConnectError::Handshake(
            "the server answered Hello with something other than Welcome".to_owned(),
        )),
        Err(err) => Err(ConnectError::Handshake(format!(
            "the server's answer does not decode: {err}"
        ))),
    }
}

/// Connects to `addr` from the local address `local` (port chosen by the system).
pub(crate) async fn connect_from(
    addr: &str,
    local: std::net::IpAddr,
) -> std::io::Result<TcpStream> {
    let mut last = None;
    for target in tokio::net::lookup_host(addr).await? {
        if target.is_ipv4() != local.is_ipv4() {
            continue;
        }
        let socket = match local {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        match socket.connect(target).await {
            Ok(stream) => return Ok(stream),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            format!("no address of {addr} is reachable from {local}"),
        )
    }))
}

/// A link whose writer runs and whose queue calls are using; [`run`] serves it.
pub(super) struct Started {
    read: Arc<ReadSide>,
    outbox: Arc<Outbox>,
    write_task: tokio::task::JoinHandle<()>,
}

/// Starts the link's writer and makes it the way out for calls. Synchronous, so a caller knows
/// that calls can go out as soon as it returns.
pub(super) fn start(inner: &Inner, opened: Opened) -> Started {
    let outbox = Outbox::new(inner.config.outgoing_buffer, opened.max_frame);
    if let Some(direct) = opened.direct {
        outbox.set_direct(direct as Arc<dyn wire::DirectWrite>);
    }
    let stall = inner
        .config
        .call_timeout
        .max(inner.config.handshake_timeout);
    let woken = Arc::clone(&inner.pending.woken);
    // Callers woken by replies since the last write will mostly call again at once: when more
    // than one was woken, yield so their calls share one write.
    let more_coming = move || woken.swap(0, std::sync::atomic::Ordering::Relaxed) > 1;
    let socket = opened.writer.into_inner();
    let write_task = tokio::spawn({
        let outbox = Arc::clone(&outbox);
        async move { outbox.write_to(socket, stall, more_coming).await }
    });
    let read = ReadSide::new(opened.reader, Arc::clone(&outbox));
    inner.set_link(LinkState::Up {
        outbox: Arc::clone(&outbox),
        read: Arc::clone(&read),
        max_frame: opened.max_frame,
    });
    Started {
        read,
        outbox,
        write_task,
    }
}

/// What woke a link's task.
enum Event {
    /// The handler was closed.
    Closed,
    /// A reader saw the link end.
    Ended,
    /// The keepalive timer.
    Tick,
}

/// Serves one started link until it ends: reads while no call does (replies, pings, reverse
/// requests), keeps it alive. Returns when the server closes, says goodbye, breaks the protocol,
/// stops answering, or the handler is closed.
pub(super) async fn run(inner: &Arc<Inner>, started: Started) {
    let Started {
        read,
        outbox,
        write_task,
    } = started;
    let closed = inner.closed.cancelled();
    tokio::pin!(closed);
    let keepalive = inner.config.keepalive;
    // Off tokio's timer wheel (see `timer`): a timer there costs every park of the runtime.
    let mut tick = crate::timer::sleep(keepalive);
    let mut pings = 0u64;
    // Polled until their wakers are in place, then only checked (see `armed`).
    let (mut closed_armed, mut tick_armed) = (Armed::default(), Armed::default());
    loop {
        let event = std::future::poll_fn(|cx| {
            if closed_armed.ready(closed.as_mut(), cx, || inner.closed.is_cancelled()) {
                return Poll::Ready(Event::Closed);
            }
            if read.poll_link(inner, cx).is_ready() {
                return Poll::Ready(Event::Ended);
            }
            let elapsed = tick.is_elapsed();
            if tick_armed.ready(std::pin::Pin::new(&mut tick), cx, || elapsed) {
                return Poll::Ready(Event::Tick);
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Closed => {
                let _ = outbox.try_send(&Envelope::Goodbye {
                    reason: "client closed",
                });
                break;
            }
            Event::Ended => break,
            Event::Tick => {
                tick_armed.disarm();
                let now = Instant::now();
                let last_heard = read.last_heard();
                if now < after(last_heard, keepalive) {
                    // Heard from since the timer was set (it is not moved on every frame).
                    tick.reset(after(last_heard, keepalive));
                } else if now >= after(last_heard, keepalive.saturating_mul(2)) {
                    tracing::warn!(?keepalive, "the server stopped answering; reconnecting");
                    break;
                } else {
                    pings += 1;
                    let _ = outbox.try_send(&Envelope::Ping { nonce: pings });
                    tick.reset(after(last_heard, keepalive.saturating_mul(2)));
                }
            }
        }
    }
    read.close();
    inner.set_link(LinkState::Down);
    outbox.close();
    // Let the goodbye (if any) go out; the writer ends once the queue is written.
    let _ = timeout(std::time::Duration::from_secs(1), write_task).await;
}
