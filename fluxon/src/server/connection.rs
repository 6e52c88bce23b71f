//! One connection: the handshake, then a reader that runs each call and a writer that drains a
//! bounded queue of encoded frames into the socket.
//!
//! The reader polls each call once where it decoded it: a view that answers without waiting (most
//! do) is answered with no task spawned; one that waits (a timer, a database, another service)
//! becomes its own task, so a slow view never holds up a fast one. Plain-`fn` views always wait
//! (they run on the blocking pool).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::codec::FramedWrite;
use tokio_util::task::TaskTracker;

use super::handle::{ServerHandle, Shared};
use super::in_flight::{InFlight, Slot};
use super::reverse::Link;
use super::sessions::Session;
use super::{check_hello, refusal_message, HelloOk};
use crate::admission::{Admitted, Counters};
use crate::armed::Armed;
use crate::auth::SessionToken;
use crate::routing::{Connection, Dispatched, Failure, Outcome, Request, RoutedView};
use crate::timer::after;
use crate::wire::{
    self, Envelope, ErrorCode, ErrorReply, FrameCodec, FrameReader, Outbox, RefuseReason,
    SendError, WireError,
};

type Reader = FrameReader<wire::BoxRead>;
type Writer = FramedWrite<wire::BoxWrite, FrameCodec>;

/// Why a connection's reader stopped.
enum End {
    /// The peer closed, or said goodbye.
    PeerClosed,
    /// The server is shutting down.
    Shutdown,
    /// Nothing heard for the idle timeout.
    Idle,
    /// The server disconnected this session.
    Kicked,
    /// The peer broke the protocol; the text says how.
    Violation(String),
}

/// Serves one accepted connection to its end. `admitted` holds its slots (given back when it
/// ends); the handshake must be done by `deadline`.
pub(super) async fn serve(
    stream: wire::Stream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut admitted: Admitted,
    deadline: Instant,
) {
    let wire::Halves {
        read,
        write,
        direct,
    } = stream.split();
    let limits = &shared.limits;
    // Until the peer has said who it is, it gets a small frame and no share of the budget.
    let mut reader = FrameReader::new(
        read,
        wire::HANDSHAKE_MAX_FRAME,
        limits.connection_allowance,
        Some(Arc::clone(&shared.budget)),
    );
    let mut writer = FramedWrite::new(write, wire::codec(limits.max_frame));

    let Some((session, reply_max, welcome)) =
        handshake(&mut reader, &mut writer, &shared, deadline).await
    else {
        return;
    };
    let outbox = Outbox::paying(
        limits.outgoing_buffer,
        reply_max,
        Arc::clone(&shared.budget),
        limits.connection_allowance,
    );
    // Reverse requests reach this connection through its session from before its `Welcome`: a
    // client that has its `Welcome` is in every broadcast after it. What is queued meanwhile waits
    // for the writer, which starts once the `Welcome` is out.
    let link = Link::new(Arc::clone(&outbox));
    session.add_link(Arc::clone(&link));
    if !matches!(timeout_at(deadline, writer.send(welcome)).await, Ok(Ok(()))) {
        session.remove_link(&link);
        shared.sessions.disconnected(&session);
        return;
    }
    admitted.handshake_done();
    reader.set_max_frame(limits.max_frame);
    tracing::debug!(session = %session.id(), "connected");
    if let Some(user) = session.user_id() {
        // A resumed, logged-in session: deliver what was kept while it was away.
        ServerHandle {
            shared: Arc::clone(&shared),
        }
        .deliver_mailbox(user);
    }
    let in_flight = InFlight::new(shared.limits.max_in_flight);
    let write_task = {
        let outbox = Arc::clone(&outbox);
        let in_flight = Arc::clone(&in_flight);
        // A call still running will queue its reply soon: worth a yield to share the write.
        let running = move || in_flight.running() > 0;
        let stall = shared.limits.idle_timeout;
        if let Some(direct) = direct {
            outbox.set_direct(direct as Arc<dyn wire::DirectWrite>);
        }
        let socket = writer.into_inner();
        let writes = async move { outbox.write_to(socket, stall, running).await };
        tokio::spawn(super::logging::in_span(writes, tracing::Span::current()))
    };
    let calls = TaskTracker::new();
    let server = ServerHandle {
        shared: Arc::clone(&shared),
    };
    let conn = Conn {
        outbox: &outbox,
        shared: &shared,
        context: Connection::new(peer, Arc::clone(&session), link.id(), server),
        session: &session,
        calls: &calls,
        in_flight: &in_flight,
        link: &link,
    };
    let end = conn.read_loop(&mut reader).await;
    drop(reader);
    drop(admitted);

    // One deadline for everything left: calls finishing (on shutdown) and the last writes.
    let deadline = after(Instant::now(), shared.limits.shutdown_grace);
    let goodbye = match &end {
        End::PeerClosed => None,
        End::Shutdown => {
            calls.close();
            if timeout_at(deadline, calls.wait()).await.is_err() {
                tracing::warn!("calls still running at the end of the shutdown grace period");
            }
            Some("the server is shutting down".to_owned())
        }
        End::Idle => Some("idle timeout".to_owned()),
        End::Kicked => Some("disconnected by the server".to_owned()),
        End::Violation(why) => {
            tracing::info!(reason = %why, "closing connection: protocol violation");
            Some(why.clone())
        }
    };
    if let Some(reason) = goodbye {
        let _ = outbox.try_send(&Envelope::Goodbye { reason: &reason });
    }
    outbox.close();
    // The writer ends once what is queued is written; a peer that takes nothing does not keep the
    // connection past the deadline.
    let abort = write_task.abort_handle();
    let last_writes = deadline.max(Instant::now() + Duration::from_millis(500));
    if timeout_at(last_writes, write_task).await.is_err() {
        abort.abort();
    }
    session.remove_link(&link);
    shared.sessions.disconnected(&session);
    tracing::debug!("disconnected");
}

/// Reads the `Hello`; answers `Refused`, or makes the `Welcome` for the caller to send. `None`
/// means the connection is done. On success: the session, the largest frame this peer accepts,
/// and the `Welcome`'s body.
async fn handshake(
    reader: &mut Reader,
    writer: &mut Writer,
    shared: &Shared,
    deadline: Instant,
) -> Option<(Arc<Session>, usize, bytes::Bytes)> {
    let first = match timeout_at(deadline, reader.next()).await {
        Err(_) => {
            tracing::debug!("handshake timed out");
            return None;
        }
        Ok(None) => return None,
        Ok(Some(Err(err))) => {
            tracing::debug!(%err, "unreadable first frame");
            let message = if err.kind() == std::io::ErrorKind::InvalidData {
                format!(
                    "the first frame is over {} bytes",
                    wire::HANDSHAKE_MAX_FRAME
                )
            } else {
                format!("unreadable first frame: {err}")
            };
            send_refusal(writer, RefuseReason::Malformed, &refusal_message(message)).await;
            return None;
        }
        Ok(Some(Ok(frame))) => frame.body,
    };
    let (reason, message) = match check_hello(&first) {
        Err(refusal) => refusal,
        Ok(_) if shared.shutdown.is_cancelled() => (
            RefuseReason::ShuttingDown,
            "the server is shutting down".to_owned(),
        ),
        Ok(HelloOk { resume, max_frame }) => {
            let resume = resume.map(SessionToken::from_wire);
            if let (Some(token), Some(node)) = (&resume, &shared.cluster) {
                super::replica::adopt(shared, node, token, deadline).await;
            }
            let opened = match shared.sessions.open(resume) {
                Ok(opened) => opened,
                Err(err) => {
                    tracing::error!(%err, "cannot open a session");
                    return None;
                }
            };
            let welcome = Envelope::Welcome {
                token: opened.token.to_wire(),
                resumed: opened.resumed,
                max_frame: u32::try_from(shared.limits.max_frame).unwrap_or(u32::MAX),
            };
            let body = match welcome.encode() {
                Ok(body) => body,
                Err(err) => {
                    tracing::error!(%err, "cannot encode Welcome");
                    shared.sessions.disconnected(&opened.session);
                    return None;
                }
            };
            let reply_max = shared.limits.max_frame.min(max_frame as usize);
            return Some((opened.session, reply_max, body));
        }
    };
    tracing::info!(%reason, %message, "handshake refused");
    send_refusal(writer, reason, &message).await;
    None
}

async fn send_refusal(writer: &mut Writer, reason: RefuseReason, message: &str) {
    if let Ok(body) = (Envelope::Refused { reason, message }).encode() {
        let _ = timeout(Duration::from_secs(1), writer.send(body)).await;
    }
}

/// What the reader of one connection works with.
struct Conn<'a> {
    outbox: &'a Arc<Outbox>,
    shared: &'a Arc<Shared>,
    /// What every call's `Request` shares.
    context: Arc<Connection>,
    session: &'a Arc<Session>,
    calls: &'a TaskTracker,
    in_flight: &'a Arc<InFlight>,
    link: &'a Arc<Link>,
}

impl<'a> Conn<'a> {
    /// The view served under `name` (a call's name as it came), if any. `last` is the view the
    /// reader found last: a client mostly calls the same few, and comparing a name costs less
    /// than looking it up.
    fn view(&self, name: &[u8], last: &mut Option<&'a RoutedView>) -> Option<&'a RoutedView> {
        if let Some(view) = *last {
            if view.name().as_bytes() == name {
                return Some(view);
            }
        }
        let shared: &'a Shared = self.shared;
        let view = shared.router.view(name)?;
        *last = Some(view);
        Some(view)
    }

    /// How long this session must wait before its next call, when it is over its call rate.
    fn throttled(&self) -> Option<Duration> {
        let bucket = self.shared.call_rate.as_ref()?;
        match bucket.check(&self.session.id()) {
            Ok(()) => None,
            Err(wait) => {
                Counters::bump(&self.shared.counters.calls_throttled);
                Some(wait)
            }
        }
    }
}

/// What woke a connection's reader.
enum Event {
    Frame(Option<std::io::Result<wire::Frame>>),
    Shutdown,
    Kicked,
    Tick,
}

/// What to do after one frame.
enum Next {
    Continue,
    Stop(End),
}

/// How far [`Conn::call_now`] got with a frame.
enum Now {
    /// Handled.
    Done(Next),
    /// The call ran (or was refused); its reply waits for room in the queue (or is over the
    /// peer's limit). The slot is freed once it is queued.
    Reply {
        id: u64,
        outcome: Outcome,
        slot: Option<Slot>,
    },
    /// Not a call it can handle without waiting: the frame, untouched.
    Later(wire::Frame),
}

impl<'a> Conn<'a> {
    /// Reads frames until the peer leaves, breaks the protocol, goes idle, or the server shuts down.
    async fn read_loop(&self, reader: &mut Reader) -> End {
        let limits = &self.shared.limits;
        let half_idle = limits.idle_timeout / 2;
        let mut last_heard = Instant::now();
        let mut pings = 0u64;
        // Off tokio's timer wheel (see `timer`): a timer there costs every park of the runtime.
        let mut tick = crate::timer::sleep(half_idle);
        // Registered once, not per frame: every connection shares the shutdown token.
        let shutdown = self.shared.shutdown.cancelled();
        tokio::pin!(shutdown);
        let kicked = self.link.kicked();
        tokio::pin!(kicked);
        kicked.as_mut().enable();

        // Polled until their wakers are in place, then only checked (see `armed`).
        let (mut shutdown_armed, mut kick_armed, mut tick_armed) =
            (Armed::default(), Armed::default(), Armed::default());
        let mut last_view = None;
        loop {
            let event = {
                let next = reader.next();
                tokio::pin!(next);
                std::future::poll_fn(|cx| {
                    let stopping = || self.shared.shutdown.is_cancelled();
                    if shutdown_armed.ready(shutdown.as_mut(), cx, stopping) {
                        return Poll::Ready(Event::Shutdown);
                    }
                    if kick_armed.ready(kicked.as_mut(), cx, || self.link.is_kicked()) {
                        return Poll::Ready(Event::Kicked);
                    }
                    if let Poll::Ready(frame) = next.as_mut().poll(cx) {
                        return Poll::Ready(Event::Frame(frame));
                    }
                    let elapsed = tick.is_elapsed();
                    if tick_armed.ready(Pin::new(&mut tick), cx, || elapsed) {
                        return Poll::Ready(Event::Tick);
                    }
                    Poll::Pending
                })
                .await
            };
            let frame = match event {
                Event::Frame(frame) => frame,
                Event::Shutdown => return End::Shutdown,
                Event::Kicked => return End::Kicked,
                Event::Tick => {
                    tick_armed.disarm();
                    let now = Instant::now();
                    let busy = self.in_flight.running() > 0;
                    if busy || now < after(last_heard, half_idle) {
                        // Heard from recently (the timer is not moved on every frame), or calls
                        // are running: not idle.
                        let from = if busy { now } else { last_heard };
                        tick.reset(after(from, half_idle));
                    } else if now >= after(last_heard, limits.idle_timeout) {
                        return End::Idle;
                    } else {
                        pings += 1;
                        let _ = self.outbox.try_send(&Envelope::Ping { nonce: pings });
                        tick.reset(after(last_heard, limits.idle_timeout));
                    }
                    continue;
                }
            };
            let Some(first) = frame else {
                return End::PeerClosed;
            };
            // Everything that arrived in one read shares one clock reading.
            last_heard = Instant::now();
            let mut frame = Some(first);
            while let Some(this) = frame {
                let this = match this {
                    Ok(this) => this,
                    Err(err) => return End::Violation(format!("bad frame: {err}")),
                };
                let next = match self.call_now(this, last_heard, &mut last_view) {
                    Now::Done(next) => next,
                    Now::Reply { id, outcome, slot } => {
                        let sent = send_reply(self.outbox, id, outcome, true).await;
                        drop(slot);
                        if sent.is_ok() {
                            Next::Continue
                        } else {
                            Next::Stop(End::PeerClosed)
                        }
                    }
                    Now::Later(this) => self.on_frame(this, last_heard, &mut shutdown).await,
                };
                match next {
                    Next::Continue => {}
                    Next::Stop(end) => {
                        self.outbox.flush();
                        return end;
                    }
                }
                frame = reader.buffered();
            }
            // The replies to everything that came in this read, in one write from here.
            self.outbox.flush();
        }
    }

    /// A call handled without waiting, the usual case (no future built for the frame): under its
    /// rate, a slot free, the view answering on its first poll or becoming its own task, and room
    /// for the reply. Anything else is for [`on_frame`](Self::on_frame) (`Later`, the frame
    /// untouched), or for an awaited [`send_reply`] once the call has run (`Reply`).
    fn call_now(
        &self,
        frame: wire::Frame,
        arrived: Instant,
        last_view: &mut Option<&'a RoutedView>,
    ) -> Now {
        let Some((id, name, payload)) = wire::decode_call(&frame.body) else {
            return Now::Later(frame);
        };
        // An unknown name (or one that is not UTF-8) is for `on_frame` to answer.
        let Some(view) = self.view(name, last_view) else {
            return Now::Later(frame);
        };
        // The slot first: with none free the frame goes on untouched (its rate not yet counted).
        // A view that never waits is done before the reader reads on: it needs no slot, only
        // room among the calls in flight (the reader is the only one to start calls).
        let slot = if view.never_waits() {
            if !self.in_flight.has_room() {
                return Now::Later(frame);
            }
            None
        } else {
            match self.in_flight.try_start() {
                Some(slot) => Some(slot),
                None => return Now::Later(frame),
            }
        };
        let (outcome, slot) = match self.throttled() {
            Some(wait) => (Err(over_rate(wait)), None),
            None => match self.start_call(id, view, payload, frame.held, slot, arrived) {
                Some((outcome, slot)) => (outcome, slot),
                None => return Now::Done(Next::Continue),
            },
        };
        match try_reply(self.outbox, id, outcome) {
            Ok(Ok(())) => Now::Done(Next::Continue),
            Ok(Err(_)) => Now::Done(Next::Stop(End::PeerClosed)),
            Err(outcome) => Now::Reply { id, outcome, slot },
        }
    }

    /// Dispatches a call and polls it once here: a view that answers without waiting (most do)
    /// costs no task, and its outcome comes back with its slot (if it took one), to be freed once
    /// the reply is queued. One that waits becomes its own task (holding a slot, taken here if it
    /// had none, and the frame's share of the budget until its reply is queued), so it never
    /// holds up the reader: `None`.
    fn start_call(
        &self,
        id: u64,
        view: &RoutedView,
        payload: &[u8],
        held: Option<wire::Reservation>,
        slot: Option<Slot>,
        arrived: Instant,
    ) -> Option<(Outcome, Option<Slot>)> {
        let req = Request::new(&self.context, arrived);
        // Made only when someone listens: a disabled span still costs its fields.
        let span = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| tracing::debug_span!("call", id, view = view.name()));
        let dispatched = match &span {
            None => view.dispatch(req, payload),
            Some(span) => span.in_scope(|| view.dispatch(req, payload)),
        };
        let mut call = match dispatched {
            // The view never waits, or failed before it ran: no future was made for it.
            Dispatched::Done(outcome) => {
                drop(held);
                return Some((outcome, slot));
            }
            Dispatched::Later(call) => call,
        };
        // A query the view starts waits for the view's own task: it would hold the reader.
        let first = crate::db::elsewhere(|| match &span {
            None => call.as_mut().now_or_never(),
            Some(span) => span.in_scope(|| call.as_mut().now_or_never()),
        });
        // The reader alone starts calls, and saw room for this one.
        let slot = slot.or_else(|| self.in_flight.try_start());
        if let Some(outcome) = first {
            drop(held);
            return Some((outcome, slot));
        }
        let outbox = Arc::clone(self.outbox);
        self.calls.spawn(super::logging::in_span(
            async move {
                let outcome = call.await;
                // The request's share of the budget is done with once the view is: the reply
                // pays for itself.
                drop(held);
                // The slot is held until the reply is queued, so a peer that does not read
                // cannot make calls pile up.
                let _ = send_reply(&outbox, id, outcome, false).await;
                drop(slot);
            },
            span.unwrap_or_else(tracing::Span::none),
        ));
        None
    }

    async fn on_frame(
        &self,
        frame: wire::Frame,
        arrived: Instant,
        shutdown: &mut std::pin::Pin<&mut tokio_util::sync::WaitForCancellationFuture<'_>>,
    ) -> Next {
        // The frame's share of the budget goes with the call that uses it (or right away).
        let wire::Frame { body: frame, held } = frame;
        match Envelope::decode(&frame) {
            Ok(Envelope::Call { id, view, payload }) => {
                if let Some(wait) = self.throttled() {
                    return match send_reply(self.outbox, id, Err(over_rate(wait)), true).await {
                        Ok(()) => Next::Continue,
                        Err(_) => Next::Stop(End::PeerClosed),
                    };
                }
                let slot = match self.in_flight.try_start() {
                    Some(slot) => slot,
                    None => {
                        // At the in-flight limit: stop reading until a call finishes (and let
                        // the replies queued so far go out meanwhile).
                        self.outbox.flush();
                        let slot = tokio::select! {
                            biased;
                            () = shutdown.as_mut() => {
                                let message = "the server is shutting down";
                                let _ = send_error(self.outbox, id, ErrorCode::ShuttingDown, message, false).await;
                                return Next::Stop(End::Shutdown);
                            }
                            slot = self.in_flight.start() => slot,
                        };
                        if self.outbox.is_closed() {
                            // The writer gave up on this peer (it left, or takes no bytes): the
                            // calls still in the socket's buffer would run for nobody, and hold
                            // the connection's slot long after the peer is gone.
                            return Next::Stop(End::PeerClosed);
                        }
                        slot
                    }
                };
                let Some(view) = self.shared.router.view(view.as_bytes()) else {
                    drop(slot);
                    let message = format!("no view named `{view}`");
                    return match send_error(self.outbox, id, ErrorCode::UnknownView, &message, true)
                        .await
                    {
                        Ok(()) => Next::Continue,
                        Err(_) => Next::Stop(End::PeerClosed),
                    };
                };
                if let Some((outcome, slot)) =
                    self.start_call(id, view, payload, held, Some(slot), arrived)
                {
                    let sent = send_reply(self.outbox, id, outcome, true).await;
                    drop(slot);
                    if sent.is_err() {
                        return Next::Stop(End::PeerClosed);
                    }
                }
                Next::Continue
            }
            Ok(Envelope::Ping { nonce }) => {
                match self.outbox.send_deferred(&Envelope::Pong { nonce }).await {
                    Ok(()) => Next::Continue,
                    Err(_) => Next::Stop(End::PeerClosed),
                }
            }
            Ok(Envelope::Pong { .. }) => Next::Continue,
            Ok(Envelope::ReverseReply { id, result }) => {
                let answer = result
                    .map(|bytes| wire::detach(&frame, bytes))
                    .map_err(|e| (e.code, e.message.to_owned()));
                if !self.link.complete(id, answer) {
                    tracing::debug!(
                        id,
                        "reverse reply nobody waits for (unknown id, or a plain send); ignored"
                    );
                }
                Next::Continue
            }
            Ok(Envelope::Goodbye { .. }) => Next::Stop(End::PeerClosed),
            Ok(_) => Next::Stop(End::Violation(
                "unexpected message after the handshake".to_owned(),
            )),
            Err(WireError::Decode(err)) => {
                Next::Stop(End::Violation(format!("malformed message: {err}")))
            }
            Err(err) => Next::Stop(End::Violation(err.to_string())),
        }
    }
}

/// What a call over its session's rate gets.
fn over_rate(wait: Duration) -> Failure {
    let message = format!(
        "this session is over its call rate; retry in {} ms",
        wait.as_millis().max(1)
    );
    Failure::new(ErrorCode::Throttled, message)
}

/// Queues the reply to a call answered on the reader when the queue has room now (the usual
/// case: no future to build for it). The outcome comes back when the reply must wait for room or
/// is over the peer's frame limit: [`send_reply`] handles both.
fn try_reply(outbox: &Outbox, id: u64, outcome: Outcome) -> Result<Result<(), SendError>, Outcome> {
    match outbox.try_send_deferred(&reply_to(id, &outcome)) {
        Err(SendError::Full | SendError::TooLarge(_)) => Err(outcome),
        sent => {
            queued(outcome);
            Ok(sent)
        }
    }
}

/// The `Reply` for a call's outcome, as a frame to queue.
fn reply_to(id: u64, outcome: &Outcome) -> ReplyFrame<'_> {
    match outcome {
        Ok(reply) => ReplyFrame::Ok(wire::Hot::reply(id, reply.parts())),
        Err(failure) => ReplyFrame::Err(Envelope::Reply {
            id,
            result: Err(ErrorReply {
                code: failure.code,
                message: &failure.message,
                detail: &failure.detail,
            }),
        }),
    }
}

/// A `Reply` frame: a reply's bytes in their pieces, or an error.
enum ReplyFrame<'a> {
    Ok(wire::Hot<'a>),
    Err(Envelope<'a>),
}

impl wire::Framed for ReplyFrame<'_> {
    fn encode_frame_into(&self, buf: &mut bytes::BytesMut) -> Result<usize, WireError> {
        match self {
            ReplyFrame::Ok(hot) => hot.encode_frame_into(buf),
            ReplyFrame::Err(envelope) => envelope.encode_frame_into(buf),
        }
    }
}

/// An outcome whose reply is in the queue: its bytes were copied there, and a buffer it was
/// encoded into serves this thread's next reply.
fn queued(outcome: Outcome) {
    if let Ok(reply) = outcome {
        reply.done();
    }
}

/// Queues the `Reply` for a call's outcome; a reply over the peer's frame limit becomes a
/// `TooLarge` error reply. `deferred`: the reader queues it and flushes after its batch.
async fn send_reply(
    outbox: &Outbox,
    id: u64,
    outcome: Outcome,
    deferred: bool,
) -> Result<(), SendError> {
    let sent = queue(outbox, &reply_to(id, &outcome), deferred).await;
    queued(outcome);
    match sent {
        Err(SendError::TooLarge(size)) => {
            let message = format!("the reply is {size} bytes, over the client's frame limit");
            send_error(outbox, id, ErrorCode::TooLarge, &message, deferred).await
        }
        other => other,
    }
}

async fn send_error(
    outbox: &Outbox,
    id: u64,
    code: ErrorCode,
    message: &str,
    deferred: bool,
) -> Result<(), SendError> {
    let reply = Envelope::Reply {
        id,
        result: Err(ErrorReply::new(code, message)),
    };
    queue(outbox, &reply, deferred).await
}

async fn queue(
    outbox: &Outbox,
    frame: &impl wire::Framed,
    deferred: bool,
) -> Result<(), SendError> {
    if deferred {
        outbox.send_deferred(frame).await
    } else {
        outbox.send(frame).await
    }
}
