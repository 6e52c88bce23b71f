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
use std::borrow::Cow;

use bytes::{Buf, Bytes};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::depth::{from_bytes_exact, DecodeError};
use super::envelope::{byte_string_to_vec, to_vec};

/// Decodes a peer's payload or reply as a `T`, at most [`MAX_DEPTH`](super::MAX_DEPTH) deep,
/// refusing bytes left over: a `Vec<u8>` whole, anything else through [`from_bytes_exact`].
pub(crate) fn decode<T: DeserializeOwned + 'static>(bytes: &[u8]) -> Result<T, DecodeError> {
    if is_byte_string::<T>() {
        return as_decoded(whole(bytes)?.to_vec());
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
    as_decoded(Vec::from(bytes))
}

fn is_byte_string<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<Vec<u8>>()
}

/// `value` as the `T` it is; only called once [`is_byte_string`] said one of them is `Vec<u8>`
/// and the other too (`None` cannot happen: callers turn it into an error, never a panic).
fn cast<F: 'static, T: 'static>(value: F) -> Option<T> {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .and_then(Option::take)
}

/// A decoded byte string as the `T` it is.
fn as_decoded<T: 'static>(bytes: Vec<u8>) -> Result<T, DecodeError> {
    cast(bytes).ok_or(DecodeError::Postcard(
        postcard::Error::DeserializeBadEncoding,
    ))
}

/// The bytes of one whole byte string, with nothing after it.
fn whole(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    // A one-byte length that matches (every byte string under 128 bytes): read here; anything
    // else goes to postcard, which also says what is wrong with bad bytes.
    if let Some((&len, rest)) = bytes.split_first() {
        if len < 0x80 && usize::from(len) == rest.len() {
            return Ok(rest);
        }
    }
    let (whole, rest) = postcard::take_from_bytes::<&[u8]>(bytes)?;
    if !rest.is_empty() {
        return Err(postcard::Error::DeserializeBadEncoding.into());
    }
    Ok(whole)
}

/// A payload or reply as postcard bytes in two pieces, `head` then `body`: a byte string is its
/// varint length and its own bytes, so it goes into a frame with no copy in between; anything
/// else is nothing and its postcard bytes, in one of [`to_vec`]'s buffers.
pub(crate) struct Encoded<B> {
    head: [u8; 10],
    head_len: u8,
    body: B,
    /// `body` is one of [`to_vec`]'s buffers, to give back once its bytes are queued.
    buffered: bool,
}

impl<B: AsRef<[u8]>> Encoded<B> {
    /// The two pieces, in wire order.
    pub fn parts(&self) -> [&[u8]; 2] {
        [&self.head[..usize::from(self.head_len)], self.body.as_ref()]
    }

    /// A byte string's length before its bytes.
    fn byte_string(body: B) -> Self {
        let mut head = [0u8; 10];
        let len = body.as_ref().len();
        let head_len = match u8::try_from(len) {
            // Under 128 bytes (most): a one-byte length.
            Ok(short) if short < 0x80 => {
                head[0] = short;
                1
            }
            _ => super::envelope::write_varint(&mut head, len as u64),
        };
        Encoded {
            head,
            head_len: head_len as u8,
            body,
            buffered: false,
        }
    }
}

impl<B> Encoded<B> {
    fn buffer(body: B) -> Self {
        Encoded {
            head: [0; 10],
            head_len: 0,
            body,
            buffered: true,
        }
    }
}

impl Encoded<Vec<u8>> {
    /// Its bytes are queued: a buffer goes back for this thread's next value.
    pub fn done(self) {
        if self.buffered {
            super::envelope::recycle(self.body);
        }
    }
}

impl Encoded<Cow<'_, [u8]>> {
    /// Its bytes are queued: a buffer goes back for this thread's next value.
    pub fn done(self) {
        if let Cow::Owned(buffer) = self.body {
            super::envelope::recycle(buffer);
        }
    }
}

/// Encodes a borrowed payload with postcard: a `Vec<u8>` as its length and the borrowed bytes,
/// anything else through serde into one of [`to_vec`]'s buffers.
pub(crate) fn encode_ref<T: Serialize + 'static>(
    value: &T,
) -> Result<Encoded<Cow<'_, [u8]>>, postcard::Error> {
    match (value as &dyn Any).downcast_ref::<Vec<u8>>() {
        Some(bytes) => Ok(Encoded::byte_string(Cow::Borrowed(&bytes[..]))),
        None => Ok(Encoded::buffer(Cow::Owned(to_vec(value)?))),
    }
}

/// Encodes an owned reply with postcard: a `Vec<u8>` as its length and the vector itself (no
/// copy), anything else through serde into one of [`to_vec`]'s buffers.
pub(crate) fn encode_owned<T: Serialize + 'static>(
    value: T,
) -> Result<Encoded<Vec<u8>>, postcard::Error> {
    if is_byte_string::<T>() {
        // Cannot fail: `T` is `Vec<u8>`.
        return cast::<T, Vec<u8>>(value)
            .map(Encoded::byte_string)
            .ok_or(postcard::Error::SerializeBufferFull);
    }
    Ok(Encoded::buffer(to_vec(&value)?))
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
