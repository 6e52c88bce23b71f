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
        };
        f.write_str(text)
    }
}

/// An error answer: a code a program can match on and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply<'a> {
    /// What kind of failure.
    pub code: ErrorCode,
    /// Details.
    pub message: &'a str,
}

/// Why a server refused a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefuseReason {
    /// The `Hello` did not start with the magic bytes.
    BadMagic,
    /// The client speaks another protocol version.
    UnsupportedVersion,
    /// The server is at its connection limit.
    ServerFull,
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
            RefuseReason::ServerFull => "server full",
            RefuseReason::ShuttingDown => "server shutting down",
            RefuseReason::Malformed => "malformed handshake",
        };
        f.write_str(text)
    }
}

impl<'a> Envelope<'a> {
    /// Decodes one frame body. Trailing bytes after the envelope are an error.
    pub fn decode(body: &'a [u8]) -> Result<Self, WireError> {
        let (envelope, rest) = postcard::take_from_bytes(body).map_err(WireError::Decode)?;
        if !rest.is_empty() {
            return Err(WireError::Decode(postcard::Error::DeserializeBadEncoding));
        }
        Ok(envelope)
    }

    /// Encodes this envelope into a frame body.
    pub fn encode(&self) -> Result<Bytes, WireError> {
        postcard::to_allocvec(self)
            .map(Bytes::from)
            .map_err(WireError::Encode)
    }
}

/// The part of `frame` that `inner` (a slice borrowed from it) covers, without copying.
///
/// Used to keep a decoded payload as a cheap `Bytes` handle on the frame it came in.
pub(crate) fn subslice(frame: &Bytes, inner: &[u8]) -> Bytes {
    if inner.is_empty() {
        return Bytes::new();
    }
    frame.slice_ref(inner)
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
        });
        round_trip(Envelope::Welcome {
            token,
            resumed: true,
            max_frame: 1 << 24,
        });
        round_trip(Envelope::Refused {
            reason: RefuseReason::ServerFull,
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
            result: Err(ErrorReply {
                code: ErrorCode::Panicked,
                message: "boom",
            }),
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
            version: 1,
            resume: None,
        }
        .encode()
        .unwrap();
        assert_eq!(&body[..], &[0x00, b'F', b'L', b'X', b'N', 0x01, 0x00]);
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
}
