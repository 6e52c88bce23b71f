//! The handshake's decision: whether a first frame is a `Hello` this server takes, and if not,
//! what to refuse it with.
//!
//! Pure (no socket, no sessions, no clock), so the fuzz target and the unit tests drive exactly
//! the code the server runs; [`connection`](super::connection) does the reading, the session and
//! the answer.

use crate::wire::{self, Envelope, RefuseReason, SessionTokenBytes, WireError};

/// What a well-formed `Hello` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HelloOk {
    /// The token of the session to resume, if any (not verified yet).
    pub resume: Option<SessionTokenBytes>,
    /// The largest frame the client accepts; at least [`wire::MIN_MAX_FRAME`].
    pub max_frame: u32,
}

/// The longest refusal message, in bytes: a `Refused` envelope (variant, reason, a one-byte
/// length, the text) then fits the smallest frame limit a client may announce, so any client can
/// read why it was turned away.
pub(crate) const MAX_REFUSAL_MESSAGE: usize = wire::MIN_MAX_FRAME - 3;

/// `message`, cut to [`MAX_REFUSAL_MESSAGE`] bytes at a character boundary (the cut marked `…`).
pub(crate) fn refusal_message(mut message: String) -> String {
    if message.len() > MAX_REFUSAL_MESSAGE {
        let mut end = MAX_REFUSAL_MESSAGE - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// Checks the first frame's body: a `Hello` with the magic, this protocol version and a usable
/// `max_frame`, or the reason and message to refuse it with (at most [`MAX_REFUSAL_MESSAGE`]
/// bytes).
pub(crate) fn check_hello(frame: &[u8]) -> Result<HelloOk, (RefuseReason, String)> {
    // The variant, the magic and the version lead every Hello of every version: read them first,
    // so a client of another version hears that, whatever the rest of its Hello looks like.
    if let Ok(((0u32, magic, version), _)) = postcard::take_from_bytes::<(u32, [u8; 4], u16)>(frame)
    {
        if magic != wire::MAGIC {
            return Err((
                RefuseReason::BadMagic,
                "the first message did not start with the fluxon magic bytes".to_owned(),
            ));
        }
        if version != wire::PROTOCOL_VERSION {
            let message = format!(
                "this server speaks protocol version {}, the client {version}",
                wire::PROTOCOL_VERSION
            );
            return Err((RefuseReason::UnsupportedVersion, refusal_message(message)));
        }
    }
    let (reason, message) = match Envelope::decode(frame) {
        Ok(Envelope::Hello { max_frame, .. }) if (max_frame as usize) < wire::MIN_MAX_FRAME => (
            RefuseReason::Malformed,
            format!(
                "max_frame {max_frame} is below the minimum of {}",
                wire::MIN_MAX_FRAME
            ),
        ),
        Ok(Envelope::Hello {
            resume, max_frame, ..
        }) => return Ok(HelloOk { resume, max_frame }),
        Ok(_) => (
            RefuseReason::Malformed,
            "the first message must be Hello".to_owned(),
        ),
        Err(err) => {
            // postcard's own words: the wire error's prefix would only take up the room.
            let why = match err {
                WireError::Decode(err) => err.to_string(),
                other => other.to_string(),
            };
            (RefuseReason::Malformed, format!("not a Hello: {why}"))
        }
    };
    Err((reason, refusal_message(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(magic: [u8; 4], version: u16, max_frame: u32) -> Vec<u8> {
        Envelope::Hello {
            magic,
            version,
            resume: None,
            max_frame,
        }
        .encode()
        .unwrap()
        .to_vec()
    }

    #[test]
    fn a_good_hello_is_taken() {
        let ok = check_hello(&hello(wire::MAGIC, wire::PROTOCOL_VERSION, 300)).unwrap();
        assert_eq!(
            ok,
            HelloOk {
                resume: None,
                max_frame: 300
            }
        );
    }

    #[test]
    fn each_fault_has_its_reason() {
        let reason = |frame: &[u8]| check_hello(frame).unwrap_err().0;
        assert_eq!(
            reason(&hello(*b"NOPE", wire::PROTOCOL_VERSION, 300)),
            RefuseReason::BadMagic
        );
        assert_eq!(
            reason(&hello(wire::MAGIC, 1, 300)),
            RefuseReason::UnsupportedVersion
        );
        assert_eq!(
            reason(&hello(wire::MAGIC, wire::PROTOCOL_VERSION, 63)),
            RefuseReason::Malformed
        );
        let ping = Envelope::Ping { nonce: 1 }.encode().unwrap();
        assert_eq!(reason(&ping), RefuseReason::Malformed);
        assert_eq!(reason(&[]), RefuseReason::Malformed);
        // Magic is checked before the version: a stranger is told it is a stranger.
        assert_eq!(reason(&hello(*b"HTTP", 9, 0)), RefuseReason::BadMagic);
        // A client of version 1 (or a later one with a longer Hello) is told about the version,
        // not that its Hello is malformed.
        let mut longer = hello(wire::MAGIC, wire::PROTOCOL_VERSION + 1, 300);
        longer.extend_from_slice(&[9, 9, 9]);
        assert_eq!(reason(&longer), RefuseReason::UnsupportedVersion);
        let version_one = [0x00, b'F', b'L', b'X', b'N', 0x01, 0x00, 0xAC, 0x02];
        let (why, message) = check_hello(&version_one).unwrap_err();
        assert_eq!(why, RefuseReason::UnsupportedVersion);
        let expected = format!("version {}, the client 1", wire::PROTOCOL_VERSION);
        assert!(message.contains(&expected), "{message}");
    }

    /// Found by the `handshake` fuzz target: an empty first frame was refused with a 98-byte
    /// `Refused`, over the 64-byte frame limit a client may announce, so that client saw a
    /// frame error instead of the reason.
    #[test]
    fn every_refusal_fits_the_smallest_frame_limit() {
        let overlong_varint = [
            0x07, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ];
        let bad_option = [0x00, b'F', b'L', b'X', b'N', 0x01, 0x05];
        let frames: [&[u8]; 7] = [
            &[],
            &[0xff],
            &overlong_varint,
            &bad_option,
            &hello(*b"NOPE", 1, 300),
            &hello(wire::MAGIC, u16::MAX, 300),
            &hello(wire::MAGIC, wire::PROTOCOL_VERSION, 63),
        ];
        for frame in frames {
            let (reason, message) = check_hello(frame).unwrap_err();
            assert!(message.len() <= MAX_REFUSAL_MESSAGE, "{message:?}");
            let body = Envelope::Refused {
                reason,
                message: &message,
            }
            .encode()
            .unwrap();
            assert!(
                body.len() <= wire::MIN_MAX_FRAME,
                "{} bytes: {message}",
                body.len()
            );
        }
        let (_, message) = check_hello(&[]).unwrap_err();
        assert!(message.starts_with("not a Hello: "), "{message}");
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        assert_eq!(refusal_message("short".into()), "short");
        let cut = refusal_message("é".repeat(100));
        assert!(
            cut.len() <= MAX_REFUSAL_MESSAGE && cut.ends_with('…'),
            "{cut}"
        );
        let exact = "x".repeat(MAX_REFUSAL_MESSAGE);
        assert_eq!(refusal_message(exact.clone()), exact);
    }
}
