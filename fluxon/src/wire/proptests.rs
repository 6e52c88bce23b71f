//! Property tests: every envelope, whatever its field values, survives encode → decode exactly,
//! and so does a stream of them through the frame codec.

use bytes::BytesMut;
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use super::{
    codec, Capacity, Envelope, ErrorCode, ErrorReply, FrameReader, RefuseReason, SessionTokenBytes,
};

/// An envelope's owned twin: proptest generates these, the tests borrow an [`Envelope`] from them.
#[derive(Debug, Clone)]
enum Owned {
    Hello {
        magic: [u8; 4],
        version: u16,
        resume: Option<SessionTokenBytes>,
        max_frame: u32,
    },
    Welcome {
        token: SessionTokenBytes,
        resumed: bool,
        max_frame: u32,
    },
    Refused {
        reason: RefuseReason,
        message: String,
    },
    Call {
        id: u64,
        view: String,
        payload: Vec<u8>,
    },
    Reply {
        id: u64,
        result: Result<Vec<u8>, (ErrorCode, String, Vec<u8>)>,
    },
    ReverseRequest {
        id: u64,
        name: String,
        payload: Vec<u8>,
    },
    ReverseReply {
        id: u64,
        result: Result<Vec<u8>, (ErrorCode, String, Vec<u8>)>,
    },
    Ping(u64),
    Pong(u64),
    Goodbye(String),
    Token(SessionTokenBytes),
}

fn result(result: &Result<Vec<u8>, (ErrorCode, String, Vec<u8>)>) -> Result<&[u8], ErrorReply<'_>> {
    match result {
        Ok(payload) => Ok(payload),
        Err((code, message, detail)) => Err(ErrorReply {
            code: *code,
            message,
            detail,
        }),
    }
}

impl Owned {
    fn envelope(&self) -> Envelope<'_> {
        match self {
            Owned::Hello {
                magic,
                version,
                resume,
                max_frame,
            } => Envelope::Hello {
                magic: *magic,
                version: *version,
                resume: *resume,
                max_frame: *max_frame,
            },
            Owned::Welcome {
                token,
                resumed,
                max_frame,
            } => Envelope::Welcome {
                token: *token,
                resumed: *resumed,
                max_frame: *max_frame,
            },
            Owned::Refused { reason, message } => Envelope::Refused {
                reason: *reason,
                message,
            },
            Owned::Call { id, view, payload } => Envelope::Call {
                id: *id,
                view,
                payload,
            },
            Owned::Reply { id, result: r } => Envelope::Reply {
                id: *id,
                result: result(r),
            },
            Owned::ReverseRequest { id, name, payload } => Envelope::ReverseRequest {
                id: *id,
                name,
                payload,
            },
            Owned::ReverseReply { id, result: r } => Envelope::ReverseReply {
                id: *id,
                result: result(r),
            },
            Owned::Ping(nonce) => Envelope::Ping { nonce: *nonce },
            Owned::Pong(nonce) => Envelope::Pong { nonce: *nonce },
            Owned::Goodbye(reason) => Envelope::Goodbye { reason },
            Owned::Token(token) => Envelope::Token { token: *token },
        }
    }
}

/// Ids and nonces: small ones (one varint byte), the varint boundaries, and anything.
fn id() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..200,
        prop::sample::select(vec![127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX]),
        any::<u64>(),
    ]
}

/// Names, messages and reasons: any Unicode, empty included.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,40}", "[a-z_]{1,20}"]
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..300)
}

fn token() -> impl Strategy<Value = SessionTokenBytes> {
    (
        prop::array::uniform16(any::<u8>()),
        prop::array::uniform32(any::<u8>()),
    )
        .prop_map(|(id, mac)| SessionTokenBytes { id, mac })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop::sample::select(vec![
        ErrorCode::UnknownView,
        ErrorCode::BadPayload,
        ErrorCode::ViewFailed,
        ErrorCode::Panicked,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
        ErrorCode::NoHandler,
        ErrorCode::TooLarge,
        ErrorCode::Throttled,
        ErrorCode::Rejected,
    ])
}

fn refuse_reason() -> impl Strategy<Value = RefuseReason> {
    prop::sample::select(vec![
        RefuseReason::BadMagic,
        RefuseReason::UnsupportedVersion,
        RefuseReason::ServerFull(Capacity::Connections),
        RefuseReason::ServerFull(Capacity::PeerConnections),
        RefuseReason::ServerFull(Capacity::Handshakes),
        RefuseReason::ServerFull(Capacity::PeerHandshakes),
        RefuseReason::ShuttingDown,
        RefuseReason::Malformed,
    ])
}

fn reply_result() -> impl Strategy<Value = Result<Vec<u8>, (ErrorCode, String, Vec<u8>)>> {
    prop_oneof![
        payload().prop_map(Ok),
        (error_code(), text(), payload()).prop_map(Err)
    ]
}

/// Every variant, with arbitrary fields.
fn envelope() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (
            prop::array::uniform4(any::<u8>()),
            any::<u16>(),
            prop::option::of(token()),
            any::<u32>()
        )
            .prop_map(|(magic, version, resume, max_frame)| Owned::Hello {
                magic,
                version,
                resume,
                max_frame
            }),
        (token(), any::<bool>(), any::<u32>()).prop_map(|(token, resumed, max_frame)| {
            Owned::Welcome {
                token,
                resumed,
                max_frame,
            }
        }),
        (refuse_reason(), text()).prop_map(|(reason, message)| Owned::Refused { reason, message }),
        (id(), text(), payload()).prop_map(|(id, view, payload)| Owned::Call { id, view, payload }),
        (id(), reply_result()).prop_map(|(id, result)| Owned::Reply { id, result }),
        (id(), text(), payload()).prop_map(|(id, name, payload)| Owned::ReverseRequest {
            id,
            name,
            payload
        }),
        (id(), reply_result()).prop_map(|(id, result)| Owned::ReverseReply { id, result }),
        id().prop_map(Owned::Ping),
        id().prop_map(Owned::Pong),
        text().prop_map(Owned::Goodbye),
        token().prop_map(Owned::Token),
    ]
}

/// What postcard alone makes of a frame body (trailing bytes refused, as `decode` does).
fn by_postcard(body: &[u8]) -> Option<Envelope<'_>> {
    postcard::take_from_bytes::<Envelope<'_>>(body)
        .ok()
        .filter(|(_, rest)| rest.is_empty())
        .map(|(envelope, _)| envelope)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The direct reading of calls and replies agrees with postcard on any bytes: the same
    /// envelope, or both an error.
    #[test]
    fn the_direct_decoder_agrees_with_postcard(
        index in 0u8..12,
        rest in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut body = vec![index];
        body.extend_from_slice(&rest);
        prop_assert_eq!(Envelope::decode(&body).ok(), by_postcard(&body));
    }

    /// The same for well-formed calls and replies, whose varints and lengths random bytes
    /// rarely hit.
    #[test]
    fn calls_and_replies_decode_directly_as_postcard_would(owned in envelope(), cut in 0usize..8) {
        let envelope = owned.envelope();
        let body = postcard::to_allocvec(&envelope).unwrap();
        prop_assert_eq!(Envelope::decode(&body).unwrap(), envelope);
        // Cut short, or with a byte too many: what postcard says, too.
        let short = &body[..body.len().saturating_sub(cut + 1)];
        prop_assert_eq!(Envelope::decode(short).ok(), by_postcard(short));
        let mut long = body.clone();
        long.push(0);
        prop_assert!(Envelope::decode(&long).is_err());
    }

    /// The server's frame reader, fed the writer's frames in reads of any size, under any
    /// allowance and with a budget, gives back every envelope in order and then a clean end.
    #[test]
    fn the_servers_reader_reads_the_writers_frames(
        owned in prop::collection::vec(envelope(), 1..8),
        chunk in 1usize..700,
        allowance in 64usize..400,
    ) {
        let mut stream = BytesMut::new();
        for owned in &owned {
            owned.envelope().encode_frame_into(&mut stream).unwrap();
        }
        let budget = super::Budget::new(super::DEFAULT_MAX_FRAME);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let frames = runtime.block_on(async {
            let io = super::Chunked { data: &stream, chunk };
            let mut reader = FrameReader::new(io, super::DEFAULT_MAX_FRAME, allowance, Some(budget.clone()));
            let mut frames = Vec::new();
            while let Some(frame) = reader.next().await {
                frames.push(frame.unwrap().body);
            }
            frames
        });
        prop_assert_eq!(frames.len(), owned.len());
        for (frame, owned) in frames.iter().zip(&owned) {
            prop_assert_eq!(Envelope::decode(frame).unwrap(), owned.envelope());
        }
        prop_assert_eq!(budget.in_use(), 0);
    }

    /// encode → decode gives back exactly the envelope, and the bytes are postcard's.
    #[test]
    fn every_envelope_round_trips(owned in envelope()) {
        let envelope = owned.envelope();
        let body = envelope.encode().unwrap();
        prop_assert_eq!(&body[..], &postcard::to_allocvec(&envelope).unwrap()[..]);
        prop_assert_eq!(Envelope::decode(&body).unwrap(), envelope);
    }

    /// A stream of envelopes, framed as the writer frames them, is read back by the frame codec
    /// one whole envelope at a time, in order, and the codec's own framing is the same bytes.
    #[test]
    fn framed_envelopes_round_trip_through_the_codec(
        owned in prop::collection::vec(envelope(), 1..8),
        split in any::<prop::sample::Index>(),
    ) {
        let mut codec = codec(super::DEFAULT_MAX_FRAME);
        let mut stream = BytesMut::new();
        let mut by_codec = BytesMut::new();
        for owned in &owned {
            let envelope = owned.envelope();
            let len = envelope.encode_frame_into(&mut stream).unwrap();
            let body = envelope.encode().unwrap();
            prop_assert_eq!(len, body.len());
            codec.encode(body, &mut by_codec).unwrap();
        }
        prop_assert_eq!(&stream[..], &by_codec[..]);

        // The bytes arrive in two reads, split anywhere.
        let at = split.index(stream.len() + 1);
        let mut buf = BytesMut::from(&stream[..at]);
        let mut frames = Vec::new();
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        buf.extend_from_slice(&stream[at..]);
        while let Some(frame) = codec.decode(&mut buf).unwrap() {
            frames.push(frame);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(frames.len(), owned.len());
        for (frame, owned) in frames.iter().zip(&owned) {
            prop_assert_eq!(Envelope::decode(frame).unwrap(), owned.envelope());
        }
    }
}
