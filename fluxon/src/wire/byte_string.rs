//! Payloads and replies that are byte strings (`Vec<u8>`), encoded and decoded whole.
//!
//! serde hands a `Vec<u8>` to a format one element at a time (it cannot tell a vector of bytes from
//! any other sequence), which costs postcard about fifteen instructions a byte each way, and more
//! through the nesting bound of [`depth`](super::depth). postcard writes a sequence of `u8` and a
//! byte string the same way (a varint length, then the bytes), so a view payload or reply whose type
//! is `Vec<u8>` is copied in one piece instead: the same bytes on the wire, and the same errors for
//! bad ones, as the element-by-element path.
//!
//! Only types known at compile time to be `Vec<u8>` take this path (a type check the compiler folds
//! away); every other type goes through serde as before.

use std::any::{Any, TypeId};

use bytes::{Buf, Bytes};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::depth::{from_bytes_exact, DecodeError};
use super::envelope::{byte_string_to_vec, to_vec};

/// Decodes a peer's payload or reply as a `T`, at most [`MAX_DEPTH`](super::MAX_DEPTH) deep,
/// refusing bytes left over: a `Vec<u8>` whole, anything else through [`from_bytes_exact`].
pub(crate) fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, DecodeError> {
    if is_byte_string::<T>() {
        return cast(whole(bytes)?.to_vec());
    }
    from_bytes_exact(bytes)
}

/// [`decode`], from bytes the caller owns: a `Vec<u8>` takes over their buffer when nothing else
/// holds it (a reply copied out of the read buffer), so it costs no second allocation.
pub(crate) fn decode_owned<T: DeserializeOwned + 'static>(
    mut bytes: Bytes,
) -> Result<T, DecodeError> {
    if !is_byte_string::<T>() {
        return from_bytes_exact(&bytes);
    }
    let prefix = bytes.len() - whole(&bytes)?.len();
    bytes.advance(prefix);
    cast(Vec::from(bytes))
}

fn is_byte_string<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<Vec<u8>>()
}

/// `bytes` as the `T` it is; only called once [`is_byte_string`] said `T` is `Vec<u8>` (the
/// error cannot happen, and is a decoding error rather than a panic).
fn cast<T: 'static>(bytes: Vec<u8>) -> Result<T, DecodeError> {
    let mut slot = Some(bytes);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .ok_or(DecodeError::Postcard(
            postcard::Error::DeserializeBadEncoding,
        ))
}

/// The bytes of one whole byte string, with nothing after it.
fn whole(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    let (whole, rest) = postcard::take_from_bytes::<&[u8]>(bytes)?;
    if !rest.is_empty() {
        return Err(postcard::Error::DeserializeBadEncoding.into());
    }
    Ok(whole)
}

/// Encodes a payload or reply with postcard (through [`to_vec`]'s buffers): a
/// `Vec<u8>` whole, anything else through serde.
pub(crate) fn encode<T: Serialize + 'static>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    match (value as &dyn Any).downcast_ref::<Vec<u8>>() {
        Some(bytes) => Ok(byte_string_to_vec(bytes)),
        None => to_vec(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths() -> impl Iterator<Item = Vec<u8>> {
        [0usize, 1, 31, 127, 128, 300, 16_383, 16_384, 70_000]
            .into_iter()
            .map(|n| (0..n).map(|i| (i * 7) as u8).collect())
    }

    #[test]
    fn byte_strings_are_the_bytes_serde_writes_element_by_element() {
        for bytes in lengths() {
            let whole = encode(&bytes).unwrap();
            assert_eq!(
                whole,
                postcard::to_allocvec(&bytes).unwrap(),
                "{}",
                bytes.len()
            );
            // And a sequence written by serde (as any peer's postcard writes it) reads back whole.
            let decoded: Vec<u8> = decode(&postcard::to_allocvec(&bytes).unwrap()).unwrap();
            assert_eq!(decoded, bytes);
        }
    }

    #[test]
    fn other_types_take_serde_s_path() {
        let value = (7u32, vec![1u8, 2, 3], "x".to_owned());
        let encoded = encode(&value).unwrap();
        assert_eq!(encoded, postcard::to_allocvec(&value).unwrap());
        assert_eq!(decode::<(u32, Vec<u8>, String)>(&encoded).unwrap(), value);
        // A `Vec<u16>` is not a byte string: each element is a varint.
        let wide = vec![300u16, 1];
        assert_eq!(
            encode(&wide).unwrap(),
            postcard::to_allocvec(&wide).unwrap()
        );
    }

    #[test]
    fn an_owned_byte_string_takes_over_its_buffer() {
        for bytes in lengths() {
            let encoded = Bytes::from(postcard::to_allocvec(&bytes).unwrap());
            let start = encoded.as_ptr();
            let decoded: Vec<u8> = decode_owned(encoded).unwrap();
            assert_eq!(decoded, bytes);
            if !bytes.is_empty() {
                assert_eq!(decoded.as_ptr(), start, "no copy: the same buffer");
            }
        }
        let other: (u8, String) = decode_owned(Bytes::from_static(&[7, 1, b'x'])).unwrap();
        assert_eq!(other, (7, "x".to_owned()));
    }

    /// Every bad input fails the way the element-by-element path fails it.
    #[test]
    fn bad_byte_strings_fail_as_serde_s_path_fails() {
        let cases: [&[u8]; 6] = [
            &[],           // no length
            &[5, 1, 2],    // shorter than its length
            &[2, 1, 2, 9], // a byte left over
            &[
                0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
            ], // varint too long
            &[0xff, 0xff, 0xff, 0xff, 0x0f], // 4 GiB announced, nothing there
            &[0x80],       // a varint that never ends
        ];
        for case in cases {
            let whole = decode::<Vec<u8>>(case).unwrap_err().to_string();
            let serde = from_bytes_exact::<Vec<u8>>(case).unwrap_err().to_string();
            assert_eq!(whole, serde, "{case:?}");
            let owned = decode_owned::<Vec<u8>>(Bytes::copy_from_slice(case));
            assert_eq!(owned.unwrap_err().to_string(), serde, "{case:?}");
        }
    }
}
