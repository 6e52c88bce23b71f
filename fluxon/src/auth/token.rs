//! Session ids, tokens and the key that signs them.

use std::fmt;

use crate::wire::SessionTokenBytes;

/// The shortest private key accepted, in bytes.
pub const MIN_PRIVATE_KEY_LEN: usize = 32;

/// Context string for deriving the MAC key, so the private key can safely serve other purposes too.
const SESSION_KEY_CONTEXT: &str = "fluxon 2026-11 session token MAC v1";

/// Errors about keys.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The private key is too short to be safe.
    #[error("private key is {len} bytes; at least {MIN_PRIVATE_KEY_LEN} are required")]
    KeyTooShort {
        /// The length that was given.
        len: usize,
    },
    /// The operating system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
}

/// A session's id: 128 random bits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId([u8; 16]);

impl SessionId {
    /// A fresh random id.
    pub fn random() -> Result<Self, AuthError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(SessionId(id))
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The id with these bytes (carried inside something already verified, like a grant).
    pub(crate) fn from_bytes(bytes: [u8; 16]) -> Self {
        SessionId(bytes)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

impl fmt::Display for SessionId {
    /// The first 8 bytes in hex: enough to tell sessions apart in logs, not enough to forge anything
    /// (a token also needs its MAC).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0[..8] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A signed session token, as handed to a client.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SessionToken {
    id: SessionId,
    mac: [u8; 32],
}

impl SessionToken {
    /// The session this token names (not yet verified: see [`SessionKey::verify`]).
    pub fn id(&self) -> SessionId {
        self.id
    }

    /// The token as it travels on the wire.
    pub fn to_wire(&self) -> SessionTokenBytes {
        SessionTokenBytes {
            id: self.id.0,
            mac: self.mac,
        }
    }

    /// A token received from the wire (unverified).
    pub fn from_wire(bytes: SessionTokenBytes) -> Self {
        SessionToken {
            id: SessionId(bytes.id),
            mac: bytes.mac,
        }
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The MAC is a credential: never print it.
        f.debug_struct("SessionToken")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The key that signs and verifies session tokens, derived from the server's private key.
#[derive(Clone)]
pub struct SessionKey {
    key: [u8; 32],
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// Derives the session key from a private key of at least [`MIN_PRIVATE_KEY_LEN`] bytes.
    pub fn from_private_key(private_key: &[u8]) -> Result<Self, AuthError> {
        if private_key.len() < MIN_PRIVATE_KEY_LEN {
            return Err(AuthError::KeyTooShort {
                len: private_key.len(),
            });
        }
        Ok(SessionKey {
            key: blake3::derive_key(SESSION_KEY_CONTEXT, private_key),
        })
    }

    /// A key from fresh randomness: tokens it signs die with the process.
    pub fn random() -> Result<Self, AuthError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(SessionKey { key })
    }

    fn mac(&self, id: &SessionId, generation: u64) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(&id.0);
        hasher.update(&generation.to_le_bytes());
        hasher.finalize()
    }

    /// Signs a session id at one generation of its login (see [`verify`](Self::verify)).
    pub fn sign(&self, id: SessionId, generation: u64) -> SessionToken {
        SessionToken {
            id,
            mac: *self.mac(&id, generation).as_bytes(),
        }
    }

    /// Whether the token's MAC is ours for its session id at `generation` (compared in constant
    /// time). The generation changes at every login and logout of the session, so a token handed
    /// out before one no longer verifies after it: whoever learned a token before a login cannot
    /// use it to ride the logged-in session.
    pub fn verify(&self, token: &SessionToken, generation: u64) -> bool {
        // blake3::Hash's equality is constant-time.
        self.mac(&token.id, generation) == blake3::Hash::from(token.mac)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SessionKey {
        SessionKey::from_private_key(&[byte; 32]).unwrap()
    }

    #[test]
    fn signed_token_verifies_at_its_generation_only() {
        let id = SessionId::random().unwrap();
        let token = key(1).sign(id, 3);
        assert!(key(1).verify(&token, 3));
        assert_eq!(token.id(), id);
        assert!(!key(1).verify(&token, 4), "rotated away by a login");
        assert!(!key(1).verify(&token, 2));
    }

    #[test]
    fn tampered_or_foreign_token_is_refused() {
        let id = SessionId::random().unwrap();
        let token = key(1).sign(id, 0);
        assert!(!key(2).verify(&token, 0), "signed under another key");

        let mut wire = token.to_wire();
        wire.id[0] ^= 1;
        assert!(!key(1).verify(&SessionToken::from_wire(wire), 0));

        let mut wire = token.to_wire();
        wire.mac[31] ^= 0x80;
        assert!(!key(1).verify(&SessionToken::from_wire(wire), 0));
    }

    #[test]
    fn short_private_key_is_refused() {
        assert!(matches!(
            SessionKey::from_private_key(b"short"),
            Err(AuthError::KeyTooShort { len: 5 })
        ));
    }

    #[test]
    fn ids_are_random() {
        assert_ne!(SessionId::random().unwrap(), SessionId::random().unwrap());
    }

    #[test]
    fn debug_never_shows_the_mac() {
        let token = key(1).sign(SessionId::random().unwrap(), 0);
        let mac_hex: String = token.mac[..4].iter().map(|b| format!("{b:02x}")).collect();
        assert!(!format!("{token:?}").contains(&mac_hex));
    }
}
