//! Decoding a peer's postcard bytes with a bound on nesting.
//!
//! postcard decodes by recursion and has no limit of its own: a payload type that can nest (a tree,
//! `Box<Self>`, `Vec<Self>`) lets a frame of a million nested openings overflow the stack and abort
//! the whole process, and a value nested that deep could not even be dropped safely. Every decode of
//! bytes from a peer (view payloads, replies, reverse requests and their replies, cloud messages)
//! goes through [`from_bytes_exact`], which wraps postcard's deserializer in an adapter that counts
//! how deep the value being built is and stops at [`MAX_DEPTH`] with [`DecodeError::TooDeep`].
//!
//! The adapter is a [`Deserializer`] around postcard's, a [`Visitor`] around the type's own, and
//! the same around every access postcard hands a visitor (sequences, maps, enums, variants, seeds),
//! so the count follows the value wherever serde's calls go. Each compound (a sequence, tuple,
//! struct, map, enum, option or newtype) is one level.

use std::cell::Cell;
use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// The deepest nesting a peer's value may have. Far beyond any message a program means to send
/// (a tree 128 levels deep), far below what the stack holds.
pub const MAX_DEPTH: usize = 128;

/// Why a peer's bytes did not decode as the expected type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The bytes are not a value of the type (postcard's own words), or bytes are left over.
    #[error("{0}")]
    Postcard(#[from] postcard::Error),
    /// The value nests deeper than [`MAX_DEPTH`] levels; decoding stopped there.
    #[error("the value is nested deeper than {0} levels")]
    TooDeep(usize),
}

/// Decodes a whole postcard value from a peer, at most [`MAX_DEPTH`] levels deep: bytes left over
/// mean it was not a `T`.
pub(crate) fn from_bytes_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    from_bytes_within(bytes, MAX_DEPTH)
}

fn from_bytes_within<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    let tripped = Cell::new(false);
    let mut postcard = postcard::Deserializer::from_bytes(bytes);
    let limited = Limited {
        inner: &mut postcard,
        depth: Depth {
            left: max,
            tripped: &tripped,
        },
    };
    match T::deserialize(limited) {
        // The limit's own error travels through postcard as a custom error; the flag says which.
        Err(_) if tripped.get() => Err(DecodeError::TooDeep(max)),
        Err(err) => Err(err.into()),
        Ok(value) => match postcard.finalize()? {
            [] => Ok(value),
            _ => Err(postcard::Error::DeserializeBadEncoding.into()),
        },
    }
}

/// How many more levels may open, and where to say that the limit was hit.
#[derive(Clone, Copy)]
struct Depth<'a> {
    left: usize,
    tripped: &'a Cell<bool>,
}

impl<'a> Depth<'a> {
    /// One level deeper, or the error that ends decoding.
    fn enter<E: de::Error>(self) -> Result<Depth<'a>, E> {
        match self.left.checked_sub(1) {
            Some(left) => Ok(Depth { left, ..self }),
            None => {
                self.tripped.set(true);
                Err(E::custom("nested too deeply"))
            }
        }
    }
}

/// A deserializer whose values may nest only `depth` more levels.
struct Limited<'a, D> {
    inner: D,
    depth: Depth<'a>,
}

/// The type's visitor, handing on the depth to whatever nested access it is given.
struct LimitedVisitor<'a, V> {
    inner: V,
    depth: Depth<'a>,
}

/// A seed (how serde asks for the next element, key, value or variant) at a depth.
struct LimitedSeed<'a, S> {
    inner: S,
    depth: Depth<'a>,
}

/// Sequence, map, enum and variant accesses at a depth.
struct LimitedAccess<'a, A> {
    inner: A,
    depth: Depth<'a>,
}

impl<'a, V> LimitedVisitor<'a, V> {
    fn new(inner: V, depth: Depth<'a>) -> Self {
        LimitedVisitor { inner, depth }
    }
}

/// Scalars: no nesting, handed straight on (still through the visitor, whose other methods a
/// self-describing format could reach).
macro_rules! forward_scalars {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.inner.$method(LimitedVisitor::new(visitor, self.depth))
            }
        )*
    };
}

/// Compounds: one level deeper, refused at the limit before anything is read.
macro_rules! forward_compounds {
    ($($method:ident),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                let depth = self.depth.enter()?;
                self.inner.$method(LimitedVisitor::new(visitor, depth))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Limited<'_, D> {
    type Error = D::Error;

    forward_scalars!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_unit,
        deserialize_identifier,
        deserialize_ignored_any,
    );
    forward_compounds!(deserialize_option, deserialize_seq, deserialize_map);

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner
            .deserialize_unit_struct(name, LimitedVisitor::new(visitor, self.depth))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner
            .deserialize_newtype_struct(name, LimitedVisitor::new(visitor, depth))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner
            .deserialize_tuple(len, LimitedVisitor::new(visitor, depth))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner
            .deserialize_tuple_struct(name, len, LimitedVisitor::new(visitor, depth))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner
            .deserialize_struct(name, fields, LimitedVisitor::new(visitor, depth))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        let depth = self.depth.enter()?;
        self.inner
            .deserialize_enum(name, variants, LimitedVisitor::new(visitor, depth))
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// Visitor methods that take a plain value: handed straight on.
macro_rules! visit_values {
    ($($method:ident: $ty:ty),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, value: $ty) -> Result<Self::Value, E> {
                self.inner.$method(value)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for LimitedVisitor<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    visit_values!(
        visit_bool: bool,
        visit_i8: i8,
        visit_i16: i16,
        visit_i32: i32,
        visit_i64: i64,
        visit_i128: i128,
        visit_u8: u8,
        visit_u16: u16,
        visit_u32: u32,
        visit_u64: u64,
        visit_u128: u128,
        visit_f32: f32,
        visit_f64: f64,
        visit_char: char,
        visit_str: &str,
        visit_borrowed_str: &'de str,
        visit_string: String,
        visit_bytes: &[u8],
        visit_borrowed_bytes: &'de [u8],
        visit_byte_buf: Vec<u8>,
    );

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Limited {
            inner: deserializer,
            depth: self.depth,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Limited {
            inner: deserializer,
            depth: self.depth,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(LimitedAccess {
            inner: seq,
            depth: self.depth,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(LimitedAccess {
            inner: map,
            depth: self.depth,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(LimitedAccess {
            inner: data,
            depth: self.depth,
        })
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for LimitedSeed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        self.inner.deserialize(Limited {
            inner: deserializer,
            depth: self.depth,
        })
    }
}

impl<'a, A> LimitedAccess<'a, A> {
    fn seed<S>(&self, inner: S) -> LimitedSeed<'a, S> {
        LimitedSeed {
            inner,
            depth: self.depth,
        }
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for LimitedAccess<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        let seed = self.seed(seed);
        self.inner.next_element_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for LimitedAccess<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        let seed = self.seed(seed);
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        let seed = self.seed(seed);
        self.inner.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'a, 'de, A: EnumAccess<'de>> EnumAccess<'de> for LimitedAccess<'a, A> {
    type Error = A::Error;
    type Variant = LimitedAccess<'a, A::Variant>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Self::Error> {
        let depth = self.depth;
        let seed = self.seed(seed);
        let (value, variant) = self.inner.variant_seed(seed)?;
        Ok((
            value,
            LimitedAccess {
                inner: variant,
                depth,
            },
        ))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for LimitedAccess<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        let seed = self.seed(seed);
        self.inner.newtype_variant_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner
            .tuple_variant(len, LimitedVisitor::new(visitor, self.depth))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.inner
            .struct_variant(fields, LimitedVisitor::new(visitor, self.depth))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    /// A recursive payload type, as a view might take.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Tree {
        Leaf(u32),
        Node(Vec<Tree>),
        Boxed(Box<Tree>),
        Maybe(Option<Box<Tree>>),
    }

    fn boxed(depth: usize) -> Tree {
        let mut tree = Tree::Leaf(7);
        for _ in 0..depth {
            tree = Tree::Boxed(Box::new(tree));
        }
        tree
    }

    /// Drops a deep tree without recursing (the test's own deep values must not overflow either).
    fn drop_flat(tree: Tree) {
        let mut stack = vec![tree];
        while let Some(tree) = stack.pop() {
            match tree {
                Tree::Boxed(inner) | Tree::Maybe(Some(inner)) => stack.push(*inner),
                Tree::Node(children) => stack.extend(children),
                Tree::Leaf(_) | Tree::Maybe(None) => {}
            }
        }
    }

    #[test]
    fn ordinary_values_decode_exactly_as_postcard_does() {
        let mut map = BTreeMap::new();
        map.insert("a".to_owned(), vec![Some((1u8, -2i64)), None]);
        let value = (
            "héllo".to_owned(),
            map,
            Tree::Node(vec![Tree::Leaf(1), Tree::Maybe(None), boxed(3)]),
            [1.5f64, -0.0],
            Some('x'),
            (),
        );
        let bytes = postcard::to_allocvec(&value).unwrap();
        type Value = (
            String,
            BTreeMap<String, Vec<Option<(u8, i64)>>>,
            Tree,
            [f64; 2],
            Option<char>,
            (),
        );
        let back: Value = from_bytes_exact(&bytes).unwrap();
        assert_eq!(back, value);
        // Trailing bytes and short input are errors, as before.
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            from_bytes_exact::<(String, ())>(&trailing),
            Err(DecodeError::Postcard(_))
        ));
        assert!(matches!(
            from_bytes_exact::<u32>(&[]),
            Err(DecodeError::Postcard(_))
        ));
    }

    #[test]
    fn nesting_up_to_the_limit_decodes_and_one_more_level_is_refused() {
        // Each `Boxed` is one level (its enum; a `Box` is transparent). Find the deepest tree
        // that fits, and check the next one is refused.
        let fits = (0..MAX_DEPTH)
            .rev()
            .find(|&d| from_bytes_exact::<Tree>(&postcard::to_allocvec(&boxed(d)).unwrap()).is_ok())
            .expect("some depth fits");
        assert!(fits >= MAX_DEPTH - 2, "only {fits} levels decoded");
        let deeper = postcard::to_allocvec(&boxed(fits + 1)).unwrap();
        assert!(matches!(
            from_bytes_exact::<Tree>(&deeper),
            Err(DecodeError::TooDeep(MAX_DEPTH))
        ));
        let exact = from_bytes_exact::<Tree>(&postcard::to_allocvec(&boxed(fits)).unwrap());
        drop_flat(exact.unwrap());
    }

    /// A megabyte of nested openings: with plain postcard this overflows the stack and aborts the
    /// process (the test binary would die); here it is one error.
    #[test]
    fn a_megabyte_of_openings_is_an_error_not_a_crash() {
        // `Boxed` is variant 2, `Node` variant 1 followed by a length: both open a level per byte or
        // two, and never close.
        let boxes = vec![2u8; 1 << 20];
        assert!(matches!(
            from_bytes_exact::<Tree>(&boxes),
            Err(DecodeError::TooDeep(_))
        ));
        let nodes: Vec<u8> = std::iter::repeat_n([1u8, 1u8], 1 << 19).flatten().collect();
        assert!(matches!(
            from_bytes_exact::<Tree>(&nodes),
            Err(DecodeError::TooDeep(_))
        ));
        let options: Vec<u8> = std::iter::repeat_n([3u8, 1u8], 1 << 19).flatten().collect();
        assert!(matches!(
            from_bytes_exact::<Tree>(&options),
            Err(DecodeError::TooDeep(_))
        ));
        // Nested vectors of a plain recursive struct.
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Dir {
            children: Vec<Dir>,
        }
        let dirs = vec![1u8; 1 << 20];
        assert!(matches!(
            from_bytes_exact::<Dir>(&dirs),
            Err(DecodeError::TooDeep(_))
        ));
    }

    #[test]
    fn a_lower_limit_applies_to_maps_and_tuples_too() {
        let value = vec![BTreeMap::from([(1u8, (2u8, (3u8,)))])];
        let bytes = postcard::to_allocvec(&value).unwrap();
        // seq, map, tuple, tuple: four levels.
        assert!(from_bytes_within::<Vec<BTreeMap<u8, (u8, (u8,))>>>(&bytes, 4).is_ok());
        assert!(matches!(
            from_bytes_within::<Vec<BTreeMap<u8, (u8, (u8,))>>>(&bytes, 3),
            Err(DecodeError::TooDeep(3))
        ));
    }
}
