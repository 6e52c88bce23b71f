//! Length-delimited framing: a big-endian `u32` length, then the body.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, FramedRead, LengthDelimitedCodec};

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

/// The next frame already in `reader`'s buffer, decoded without touching the socket: lets a reader
/// handle a burst of frames from one read without going back to its `select!` for each.
pub(crate) fn buffered_frame<R>(
    reader: &mut FramedRead<R, FrameCodec>,
) -> Option<Result<BytesMut, std::io::Error>> {
    if reader.read_buffer().is_empty() {
        return None;
    }
    // The codec is a few integers of state; decode with a copy, then keep the copy's state.
    let mut codec = reader.decoder().clone();
    let frame = codec.decode(reader.read_buffer_mut()).transpose();
    *reader.decoder_mut() = codec;
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use tokio_util::codec::{Decoder, Encoder};

    #[test]
    fn buffered_frames_come_out_one_by_one_and_keep_partial_state() {
        // Two whole frames and the head of a third.
        let bytes: &[u8] = &[0, 0, 0, 1, b'a', 0, 0, 0, 2, b'b', b'c', 0, 0, 0, 3, b'd'];
        let mut reader = FramedRead::new(bytes, codec(16));
        assert!(buffered_frame(&mut reader).is_none(), "nothing read yet");
        reader.read_buffer_mut().extend_from_slice(bytes);
        assert_eq!(&buffered_frame(&mut reader).unwrap().unwrap()[..], b"a");
        assert_eq!(&buffered_frame(&mut reader).unwrap().unwrap()[..], b"bc");
        assert!(
            buffered_frame(&mut reader).is_none(),
            "third frame incomplete"
        );
        reader.read_buffer_mut().extend_from_slice(b"ef");
        assert_eq!(&buffered_frame(&mut reader).unwrap().unwrap()[..], b"def");
    }

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
