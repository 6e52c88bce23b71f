//! Entry points for the fuzz targets in `fuzz/`: one function per target, each taking the
//! fuzzer's bytes, driving the code a server runs on what a peer sends, and panicking when an
//! invariant breaks. Compiled only with the `fuzzing` feature; not a public API.
//!
//! The functions panic on purpose (that is how a fuzzer learns of a bug); nothing else in the
//! crate calls them.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::auth::SessionToken;
use crate::cloud::protocol::{self, Request, Response, MAX_RESPONSE};
use crate::cloud::{CloudError, CloudPath, GrantKey, PathError, MAX_PATH};
use crate::server::{check_hello, HelloOk};
use crate::wire::{self, Envelope, RefuseReason, SessionTokenBytes};

/// Frame decoder plus envelope: splits `data` into frames as a connection's reader does (under
/// the smallest limit a peer may announce, and under the default one) and decodes each frame's
/// body as an [`Envelope`]. A frame is never over the limit and re-frames to itself; an envelope
/// that decodes re-encodes (both ways the crate encodes) to bytes that decode to the same value
/// and are no longer than the body it came from.
pub fn frame_envelope(data: &[u8]) {
    for max in [wire::MIN_MAX_FRAME, wire::DEFAULT_MAX_FRAME] {
        let mut codec = wire::codec(max);
        let mut buf = BytesMut::from(data);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= max, "a frame of {} over {max}", frame.len());
                    let frame = frame.freeze();
                    assert_eq!(reframe(&frame, max), frame, "re-framed frame differs");
                    envelope_round_trip(&frame, max);
                }
                Ok(None) => {
                    // The end of the stream: what is left is a partial frame or nothing.
                    let _ = codec.decode_eof(&mut buf);
                    break;
                }
                Err(_) => break,
            }
        }
    }
    // The bytes as one body, whatever their length.
    envelope_round_trip(data, usize::MAX);
}

/// `body` framed and read back by a codec with limit `max`.
fn reframe(body: &Bytes, max: usize) -> Bytes {
    let mut codec = wire::codec(max);
    let mut out = BytesMut::new();
    if let Err(err) = codec.encode(body.clone(), &mut out) {
        panic!("a frame that was read cannot be written: {err}");
    }
    match codec.decode(&mut out) {
        Ok(Some(frame)) if out.is_empty() => frame.freeze(),
        other => panic!("a written frame does not read back: {other:?}"),
    }
}

fn envelope_round_trip(body: &[u8], max: usize) {
    let Ok(envelope) = Envelope::decode(body) else {
        return;
    };
    let encoded = match envelope.encode() {
        Ok(encoded) => encoded,
        Err(err) => panic!("{envelope:?} decoded but does not encode: {err}"),
    };
    assert!(
        encoded.len() <= body.len(),
        "{envelope:?} re-encodes to {} bytes, from {}",
        encoded.len(),
        body.len()
    );
    match Envelope::decode(&encoded) {
        Ok(again) => assert_eq!(again, envelope, "re-encoded envelope decodes differently"),
        Err(err) => panic!("{envelope:?} re-encoded does not decode: {err}"),
    }
    // The writer's path: length prefix and body in one buffer.
    let mut framed = BytesMut::new();
    match envelope.encode_frame_into(&mut framed) {
        Ok(len) => assert_eq!(len, encoded.len(), "encode_frame_into's body length"),
        Err(err) => panic!("{envelope:?} does not frame: {err}"),
    }
    assert_eq!(&framed[4..], &encoded[..], "encode_frame_into's body");
    if encoded.len() <= max {
        match wire::codec(max).decode(&mut framed) {
            Ok(Some(frame)) => assert_eq!(&frame[..], &encoded[..], "framed envelope reads back"),
            other => panic!("a framed envelope does not read back: {other:?}"),
        }
    }
}

/// The server's handshake decision (`check_hello`, what `handshake()` runs on the first
/// frame), on the first frame read from `data` as the server reads it and on `data` as a body.
/// A Hello taken is a real Hello of this version with a usable `max_frame`; a refusal encodes
/// as the `Refused` the server sends, and fits any frame limit a client may announce.
pub fn handshake(data: &[u8]) {
    // The server reads the first frame under the handshake's small limit.
    let mut codec = wire::codec(wire::HANDSHAKE_MAX_FRAME);
    let mut buf = BytesMut::from(data);
    if let Ok(Some(first)) = codec.decode(&mut buf) {
        hello(&first);
    }
    hello(data);
}

fn hello(frame: &[u8]) {
    match check_hello(frame) {
        Ok(HelloOk { resume, max_frame }) => {
            assert!(
                max_frame as usize >= wire::MIN_MAX_FRAME,
                "max_frame {max_frame}"
            );
            assert!(
                matches!(
                    Envelope::decode(frame),
                    Ok(Envelope::Hello { magic, version, .. })
                        if magic == wire::MAGIC && version == wire::PROTOCOL_VERSION
                ),
                "taken but not a good Hello"
            );
            if let Some(token) = resume {
                assert_eq!(SessionToken::from_wire(token).to_wire(), token);
            }
        }
        Err((reason, message)) => {
            let refused = Envelope::Refused {
                reason,
                message: &message,
            };
            let body = match refused.encode() {
                Ok(body) => body,
                Err(err) => panic!("the refusal does not encode: {err}"),
            };
            match Envelope::decode(&body) {
                Ok(back) => assert_eq!(back, refused, "the refusal decodes differently"),
                Err(err) => panic!("the refusal does not decode: {err}"),
            }
            assert!(
                !matches!(
                    reason,
                    RefuseReason::ServerFull(_) | RefuseReason::ShuttingDown
                ),
                "{reason:?} is not a handshake decision"
            );
            assert!(
                body.len() <= wire::MIN_MAX_FRAME,
                "a refusal of {} bytes is over the smallest frame limit: {message}",
                body.len()
            );
        }
    }
}

/// The cloud endpoint's request header: `protocol::decode_request` (the decoding and the
/// magic and version checks the endpoint runs on every request frame), then what it does first
/// with a request: parse its path with [`CloudPath::parse`] and check its grant. A refused request
/// becomes a `Failed` response that encodes within the response limit; a decoded request
/// re-encodes to bytes that decode to the same request.
pub fn cloud_request(data: &[u8]) {
    let (session, request) = match protocol::decode_request(data) {
        Ok(pair) => pair,
        Err(message) => {
            let error = CloudError::BadRequest(message);
            let response = Response::Failed {
                code: error.code(),
                message: error.to_string(),
            };
            match postcard::to_allocvec(&response) {
                Ok(body) => assert!(body.len() <= MAX_RESPONSE),
                Err(err) => panic!("a Failed response does not encode: {err}"),
            }
            return;
        }
    };
    let _ = SessionToken::from_wire(session);
    let operation = request.operation();
    let raw = request.path();
    let path = CloudPath::parse(raw);
    check_path(raw, &path);
    if let Ok(path) = path {
        // A key nothing was signed with: the check runs to the signature and stops there.
        let key = GrantKey::from_private_key(b"fuzzing: a key no grant was signed with");
        assert!(key.verify(request.grant(), operation, &path).is_err());
    }
    // Stable under re-encoding (the request types have no `PartialEq`: compare their bytes).
    let encoded = encode_request(session, request);
    assert!(
        encoded.len() <= data.len(),
        "a request grows when re-encoded"
    );
    match protocol::decode_request(&encoded) {
        Ok((again, request)) => {
            assert_eq!(again, session);
            assert_eq!(
                encode_request(session, request),
                encoded,
                "re-encodes differently"
            );
        }
        Err(err) => panic!("a re-encoded request does not decode: {err}"),
    }
}

fn encode_request(session: SessionTokenBytes, request: Request) -> Vec<u8> {
    let frame = protocol::RequestFrame {
        magic: protocol::MAGIC,
        version: protocol::VERSION,
        session,
        request,
    };
    match postcard::to_allocvec(&frame) {
        Ok(encoded) => encoded,
        Err(err) => panic!("a decoded request does not encode: {err}"),
    }
}

/// Path normalization: [`CloudPath::parse`] on `data` as UTF-8 (other bytes are skipped), split
/// at the first newline into two paths. A parsed path has no `..`, `.`, empty or reserved
/// component, no leading `/`, backslash, NUL or control character; it is the raw path's
/// non-empty components joined by `/`; it parses to itself; and its `owner`, `parent` and
/// `is_within` agree with its components.
pub fn cloud_path(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (first, second) = text.split_once('\n').unwrap_or((text, ""));
    let a = CloudPath::parse(first);
    check_path(first, &a);
    let b = CloudPath::parse(second);
    check_path(second, &b);
    if let (Ok(a), Ok(b)) = (a, b) {
        let (ca, cb) = (components(&a), components(&b));
        assert_eq!(
            a.is_within(&b),
            ca.len() >= cb.len() && ca[..cb.len()] == cb[..],
            "is_within({a}, {b})"
        );
        assert_eq!(
            b.is_within(&a),
            cb.len() >= ca.len() && cb[..ca.len()] == ca[..],
            "is_within({b}, {a})"
        );
        assert_eq!(a == b, a.is_within(&b) && b.is_within(&a));
    }
}

fn components(path: &CloudPath) -> Vec<&str> {
    path.as_str().split('/').collect()
}

fn check_path(raw: &str, parsed: &Result<CloudPath, PathError>) {
    let path = match parsed {
        Ok(path) => path,
        Err(err) => {
            let _ = err.to_string();
            if raw.len() <= MAX_PATH
                && !raw.starts_with('/')
                && raw.as_bytes().get(1) != Some(&b':')
                && raw.split('/').all(acceptable_component)
            {
                assert_eq!(err, &PathError::Empty, "{raw:?} refused: {err}");
            }
            if *err == PathError::Empty {
                assert!(raw.split('/').all(str::is_empty), "{raw:?} is not empty");
            }
            return;
        }
    };
    let text = path.as_str();
    assert_eq!(path.to_string(), text);
    assert!(!text.is_empty() && text.len() <= raw.len() && text.len() <= MAX_PATH);
    assert!(!text.starts_with('/'), "{text:?}");
    assert!(!text.contains('\\') && !text.contains('\0'), "{text:?}");
    let parts = components(path);
    for part in &parts {
        assert!(
            !part.is_empty() && acceptable_component(part),
            "{text:?} has the component {part:?}"
        );
    }
    let raw_parts: Vec<&str> = raw.split('/').filter(|p| !p.is_empty()).collect();
    assert_eq!(parts, raw_parts, "{raw:?} normalized to {text:?}");
    assert_eq!(CloudPath::parse(text).as_ref(), Ok(path), "not idempotent");
    assert!(path.is_within(path));

    let owner = path.owner();
    assert_eq!(owner, parts[0]);
    match CloudPath::parse(owner) {
        Ok(root) => assert!(path.is_within(&root), "{text:?} not within its owner"),
        Err(err) => panic!("{text:?}'s owner {owner:?} does not parse: {err}"),
    }
    match path.parent() {
        Some(parent) => {
            assert_eq!(components(&parent), parts[..parts.len() - 1]);
            assert!(path.is_within(&parent) && !parent.is_within(path));
            assert_eq!(parent.owner(), owner);
            assert_eq!(CloudPath::parse(parent.as_str()).as_ref(), Ok(&parent));
        }
        None => assert_eq!(parts.len(), 1, "{text:?} has no parent"),
    }
}

/// A component `parse` keeps (or an empty one, which it drops).
fn acceptable_component(part: &str) -> bool {
    part != ".."
        && part != "."
        && !part.starts_with(".fluxon-")
        && !part.contains(['\\', '\0'])
        && !part.chars().any(char::is_control)
}

/// A recursive payload type, as a view may take: what the depth limit is for.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
enum Nested {
    Leaf(u8),
    List(Vec<Nested>),
    Boxed(Box<Nested>),
    Maybe(Option<Box<Nested>>),
    Map(std::collections::BTreeMap<u8, Nested>),
    Pair(Box<(Nested, Nested)>),
}

/// Dropped without recursing (a value within the limit is shallow anyway; this keeps the check
/// honest about what the limit promises rather than about the stack).
fn drop_flat(value: Nested) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Nested::Leaf(_) | Nested::Maybe(None) => {}
            Nested::List(items) => stack.extend(items),
            Nested::Boxed(inner) | Nested::Maybe(Some(inner)) => stack.push(*inner),
            Nested::Map(map) => stack.extend(map.into_values()),
            Nested::Pair(pair) => {
                let (a, b) = *pair;
                stack.push(a);
                stack.push(b);
            }
        }
    }
}

/// The depth-limited decoder every peer's payload goes through, on a recursive type: whatever the
/// bytes, it returns (never overflows the stack); what it accepts nests at most
/// [`wire::MAX_DEPTH`] levels and re-encodes to bytes no longer than it came from that decode to
/// the same value.
pub fn payload_depth(data: &[u8]) {
    let Ok(value) = wire::from_bytes_exact::<Nested>(data) else {
        return;
    };
    let encoded = match postcard::to_allocvec(&value) {
        Ok(encoded) => encoded,
        Err(err) => panic!("a decoded value does not encode: {err}"),
    };
    assert!(encoded.len() <= data.len(), "grew when re-encoded");
    match wire::from_bytes_exact::<Nested>(&encoded) {
        Ok(again) => {
            assert_eq!(again, value, "decodes differently after re-encoding");
            drop_flat(again);
        }
        Err(err) => panic!("a re-encoded value does not decode: {err}"),
    }
    drop_flat(value);
}

/// The server's frame reader (frames over the allowance paid for from a budget before their body
/// is read), fed `data` in reads of a size the first byte chooses: it yields exactly the frames
/// tokio-util's codec finds in the same bytes, in order, then ends (cleanly, or with an error
/// where the codec also stops), and every byte it took from the budget comes back.
pub fn frame_reader(data: &[u8]) {
    let Some((&knob, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(knob % 64) + 1;
    let allowance = 64 + usize::from(knob / 64) * 100;
    let max = 4096;
    let mut expected = Vec::new();
    let mut codec = wire::codec(max);
    let mut buf = BytesMut::from(data);
    // The codec takes a frame's head out of the buffer before its body is there, so "nothing left
    // in the buffer" does not mean "ended between frames": count what whole frames covered.
    let mut covered = 0;
    let codec_ends_cleanly = loop {
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => {
                covered += 4 + frame.len();
                expected.push(frame.freeze());
            }
            Ok(None) => break covered == data.len(),
            Err(_) => break false,
        }
    };
    let budget = wire::Budget::new(max);
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(err) => panic!("no runtime: {err}"),
    };
    let (frames, clean) = runtime.block_on(async {
        let io = wire::Chunked { data, chunk };
        let mut reader = wire::FrameReader::new(io, max, allowance, Some(budget.clone()));
        let mut frames = Vec::new();
        loop {
            match reader.next().await {
                Some(Ok(frame)) => {
                    assert!(budget.in_use() <= max);
                    frames.push(frame.body);
                }
                Some(Err(_)) => break (frames, false),
                None => break (frames, true),
            }
        }
    });
    assert_eq!(frames, expected, "the reader and the codec disagree");
    assert_eq!(clean, codec_ends_cleanly, "they end differently");
    assert_eq!(budget.in_use(), 0, "the budget was not given back");
}
