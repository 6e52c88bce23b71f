//! The message envelope: every frame body is one [`Envelope`], postcard-encoded.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::WireError;

/// The raw bytes of a session token on the wire: a 16-byte session id and its 32-byte MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionTokenBytes {
    /// The random session id.
    pub id: [u8; 16],
    /// keyed BLAKE3 of `id` under the server's private key.
    pub mac: [u8; 32],
}

/// One protocol message. Borrowed from the frame it was decoded from; see the [module docs](super)
/// for the exact encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Envelope<'a> {
    /// Client's first frame.
    Hello {
        /// Must be [`super::MAGIC`].
        magic: [u8; 4],
        /// Must be [`super::PROTOCOL_VERSION`].
        version: u16,
        /// A token from an earlier `Welcome`, to resume that session.
        resume: Option<SessionTokenBytes>,
        /// The largest frame body the client accepts; larger replies become `TooLarge` errors.
        max_frame: u32,
    },
    /// Server's answer to a good `Hello`.
    Welcome {
        /// The session's token; present it in a later `Hello` to resume.
        token: SessionTokenBytes,
        /// Whether the token in `Hello` was accepted and its session resumed.
        resumed: bool,
        /// The largest frame body the server accepts.
        max_frame: u32,
    },
    /// Server's answer to a bad `Hello`; the server closes after sending it.
    Refused {
        /// What was wrong.
        reason: RefuseReason,
        /// A human-readable explanation.
        message: &'a str,
    },
    /// A call of a view.
    Call {
        /// Chosen by the client; the reply carries it back.
        id: u64,
        /// The view's registered name.
        view: &'a str,
        /// postcard bytes of the view's payload type.
        #[serde(with = "serde_bytes_ref")]
        payload: &'a [u8],
    },
    /// The answer to a call.
    Reply {
        /// The call's id.
        id: u64,
        /// postcard bytes of the view's reply, or an error.
        #[serde(borrow)]
        result: Result<&'a [u8], ErrorReply<'a>>,
    },
    /// A call from the server to a function the client registered.
    ReverseRequest {
        /// Chosen by the server; the reply carries it back.
        id: u64,
        /// The handler's name.
        name: &'a str,
        /// postcard bytes of the handler's payload.
        #[serde(with = "serde_bytes_ref")]
        payload: &'a [u8],
    },
    /// The client's answer to a reverse request.
    ReverseReply {
        /// The reverse request's id.
        id: u64,
        /// postcard bytes of the handler's reply, or an error.
        #[serde(borrow)]
        result: Result<&'a [u8], ErrorReply<'a>>,
    },
    /// Are you there?
    Ping {
        /// Echoed in the `Pong`.
        nonce: u64,
    },
    /// Yes.
    Pong {
        /// The `Ping`'s nonce.
        nonce: u64,
    },
    /// The sender is about to close the connection.
    Goodbye {
        /// Why.
        reason: &'a str,
    },
    /// The session's token changed (at a login or a logout): the old one no longer resumes it.
    /// Sent before anything else that follows the change on that connection (a login view's
    /// reply comes after it).
    Token {
        /// The token to present from now on.
        token: SessionTokenBytes,
    },
}

/// `&[u8]` through serde's bytes methods, so postcard writes a length and the raw bytes
/// (and borrows them back on decoding).
mod serde_bytes_ref {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<&'de [u8], D::Error> {
        <&'de [u8] as serde::Deserialize<'de>>::deserialize(deserializer)
    }
}

/// What went wrong with a call, as the caller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorCode {
    /// No view (or reverse handler) is registered under that name.
    UnknownView,
    /// The payload did not decode as the view's payload type.
    BadPayload,
    /// The view ran and returned an error.
    ViewFailed,
    /// The view panicked; the server carried on.
    Panicked,
    /// The server is shutting down and takes no new calls.
    ShuttingDown,
    /// The server could not encode the reply, or another fault of its own.
    Internal,
    /// The client has no handler for a reverse request.
    NoHandler,
    /// A message was over the peer's frame limit.
    TooLarge,
    /// The caller is over a rate limit of the server (calls per second of its session); the
    /// message says when to retry. The call did not run.
    Throttled,
    /// The view refused the call with an error of its own type (a view returning
    /// `Result<T, E>` with `E: Serialize`): the reply's `detail` holds postcard bytes of `E`.
    Rejected,
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            ErrorCode::UnknownView => "unknown view",
            ErrorCode::BadPayload => "bad payload",
            ErrorCode::ViewFailed => "view failed",
            ErrorCode::Panicked => "view panicked",
            ErrorCode::ShuttingDown => "server shutting down",
            ErrorCode::Internal => "internal server error",
            ErrorCode::NoHandler => "no handler",
            ErrorCode::TooLarge => "message too large",
            ErrorCode::Throttled => "throttled",
            ErrorCode::Rejected => "rejected by the view",
        };
        f.write_str(text)
    }
}

/// An error answer: a code a program can match on, a message for people, and for
/// [`ErrorCode::Rejected`] the view's own error as bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply<'a> {
    /// What kind of failure.
    pub code: ErrorCode,
    /// Details.
    pub message: &'a str,
    /// postcard bytes of the view's error type for [`ErrorCode::Rejected`]; empty otherwise.
    #[serde(with = "serde_bytes_ref")]
    pub detail: &'a [u8],
}

impl<'a> ErrorReply<'a> {
    /// An error with this code and message, and no detail.
    pub fn new(code: ErrorCode, message: &'a str) -> Self {
        ErrorReply {
            code,
            message,
            detail: &[],
        }
    }
}

/// Why a server refused a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The `Hello` did not start with the magic bytes.
    BadMagic,
    /// The client speaks another protocol version.
    UnsupportedVersion,
    /// The server is at one of its connection limits: which one, typed.
    ServerFull(Capacity),
    /// The server is shutting down.
    ShuttingDown,
    /// The first frame was not a `Hello`.
    Malformed,
}

impl std::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            RefuseReason::BadMagic => "bad magic",
            RefuseReason::UnsupportedVersion => "unsupported protocol version",
            RefuseReason::ServerFull(Capacity::Connections) => "server full",
            RefuseReason::ServerFull(Capacity::PeerConnections) => {
                "server full: too many connections from this address"
            }
            RefuseReason::ServerFull(Capacity::Handshakes) => {
                "server full: too many connections in their handshake"
            }
            RefuseReason::ServerFull(Capacity::PeerHandshakes) => {
                "server full: too many handshakes from this address"
            }
            RefuseReason::ShuttingDown => "server shutting down",
            RefuseReason::Malformed => "malformed handshake",
        };
        f.write_str(text)
    }
}

/// Which connection limit a [`RefuseReason::ServerFull`] refusal hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Capacity {
    /// Every connection the server serves at once is taken.
    Connections,
    /// This peer address (an IPv4 address, or an IPv6 prefix) has its maximum of connections.
    PeerConnections,
    /// Too many connections are still in their handshake (TLS, then `Hello`) server-wide.
    Handshakes,
    /// This peer address has its maximum of connections still in their handshake.
    PeerHandshakes,
}

impl<'a> Envelope<'a> {
    /// Decodes one frame body. Trailing bytes after the envelope are an error.
    pub fn decode(body: &'a [u8]) -> Result<Self, WireError> {
        if let Some(envelope) = decode_hot(body) {
            return Ok(envelope);
        }
        let (envelope, rest) = postcard::take_from_bytes(body).map_err(WireError::Decode)?;
        if !rest.is_empty() {
            return Err(WireError::Decode(postcard::Error::DeserializeBadEncoding));
        }
        Ok(envelope)
    }

    /// Encodes this envelope into a frame body.
    pub fn encode(&self) -> Result<Bytes, WireError> {
        match self.hot_parts() {
            Some((index, id, name, payload)) => {
                let mut out = Vec::with_capacity(direct_len(name, payload.len()));
                encode_direct(&mut out, index, id, name, [payload, &[]]);
                Ok(Bytes::from(out))
            }
            None => postcard::to_allocvec(self)
                .map(Bytes::from)
                .map_err(WireError::Encode),
        }
    }

    /// Appends this envelope as a whole frame (length prefix and body) to `buf`; returns the body's
    /// length.
    pub(crate) fn encode_frame_into(&self, buf: &mut bytes::BytesMut) -> Result<usize, WireError> {
        if let Some((index, id, name, payload)) = self.hot_parts() {
            return Hot {
                index,
                id,
                name,
                payload: [payload, &[]],
            }
            .encode_frame_into(buf);
        }
        let start = buf.len();
        buf.extend_from_slice(&[0; 4]);
        *buf = postcard::to_extend(self, std::mem::take(buf)).map_err(WireError::Encode)?;
        let body = buf.len() - start - 4;
        let prefix = u32::try_from(body)
            .map_err(|_| WireError::Encode(postcard::Error::SerializeBufferFull))?;
        buf[start..start + 4].copy_from_slice(&prefix.to_be_bytes());
        Ok(body)
    }

    /// Calls, replies and their reverse twins are the hot path: written directly, in postcard's
    /// bytes (a unit test holds them equal).
    fn hot_parts(&self) -> Option<(u8, u64, Option<&str>, &[u8])> {
        match self {
            Envelope::Call { id, view, payload } => Some((3, *id, Some(*view), *payload)),
            Envelope::Reply {
                id,
                result: Ok(payload),
            } => Some((4, *id, None, *payload)),
            Envelope::ReverseRequest { id, name, payload } => Some((5, *id, Some(*name), *payload)),
            Envelope::ReverseReply {
                id,
                result: Ok(payload),
            } => Some((6, *id, None, *payload)),
            _ => None,
        }
    }
}

/// What an [`Outbox`](super::Outbox) queues: a whole frame, appended to its buffer.
pub(crate) trait Framed {
    /// Appends the frame (length prefix and body) to `buf`; returns the body's length.
    fn encode_frame_into(&self, buf: &mut bytes::BytesMut) -> Result<usize, WireError>;
}

impl Framed for Envelope<'_> {
    fn encode_frame_into(&self, buf: &mut bytes::BytesMut) -> Result<usize, WireError> {
        Envelope::encode_frame_into(self, buf)
    }
}

/// A `Call`, a successful `Reply`, or their reverse twins, with the payload in two pieces that
/// follow each other on the wire: a byte string's length and its bytes go out without first being
/// copied together (see [`Encoded`](super::Encoded)). The same bytes as the [`Envelope`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hot<'a> {
    index: u8,
    id: u64,
    name: Option<&'a str>,
    payload: [&'a [u8]; 2],
}

impl<'a> Hot<'a> {
    /// `Envelope::Call` of the payload `payload[0]` then `payload[1]`.
    pub fn call(id: u64, view: &'a str, payload: [&'a [u8]; 2]) -> Self {
        Hot {
            index: 3,
            id,
            name: Some(view),
            payload,
        }
    }

    /// `Envelope::Reply` with `Ok` of the payload `payload[0]` then `payload[1]`.
    pub fn reply(id: u64, payload: [&'a [u8]; 2]) -> Self {
        Hot {
            index: 4,
            id,
            name: None,
            payload,
        }
    }
}

impl Framed for Hot<'_> {
    fn encode_frame_into(&self, buf: &mut bytes::BytesMut) -> Result<usize, WireError> {
        let Hot {
            index,
            id,
            name,
            payload: [first, second],
        } = *self;
        let payload_len = first.len() + second.len();
        let mut head = [0u8; HEAD_ROOM];
        if let Some(len) = write_head(&mut head, index, id, name, payload_len) {
            // The length prefix and everything before the payload made on the stack, then the
            // pieces copied in: no capacity check per byte.
            let body = len - 4 + payload_len;
            let prefix = u32::try_from(body)
                .map_err(|_| WireError::Encode(postcard::Error::SerializeBufferFull))?;
            head[..4].copy_from_slice(&prefix.to_be_bytes());
            buf.reserve(len + payload_len);
            buf.extend_from_slice(&head[..len]);
            buf.extend_from_slice(first);
            if !second.is_empty() {
                buf.extend_from_slice(second);
            }
            return Ok(body);
        }
        let start = buf.len();
        buf.extend_from_slice(&[0; 4]);
        buf.reserve(direct_len(name, payload_len));
        encode_direct(buf, index, id, name, [first, second]);
        let body = buf.len() - start - 4;
        let prefix = u32::try_from(body)
            .map_err(|_| WireError::Encode(postcard::Error::SerializeBufferFull))?;
        buf[start..start + 4].copy_from_slice(&prefix.to_be_bytes());
        Ok(body)
    }
}

/// Calls, successful replies and their reverse twins read directly: the same envelope postcard
/// would give, for the inputs this accepts; anything else (errors, other kinds, long varints,
/// bad input) is `None` and goes to postcard, which says what is wrong.
fn decode_hot(body: &[u8]) -> Option<Envelope<'_>> {
    let (&index, rest) = body.split_first()?;
    match index {
        3 | 5 => {
            let (id, name, payload) = request_parts(rest)?;
            let name = std::str::from_utf8(name).ok()?;
            Some(if index == 3 {
                Envelope::Call {
                    id,
                    view: name,
                    payload,
                }
            } else {
                Envelope::ReverseRequest { id, name, payload }
            })
        }
        4 | 6 => {
            let (id, rest) = take_varint(rest)?;
            let (&0, rest) = rest.split_first()? else {
                return None; // Err(..): postcard's
            };
            let (payload, rest) = take_bytes(rest)?;
            if !rest.is_empty() {
                return None;
            }
            Some(if index == 4 {
                Envelope::Reply {
                    id,
                    result: Ok(payload),
                }
            } else {
                Envelope::ReverseReply {
                    id,
                    result: Ok(payload),
                }
            })
        }
        _ => None,
    }
}

/// A `Call`'s id, view name and payload, the name as its bytes (not checked to be UTF-8: the
/// server looks the bytes up among its views' names, which are). `None` for anything that is not
/// a `Call` that [`decode_hot`] would read; [`Envelope::decode`] says what it is.
pub(crate) fn decode_call(body: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    match body.split_first()? {
        (3, rest) => request_parts(rest),
        _ => None,
    }
}

/// `id, name, payload` of a request, with nothing after them.
fn request_parts(bytes: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    let (id, rest) = take_varint(bytes)?;
    let (name, rest) = take_bytes(rest)?;
    let (payload, rest) = take_bytes(rest)?;
    rest.is_empty().then_some((id, name, payload))
}

/// A LEB128 varint of at most nine bytes (63 bits; longer ones are postcard's to judge).
fn take_varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    // One byte (every length under 128): most varints of the hot path.
    if let Some((&first, rest)) = bytes.split_first() {
        if first < 0x80 {
            return Some((u64::from(first), rest));
        }
    }
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(9).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

/// A varint length, then that many bytes.
fn take_bytes(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = take_varint(bytes)?;
    let len = usize::try_from(len).ok()?;
    (len <= rest.len()).then(|| rest.split_at(len))
}

/// An upper bound of the direct encoding's length.
fn direct_len(name: Option<&str>, payload_len: usize) -> usize {
    1 + 10 + name.map_or(1, |n| n.len() + 5) + 5 + payload_len
}

/// `index, id, name?, payload` for a request, or `index, id, Ok, payload` for a successful reply.
fn encode_direct(
    out: &mut impl bytes::BufMut,
    index: u8,
    id: u64,
    name: Option<&str>,
    [first, second]: [&[u8]; 2],
) {
    out.put_u8(index);
    put_varint(out, id);
    match name {
        Some(name) => {
            put_varint(out, name.len() as u64);
            out.put_slice(name.as_bytes());
        }
        None => out.put_u8(0), // Result::Ok
    }
    put_varint(out, (first.len() + second.len()) as u64);
    out.put_slice(first);
    out.put_slice(second);
}

/// The most bytes a frame's head takes: the length prefix, the index, the id, the name's length
/// and the name, the payload's length (varints of at most ten bytes).
const HEAD_ROOM: usize = 64;
/// The longest name whose frame head is made on the stack.
const NAME_IN_HEAD: usize = HEAD_ROOM - 4 - 1 - 10 - 10 - 10;

/// Writes a hot envelope's frame up to its payload into `head`, the first four bytes left for the
/// length prefix; returns its length, or `None` for a name too long for [`HEAD_ROOM`].
fn write_head(
    head: &mut [u8; HEAD_ROOM],
    index: u8,
    id: u64,
    name: Option<&str>,
    payload_len: usize,
) -> Option<usize> {
    if name.is_some_and(|name| name.len() > NAME_IN_HEAD) {
        return None;
    }
    head[4] = index;
    let mut at = 5 + write_varint(&mut head[5..], id);
    match name {
        Some(name) => {
            at += write_varint(&mut head[at..], name.len() as u64);
            head[at..at + name.len()].copy_from_slice(name.as_bytes());
            at += name.len();
        }
        None => at += 1, // Result::Ok, a zero already there
    }
    at += write_varint(&mut head[at..], payload_len as u64);
    Some(at)
}

/// Writes `value` as a varint at the start of `out` (at least ten bytes long); returns its length.
pub(super) fn write_varint(out: &mut [u8], mut value: u64) -> usize {
    let mut at = 0;
    while value >= 0x80 {
        out[at] = (value as u8) | 0x80;
        value >>= 7;
        at += 1;
    }
    out[at] = value as u8;
    at + 1
}

/// [`write_varint`] into a buffer. Not built on it: going through a stack array measured ~46
/// instructions a call more (callgrind), on the payload of every call and reply.
fn put_varint(out: &mut impl bytes::BufMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Buffers kept between calls, per thread; a larger one is given back to the allocator.
const KEEP: usize = 64 * 1024;
/// How many spare buffers a thread keeps.
const SPARES: usize = 8;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Serializes a value with postcard. Into a spare buffer given back by [`recycle`] on this thread
/// when there is one (no allocation, no copy: a reply queued where it was made); otherwise
/// through a per-thread scratch buffer into a right-sized one.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    if let Some(buffer) = spare() {
        return postcard::to_extend(value, buffer);
    }
    SCRATCH.with(|scratch| {
        let Ok(mut scratch) = scratch.try_borrow_mut() else {
            // Re-entered from inside a Serialize impl: no scratch to share.
            return postcard::to_allocvec(value);
        };
        scratch.clear();
        let buffer = postcard::to_extend(value, std::mem::take(&mut *scratch))?;
        let out = buffer.to_vec();
        if buffer.capacity() <= KEEP {
            *scratch = buffer;
        }
        Ok(out)
    })
}

/// A byte string as postcard writes it (a varint length, then the bytes), into a spare buffer
/// when this thread has one; given back with [`recycle`] like [`to_vec`]'s.
pub(super) fn byte_string_to_vec(bytes: &[u8]) -> Vec<u8> {
    let mut out = spare().unwrap_or_default();
    out.reserve(10 + bytes.len());
    put_varint(&mut out, bytes.len() as u64);
    out.extend_from_slice(bytes);
    out
}

/// A buffer given back on this thread, if there is one.
fn spare() -> Option<Vec<u8>> {
    SPARE.with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.pop()))
}

/// Gives a buffer made by [`to_vec`] back once its bytes are queued, for this thread's next one.
pub(crate) fn recycle(mut buffer: Vec<u8>) {
    if buffer.capacity() == 0 || buffer.capacity() > KEEP {
        return;
    }
    buffer.clear();
    SPARE.with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut() {
            if spare.len() < SPARES {
                spare.push(buffer);
            }
        }
    });
}

/// The part of `frame` that `inner` (a slice borrowed from it) covers, without copying.
///
/// What [`detach`] hands on for a large part.
fn subslice(frame: &Bytes, inner: &[u8]) -> Bytes {
    if inner.is_empty() {
        return Bytes::new();
    }
    frame.slice_ref(inner)
}

/// The largest part of a frame [`detach`] copies rather than shares.
const DETACH_COPY_MAX: usize = 4 * 1024;

/// The part of `frame` that `inner` covers, for a value handed to another task (a reply to its
/// caller, a reverse reply to its waiter): a small part is copied, so the reader's buffer is not
/// held until that task runs and the next read reuses it instead of allocating a new one.
pub(crate) fn detach(frame: &Bytes, inner: &[u8]) -> Bytes {
    if inner.len() <= DETACH_COPY_MAX {
        return Bytes::copy_from_slice(inner);
    }
    subslice(frame, inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(envelope: Envelope<'_>) {
        let bytes = envelope.encode().unwrap();
        assert_eq!(Envelope::decode(&bytes).unwrap(), envelope);
    }

    #[test]
    fn every_variant_round_trips() {
        let token = SessionTokenBytes {
            id: [7; 16],
            mac: [9; 32],
        };
        round_trip(Envelope::Hello {
            magic: crate::wire::MAGIC,
            version: 1,
            resume: Some(token),
            max_frame: 1 << 24,
        });
        round_trip(Envelope::Welcome {
            token,
            resumed: true,
            max_frame: 1 << 24,
        });
        round_trip(Envelope::Refused {
            reason: RefuseReason::ServerFull(Capacity::Connections),
            message: "full",
        });
        round_trip(Envelope::Call {
            id: u64::MAX,
            view: "signup",
            payload: b"\x00\x01",
        });
        round_trip(Envelope::Reply {
            id: 3,
            result: Ok(b"ok"),
        });
        round_trip(Envelope::Reply {
            id: 3,
            result: Err(ErrorReply::new(ErrorCode::Panicked, "boom")),
        });
        round_trip(Envelope::ReverseRequest {
            id: 1,
            name: "receive_message",
            payload: b"",
        });
        round_trip(Envelope::ReverseReply {
            id: 1,
            result: Ok(b""),
        });
        round_trip(Envelope::Ping { nonce: 5 });
        round_trip(Envelope::Pong { nonce: 5 });
        round_trip(Envelope::Goodbye { reason: "bye" });
        round_trip(Envelope::Token { token });
        for capacity in [
            Capacity::Connections,
            Capacity::PeerConnections,
            Capacity::Handshakes,
            Capacity::PeerHandshakes,
        ] {
            round_trip(Envelope::Refused {
                reason: RefuseReason::ServerFull(capacity),
                message: "full",
            });
        }
    }

    /// The direct encoding of the hot envelopes is byte for byte postcard's, with names short
    /// and long enough for the frame's head to be made on the stack or not.
    #[test]
    fn direct_encoding_is_postcard() {
        let names: Vec<String> = [0, 1, NAME_IN_HEAD, NAME_IN_HEAD + 1, 200]
            .iter()
            .map(|&n| "v".repeat(n))
            .collect();
        for len in [0usize, 1, 127, 128, 300, 16_384, 70_000] {
            let payload = vec![0xa5u8; len];
            for (id, name) in [0u64, 1, 127, 128, 1 << 40, u64::MAX]
                .into_iter()
                .flat_map(|id| names.iter().map(move |name| (id, name.as_str())))
            {
                let cases = [
                    Envelope::Call {
                        id,
                        view: name,
                        payload: &payload,
                    },
                    Envelope::Reply {
                        id,
                        result: Ok(&payload),
                    },
                    Envelope::ReverseRequest {
                        id,
                        name,
                        payload: &payload,
                    },
                    Envelope::ReverseReply {
                        id,
                        result: Ok(&payload),
                    },
                ];
                for envelope in cases {
                    let direct = envelope.encode().unwrap();
                    let serde = postcard::to_allocvec(&envelope).unwrap();
                    assert_eq!(&direct[..], &serde[..], "{len} bytes, id {id}");
                    let mut framed = bytes::BytesMut::from(&b"xy"[..]);
                    let body = envelope.encode_frame_into(&mut framed).unwrap();
                    assert_eq!(body, serde.len());
                    assert_eq!(&framed[2..6], &(serde.len() as u32).to_be_bytes());
                    assert_eq!(&framed[6..], &serde[..]);
                }
            }
        }
    }

    #[test]
    fn frames_of_other_envelopes_are_postcard_behind_a_length() {
        let envelope = Envelope::Goodbye { reason: "bye" };
        let mut framed = bytes::BytesMut::new();
        let body = envelope.encode_frame_into(&mut framed).unwrap();
        let serde = postcard::to_allocvec(&envelope).unwrap();
        assert_eq!(body, serde.len());
        assert_eq!(&framed[4..], &serde[..]);
    }

    #[test]
    fn scratch_encoding_matches_postcard() {
        let value = (String::from("héllo"), vec![1u32, 300, 70_000], Some(-5i64));
        assert_eq!(
            to_vec(&value).unwrap(),
            postcard::to_allocvec(&value).unwrap()
        );
        let big = vec![3u8; 200_000];
        assert_eq!(to_vec(&big).unwrap(), postcard::to_allocvec(&big).unwrap());
        assert_eq!(to_vec(&()).unwrap(), Vec::<u8>::new());
    }

    /// The worked example in the module docs is what the code produces.
    #[test]
    fn documented_example_bytes() {
        let payload = postcard::to_allocvec(&(2u32, 3u32)).unwrap();
        let body = Envelope::Call {
            id: 1,
            view: "add",
            payload: &payload,
        }
        .encode()
        .unwrap();
        assert_eq!(
            &body[..],
            &[0x03, 0x01, 0x03, b'a', b'd', b'd', 0x02, 0x02, 0x03]
        );
    }

    #[test]
    fn hello_layout_is_index_magic_version_option() {
        let body = Envelope::Hello {
            magic: crate::wire::MAGIC,
            version: 3,
            resume: None,
            max_frame: 300,
        }
        .encode()
        .unwrap();
        assert_eq!(
            &body[..],
            &[0x00, b'F', b'L', b'X', b'N', 0x03, 0x00, 0xAC, 0x02]
        );
    }

    /// The documented bytes of what protocol version 2 added.
    #[test]
    fn version_two_additions_are_laid_out_as_documented() {
        let token = SessionTokenBytes {
            id: [1; 16],
            mac: [2; 32],
        };
        let body = Envelope::Token { token }.encode().unwrap();
        assert_eq!(body[0], 10);
        assert_eq!(&body[1..17], &[1; 16]);
        assert_eq!(&body[17..], &[2; 32]);
        let refused = Envelope::Refused {
            reason: RefuseReason::ServerFull(Capacity::PeerConnections),
            message: "x",
        }
        .encode()
        .unwrap();
        assert_eq!(&refused[..], &[0x02, 0x02, 0x01, 0x01, b'x']);
        let throttled = Envelope::Reply {
            id: 5,
            result: Err(ErrorReply::new(ErrorCode::Throttled, "")),
        }
        .encode()
        .unwrap();
        assert_eq!(&throttled[..], &[0x04, 0x05, 0x01, 0x08, 0x00, 0x00]);
    }

    /// The documented bytes of what protocol version 3 added: the error's detail, and the view's
    /// own error (`Rejected`).
    #[test]
    fn version_three_additions_are_laid_out_as_documented() {
        let rejected = Envelope::Reply {
            id: 5,
            result: Err(ErrorReply {
                code: ErrorCode::Rejected,
                message: "x",
                detail: &[0x01, 0x07],
            }),
        }
        .encode()
        .unwrap();
        assert_eq!(
            &rejected[..],
            &[0x04, 0x05, 0x01, 0x09, 0x01, b'x', 0x02, 0x01, 0x07]
        );
        assert_eq!(
            Envelope::decode(&rejected).unwrap(),
            Envelope::Reply {
                id: 5,
                result: Err(ErrorReply {
                    code: ErrorCode::Rejected,
                    message: "x",
                    detail: &[0x01, 0x07],
                }),
            }
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Envelope::decode(&[0xff, 0xff, 0xff]).is_err());
        assert!(Envelope::decode(&[]).is_err());
        assert!(Envelope::decode(&[0x03, 0x01, 0x10, b'a']).is_err());
        // trailing bytes after a whole envelope
        assert!(Envelope::decode(&[0x07, 0x01, 0x00]).is_err());
    }

    #[test]
    fn subslice_shares_the_frame() {
        let frame = Bytes::from_static(b"hello world");
        let inner = &frame[6..];
        assert_eq!(&subslice(&frame, inner)[..], b"world");
    }

    #[test]
    fn detach_copies_small_parts_and_shares_large_ones() {
        let within = |part: &Bytes, frame: &Bytes| frame.as_ptr_range().contains(&part.as_ptr());
        let frame = Bytes::from(vec![7u8; 3 * DETACH_COPY_MAX]);
        let small = detach(&frame, &frame[10..10 + DETACH_COPY_MAX]);
        assert_eq!(&small[..], &frame[10..10 + DETACH_COPY_MAX]);
        assert!(
            !within(&small, &frame),
            "a small part holds no share of the frame"
        );
        let large = detach(&frame, &frame[10..10 + DETACH_COPY_MAX + 1]);
        assert_eq!(&large[..], &frame[10..10 + DETACH_COPY_MAX + 1]);
        assert!(within(&large, &frame), "a large part is not copied");
    }
}
