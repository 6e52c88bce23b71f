//! Authentication primitives: signed session tokens and the server's private key.
//!
//! A session token is 128 random bits (the session id) followed by a keyed-BLAKE3 MAC of those bits
//! and of the session's login generation, under a key derived from the server's private key. The
//! server hands the token out in the handshake, and a new one whenever the session logs in or out
//! (the old one stops verifying: no session fixation); a client that reconnects presents the last
//! one to resume its session (and its login). A token whose MAC does not verify is never honoured.
//! This module owns the cryptography and password hashing ([`PasswordHasher`]); the session
//! registry lives in `server`.
//!
//! The private key itself comes from a secrets directory or the environment ([`Secrets`],
//! [`Secret`]).

mod hashing;
mod secrets;
mod token;
mod verifier;

pub use hashing::{default_concurrent_hashes, HashError, PasswordHasher};
pub use secrets::{Secret, SecretError, Secrets, PRIVATE_KEY_FILE};
pub use token::{AuthError, SessionId, SessionKey, SessionToken, MIN_PRIVATE_KEY_LEN};
pub(crate) use verifier::SessionVerifier;
pub use verifier::{LoginState, UserId};
