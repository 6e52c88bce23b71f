//! Errors a client sees.

use std::time::Duration;

use crate::wire::{ErrorCode, RefuseReason};

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
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
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error: unknown view, bad payload, the view's own error, a panic.
    #[error("{code}: {message}")]
    Remote {
        /// What kind of failure, to match on.
        code: ErrorCode,
        /// The server's explanation (for a view error, the error's text).
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

impl CallError {
    /// The server's error code, when the server answered with an error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            CallError::Remote { code, .. } => Some(*code),
            _ => None,
        }
    }
}
