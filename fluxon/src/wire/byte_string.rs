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

use std::any::Any;

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};

use super::depth::{from_bytes_exact, DecodeError};

/// Decodes a peer's payload or reply as a `T`, at most [`MAX_DEPTH`](super::MAX_DEPTH) deep,
/// refusing bytes left over: a `Vec<u8>` whole, anything else through [`from_bytes_exact`].
pub(crate) fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut slot: Option<T> = None;
    if let Some(vec) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Vec<u8>>>() {
        let (whole, rest) = postcard::take_from_bytes::<&[u8]>(bytes)?;
        if !rest.is_empty() {
            return Err(postcard::Error::DeserializeBadEncoding.into());
        }
        *vec = Some(whole.to_vec());
    }
    match slot {
        Some(value) => Ok(value),
        None => from_bytes_exact(bytes),
    }
}

/// Encodes a payload or reply with postcard (through [`to_vec`](super::to_vec)'s buffers): a
/// `Vec<u8>` whole, anything else through serde.
pub(crate) fn encode<T: Serialize + 'static>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    match (value as &dyn Any).downcast_ref::<Vec<u8>>() {
        Some(bytes) => super::to_vec(&Whole(bytes)),
        None => super::to_vec(value),
    }
}

/// Bytes that serialize as one byte string.
struct Whole<'a>(&'a [u8]);

impl Serialize for Whole<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
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
        }
    }
}
