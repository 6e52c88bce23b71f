//! Typed reverse requests: `#[reverse]` declares a client handler once, in a crate both sides
//! share, and the server's sends and calls and the client's `on` are checked against it.
//!
//! ```
//! use fluxon::reverse;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Message { pub from: String, pub text: String }
//!
//! /// What a client answers for a message it showed.
//! #[derive(Serialize, Deserialize, PartialEq, Debug)]
//! pub enum Ack { Shown }
//!
//! #[reverse]
//! pub async fn receive_message(message: Message) -> Ack;
//! ```
//!
//! Then `server.reverse_call(user, receive_message, &message, timeout)` takes only a
//! `Message` and gives an `Ack`, and `conn.on(receive_message, |m: Message| async { Ack::Shown })`
//! takes only a handler of that shape; the by-name forms (`"receive_message"`) stay for dynamic
//! names.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A reverse request declared with `#[reverse]`: its name, what the server sends, what the
/// client answers.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a reverse request",
    label = "not a reverse request",
    note = "declare it with `#[fluxon::reverse] async fn name(payload: P) -> R;`, or give the name as a string"
)]
pub trait Reverse: Copy + Send + Sync + 'static {
    /// What the server sends.
    type Payload: Serialize + DeserializeOwned + Send + 'static;
    /// What the client answers.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// The name it is sent under.
    const NAME: &'static str;
}

/// What a reverse send names: a `#[reverse]` declaration (its payload type checked), or a name
/// as a string (any payload).
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not take a `{P}` as its payload",
    label = "this reverse request's payload type is another",
    note = "send what its `#[reverse]` declaration takes, or name it by a string for an unchecked send"
)]
pub trait ToReverse<P: ?Sized> {
    /// The name to send under.
    fn reverse_name(&self) -> &str;
}

/// What a reverse call names: a `#[reverse]` declaration (payload and reply types checked), or
/// a name as a string (any types).
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not take a `{P}` and answer a `{R}`",
    label = "this reverse request's payload or reply type is another",
    note = "use the types its `#[reverse]` declaration names, or name it by a string for an unchecked call"
)]
pub trait ToReverseCall<P: ?Sized, R> {
    /// The name to send under.
    fn reverse_name(&self) -> &str;
}

impl<T: Reverse> ToReverse<T::Payload> for T {
    fn reverse_name(&self) -> &str {
        T::NAME
    }
}

impl<T: Reverse> ToReverseCall<T::Payload, T::Reply> for T {
    fn reverse_name(&self) -> &str {
        T::NAME
    }
}

macro_rules! by_name {
    ($($ty:ty),*) => {$(
        impl<P: ?Sized> ToReverse<P> for $ty {
            fn reverse_name(&self) -> &str {
                self
            }
        }

        impl<P: ?Sized, R> ToReverseCall<P, R> for $ty {
            fn reverse_name(&self) -> &str {
                self
            }
        }
    )*};
}

by_name!(&str, &String, String);
