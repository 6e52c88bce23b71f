//! Authentication primitives: signed session tokens and the server's private key.
//!
//! A session token is 128 random bits (the session id) followed by a keyed-BLAKE3 MAC of those bits
//! under a key derived from the server's private key. The server hands the token out in the
//! handshake; a client that reconnects presents it to resume its session (and its login). A token
//! whose MAC does not verify is never honoured. This module owns only the cryptography; the session
//! registry lives in `server`.
//!
//! The private key itself comes from a secrets directory or the environment ([`Secrets`],
//! [`Secret`]).

mod secrets;
mod token;

pub use secrets::{Secret, SecretError, Secrets, PRIVATE_KEY_FILE};
pub use token::{AuthError, SessionId, SessionKey, SessionToken, MIN_PRIVATE_KEY_LEN};
