//! The wire protocol: frames, the message envelope, the protocol version and its limits.
//!
//! This module knows nothing about views, sessions or servers; it only turns messages into bytes and
//! back. Everything above it (`server`, `client`) speaks in [`Envelope`]s.
//!
//! # The protocol, byte by byte
//!
//! A client opens one TCP connection and keeps it. Both directions carry a stream of **frames**; each
//! frame carries one **envelope**.
//!
//! ## Frames
//!
//! ```text
//! +---------------------------+-----------------------------+
//! | length: u32, big-endian   | body: `length` bytes        |
//! +---------------------------+-----------------------------+
//! ```
//!
//! The length counts the body only. A peer refuses a frame whose length is over its maximum
//! ([`DEFAULT_MAX_FRAME`], 16 MiB, unless configured otherwise). Each side announces its maximum in
//! the handshake (`Hello.max_frame`, `Welcome.max_frame`) and never sends the other a larger frame:
//! a call too large is refused by the client before sending, a reply too large becomes an error
//! reply with the code `TooLarge`. The server answers an oversized frame with [`Envelope::Goodbye`]
//! and closes.
//!
//! ## Bodies: postcard
//!
//! A body is one [`Envelope`] encoded with [postcard](https://postcard.jamesmunns.com/wire-format)
//! (version 1), which needs only these rules:
//!
//! * **varint**: an unsigned integer in LEB128: 7 bits per byte, least significant group first, the high
//!   bit set on every byte but the last (`300` is `AC 02`). `u16`, `u32` and `u64` are varints (at most
//!   3, 5 and 10 bytes).
//! * **enum**: the variant's index (starting at 0, in the order listed below) as a varint, then the
//!   variant's fields in order. A unit variant is its index alone.
//! * **bool**: one byte, `00` or `01`. A fixed array `[u8; N]`: exactly `N` bytes, no length.
//! * **bytes** and **string**: a varint length, then that many bytes (strings are UTF-8).
//! * **Option**: `00` for none; `01` followed by the value.
//! * **Result**: an enum, `Ok` = 0, `Err` = 1.
//!
//! ## Envelopes
//!
//! | index | variant | fields, in order | sent by |
//! |---|---|---|---|
//! | 0 | `Hello` | magic `[u8; 4]` = `b"FLXN"`; version `u16` = [`PROTOCOL_VERSION`]; resume `Option<SessionToken>`; max_frame `u32` | client, first frame |
//! | 1 | `Welcome` | token `SessionToken`; resumed `bool`; max_frame `u32` | server, answer to `Hello` |
//! | 2 | `Refused` | reason [`RefuseReason`]; message string | server, instead of `Welcome`, then closes |
//! | 3 | `Call` | id `u64`; view string; payload bytes | client |
//! | 4 | `Reply` | id `u64`; result `Result<bytes, ErrorReply>` | server, answers `Call` with that id |
//! | 5 | `ReverseRequest` | id `u64`; name string; payload bytes | server |
//! | 6 | `ReverseReply` | id `u64`; result `Result<bytes, ErrorReply>` | client, answers `ReverseRequest` |
//! | 7 | `Ping` | nonce `u64` | either side |
//! | 8 | `Pong` | nonce `u64` | either side, echoes the `Ping`'s nonce |
//! | 9 | `Goodbye` | reason string | either side, just before it closes |
//! | 10 | `Token` | token `SessionToken` | server: the session's token changed (login, logout) |
//!
//! A `SessionToken` is 16 bytes of session id followed by a 32-byte MAC (48 raw bytes, no length).
//! An `ErrorReply` is an [`ErrorCode`] (an enum: 0 `UnknownView`, 1 `BadPayload`, 2 `ViewFailed`,
//! 3 `Panicked`, 4 `ShuttingDown`, 5 `Internal`, 6 `NoHandler`, 7 `TooLarge`, 8 `Throttled`,
//! 9 `Rejected`), a message string, and detail bytes: for `Rejected` (the view refused the call
//! with an error of its own type) postcard bytes of that type, empty for every other code. So
//! `Reply { id: 5, result: Err(ErrorReply { code: Throttled, message: "", detail: [] }) }` is the
//! body `04 05 01 08 00 00`. `ViewFailed` carries a message the view chose for its client;
//! `Internal` and `Panicked` carry a generic message with an incident id that the server's log
//! holds with the full error. A [`RefuseReason`] is an enum: 0 `BadMagic`,
//! 1 `UnsupportedVersion`, 2 `ServerFull` followed by a [`Capacity`] (an enum: 0 `Connections`,
//! 1 `PeerConnections`, 2 `Handshakes`, 3 `PeerHandshakes`: which limit was hit), 3 `ShuttingDown`,
//! 4 `Malformed`. For example `Refused { reason: ServerFull(PeerConnections), message: "x" }` is
//! the body `02 02 01 01 78`.
//!
//! Payloads are themselves postcard bytes of the view's own payload and reply types; a view that takes
//! no payload takes `()`, whose encoding is empty.
//!
//! ## The conversation
//!
//! 1. The client sends `Hello` within the server's handshake timeout (10 s by default, for the TLS
//!    handshake and the `Hello` together). The first frame may be at most
//!    [`HANDSHAKE_MAX_FRAME`] (1 KiB) long; the larger limit applies only once the handshake is
//!    done. To resume a session after a reconnect the client puts the token it was given last in
//!    `resume`.
//! 2. The server answers `Welcome` with the session's token (the same one when resumed; a fresh session
//!    when the token is forged, unknown, rotated away or expired, with `resumed = false`), or
//!    `Refused` and closes. The server reads the magic (bytes 1-4) and the version (the varint
//!    after them) before anything else, so a client of another version is refused with
//!    `UnsupportedVersion` whatever the rest of its `Hello` holds. Anything but a well-formed
//!    `Hello` as the first frame is refused with `Malformed`. A server at one of its connection
//!    limits may send `Refused { ServerFull(..) }` as soon as the connection opens, before the
//!    `Hello` (a TLS server does so inside TLS).
//! 3. The client sends `Call`s with ids of its choosing (unique among its calls in flight); the server
//!    answers each with a `Reply` carrying the same id, in any order: calls run concurrently. The server
//!    stops reading while the connection has its maximum of calls in flight (64 by default).
//! 4. The server may send `ReverseRequest`s with ids of its own numbering; the client answers with
//!    `ReverseReply` (a client with no handler for the name answers `Err` with `NoHandler`).
//! 5. A server that has heard nothing for half its idle timeout sends `Ping`; a peer answers every `Ping`
//!    with a `Pong` carrying the same nonce. A connection silent for the whole idle timeout is closed.
//! 6. When the session's user changes (a view logged the session in or out), the server sends
//!    `Token` with the session's new token on that connection, before the view's `Reply`; the old
//!    token no longer resumes the session (so a token someone learned before a login is useless
//!    after it). A login also closes the session's *other* connections. The client keeps the
//!    newest token for its next `Hello` and its cloud requests.
//! 7. On shutdown the server stops reading calls, lets those in flight finish, sends `Goodbye` and closes.
//!
//! A value inside a payload may nest at most [`MAX_DEPTH`] levels (each sequence, map, tuple,
//! struct, enum, option or newtype is one); a deeper one is answered `BadPayload`. A server may
//! answer a call `Throttled` (it did not run) when its session is over a rate limit.
//!
//! Examples: `Hello { magic: b"FLXN", version: 3, resume: None, max_frame: 300 }` is the body
//! `00 46 4C 58 4E 03 00 AC 02`; `Call { id: 1, view: "add", payload: postcard((2u32, 3u32)) }` is the body
//! `03 01 03 61 64 64 02 02 03`, framed as `00 00 00 09 03 01 03 61 64 64 02 02 03`.

mod budget;
mod byte_string;
mod depth;
mod envelope;
mod error;
mod frame;
mod outbox;
#[cfg(test)]
mod proptests;
mod reader;
mod transport;

pub(crate) use budget::{Budget, Reservation};
pub(crate) use byte_string::{decode, decode_owned, encode, encode_owned, encode_ref, Encoded};
pub(crate) use depth::from_bytes_exact;
pub use depth::{DecodeError, MAX_DEPTH};
pub(crate) use envelope::{decode_call, detach, recycle, to_vec, Framed, Hot};
pub use envelope::{Capacity, Envelope, ErrorCode, ErrorReply, RefuseReason, SessionTokenBytes};
pub use error::WireError;
pub use frame::{codec, FrameCodec};
pub(crate) use outbox::{DirectWrite, Outbox, SendError, SharedWriteHalf};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use reader::Chunked;
pub(crate) use reader::{Frame, FrameReader};
pub(crate) use transport::{BoxRead, BoxWrite, Halves, Stream};

/// The four bytes every `Hello` starts with.
pub const MAGIC: [u8; 4] = *b"FLXN";

/// The protocol version this crate speaks. A server refuses a `Hello` with any other.
pub const PROTOCOL_VERSION: u16 = 3;

/// The smallest maximum frame a peer may announce: room for any error reply's envelope.
pub const MIN_MAX_FRAME: usize = 64;

/// The largest first frame (the `Hello`) a server reads: a `Hello` is about 60 bytes, so nobody
/// gets to make the server hold megabytes before saying who they are.
pub const HANDSHAKE_MAX_FRAME: usize = 1024;

/// The default maximum frame body, 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;
