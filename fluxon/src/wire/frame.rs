//! Length-delimited framing: a big-endian `u32` length, then the body.

use tokio_util::codec::LengthDelimitedCodec;

/// The frame codec both peers use: tokio-util's length-delimited codec with a 4-byte big-endian
/// length prefix and a maximum body size.
pub type FrameCodec = LengthDelimitedCodec;

/// Builds the frame codec with `max_frame` as the largest body it accepts or sends.
pub fn codec(max_frame: usize) -> FrameCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .big_endian()
        .max_frame_length(max_frame)
        .new_codec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use tokio_util::codec::{Decoder, Encoder};

    #[test]
    fn frame_is_length_then_body() {
        let mut codec = codec(16);
        let mut buf = BytesMut::new();
        codec.encode(Bytes::from_static(b"abc"), &mut buf).unwrap();
        assert_eq!(&buf[..], &[0, 0, 0, 3, b'a', b'b', b'c']);
        let body = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(&body[..], b"abc");
    }

    #[test]
    fn oversized_frame_is_an_error_not_a_panic() {
        let mut codec = codec(16);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1, 2][..]);
        assert!(codec.decode(&mut buf).is_err());
        let mut out = BytesMut::new();
        assert!(codec.encode(Bytes::from(vec![0u8; 17]), &mut out).is_err());
    }

    #[test]
    fn partial_frame_waits_for_more() {
        let mut codec = codec(16);
        let mut buf = BytesMut::from(&[0, 0, 0, 5, 1, 2][..]);
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }
}
