//! Errors a client sees.

use std::time::Duration;

use bytes::Bytes;

use crate::routing::NoViewError;

use crate::wire::{ErrorCode, RefuseReason};

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The server could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Io {
        /// The address tried.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The TLS handshake failed: the server's certificate is not one the client trusts, or the
    /// server does not speak TLS.
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// The address tried.
        addr: String,
        /// What went wrong.
        reason: String,
    },
    /// The server refused the handshake.
    #[error("the server refused the connection ({reason}): {message}")]
    Refused {
        /// The server's reason.
        reason: RefuseReason,
        /// The server's explanation.
        message: String,
    },
    /// The server did not answer the handshake as a fluxon server would.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// A setting of [`ClientConfig`](super::ClientConfig) cannot work.
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),
    /// The handshake took too long.
    #[error("the server did not answer the handshake within {0:?}")]
    Timeout(Duration),
}

/// Why a call did not produce a reply.
///
/// `E` is the view's own error type ([`View::Error`](crate::View::Error)): the typed
/// [`call`](super::ConnectionHandler::call) decodes it, so a domain error is matched on
/// (`Err(CallError::View(OrderError::OutOfStock))`). For a view with no error type of its own it
/// is [`NoViewError`], which has no values; calls by name give the error's postcard bytes
/// (`CallError<Bytes>`, decoded with [`decode_view`](CallError::decode_view)).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError<E = NoViewError> {
    /// The view refused the call with an error of its own type ([`ErrorCode::Rejected`]).
    #[error("the view rejected the call with a `{}`", std::any::type_name::<E>())]
    View(E),
    /// The server answered with an error: unknown view, bad payload, a message the view chose
    /// (`ViewFailed`), an internal error or a panic (a generic message with an incident id).
    #[error("{code}: {message}")]
    Remote {
        /// What kind of failure, to match on.
        code: ErrorCode,
        /// The server's explanation.
        message: String,
    },
    /// No reply within the call's timeout.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The connection dropped before the reply came; the call may or may not have run.
    #[error("the connection was lost before the reply arrived")]
    Disconnected,
    /// The handler was closed, or gave up reconnecting.
    #[error("the connection is closed")]
    Closed,
    /// The payload would not encode.
    #[error("cannot encode the payload: {0}")]
    Encode(postcard::Error),
    /// The reply did not decode as the expected type.
    #[error("the reply does not decode as `{expected}`: {source}")]
    Decode {
        /// The type that was expected.
        expected: &'static str,
        /// What did not decode.
        source: crate::wire::DecodeError,
    },
    /// The call is bigger than the server accepts; it was not sent.
    #[error("the call is {size} bytes, over the server's frame limit of {max}")]
    TooLarge {
        /// The encoded call's size.
        size: usize,
        /// The server's limit.
        max: usize,
    },
}

impl<E> CallError<E> {
    /// The server's error code, when the server answered with an error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CallError::Remote { code, .. } => Some(*code),
            CallError::View(_) => Some(ErrorCode::Rejected),
            _ => None,
        }
    }

    /// The view's own error, when it rejected the call with one.
    pub fn view_error(&self) -> Option<&E> {
        match self {
            CallError::View(error) => Some(error),
            _ => None,
        }
    }

    /// The same error with the view's own error mapped by `f`; every other variant unchanged.
    pub fn map_view<F>(self, f: impl FnOnce(E) -> CallError<F>) -> CallError<F> {
        match self {
            CallError::View(error) => f(error),
            CallError::Remote { code, message } => CallError::Remote { code, message },
            CallError::Timeout(after) => CallError::Timeout(after),
            CallError::Disconnected => CallError::Disconnected,
            CallError::Closed => CallError::Closed,
            CallError::Encode(err) => CallError::Encode(err),
            CallError::Decode { expected, source } => CallError::Decode { expected, source },
            CallError::TooLarge { size, max } => CallError::TooLarge { size, max },
        }
    }
}

impl CallError<Bytes> {
    /// Decodes the view's own error from its bytes as `E` (what the typed
    /// [`call`](super::ConnectionHandler::call) does); bytes that do not decode as `E` are
    /// [`CallError::Decode`].
    pub fn decode_view<E: serde::de::DeserializeOwned>(self) -> CallError<E> {
        self.map_view(|bytes| match crate::wire::from_bytes_exact(&bytes) {
            Ok(error) => CallError::View(error),
            Err(source) => CallError::Decode {
                expected: std::any::type_name::<E>(),
                source,
            },
        })
    }
}
