//! Grants: capabilities a view hands its client for one cloud operation on one path. A grant is
//! signed with keyed BLAKE3 under a key derived from the server's private key, and binds the
//! operation, the normalized path, the session, an expiry and an optional size limit; the cloud
//! endpoint accepts it only for exactly that.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::path::CloudPath;
use crate::auth::SessionId;

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CloudOperation {
    /// Make a directory.
    CreateDirectory,
    /// Write (create or replace) a file.
    WriteFile,
    /// Read a file.
    ReadFile,
    /// Delete a file, or a directory with everything under it.
    DeleteItem,
    /// List a directory's tree.
    ReadTree,
    /// Size, hash, type and times of an item.
    Stat,
}

/// A session's login: its user, and the login's number (it changes at every login and logout).
type Login = crate::auth::LoginState;

/// The signed part of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Body {
    operation: CloudOperation,
    path: String,
    session: [u8; 16],
    /// The user the session was logged in as, and the login's number: a grant dies with a
    /// logout, and stays dead after a new login.
    user: Option<i64>,
    login: u64,
    expires: u64,
    max_size: Option<u64>,
}

/// A grant as it travels: from the view to its client, and from the client to the cloud endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    body: Body,
    mac: [u8; 32],
}

/// Why a grant was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GrantError {
    /// Not signed by this server (forged or tampered).
    #[error("the grant's signature does not verify")]
    BadSignature,
    /// Past its expiry.
    #[error("the grant has expired")]
    Expired,
    /// For another operation.
    #[error("the grant is for {granted:?}, not {asked:?}")]
    WrongOperation {
        /// What the grant allows.
        granted: CloudOperation,
        /// What was asked.
        asked: CloudOperation,
    },
    /// For another path.
    #[error("the grant is for another path")]
    WrongPath,
    /// The session it was given to has ended, or is no longer logged in as the same user.
    #[error("the grant's session has ended or logged out")]
    Revoked,
    /// Presented by a client of another session than the one it was given to (or by one whose
    /// session token is not this server's).
    #[error("the grant belongs to another session")]
    OtherSession,
    /// Its path does not parse (cannot happen for grants this server signed).
    #[error("the grant's path is invalid: {0}")]
    BadPath(#[from] super::path::PathError),
}

/// Signs and checks grants.
#[derive(Clone)]
pub struct GrantKey {
    key: [u8; 32],
}

impl std::fmt::Debug for GrantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GrantKey(..)")
    }
}

/// Context for deriving the grant key: a different key from the session tokens' one.
const GRANT_KEY_CONTEXT: &str = "fluxon 2026-11 cloud grant MAC v1";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl GrantKey {
    /// Derives the grant key from the server's private key.
    pub fn from_private_key(private_key: &[u8]) -> Self {
        GrantKey {
            key: blake3::derive_key(GRANT_KEY_CONTEXT, private_key),
        }
    }

    /// A key from fresh randomness: grants it signs die with the process.
    pub fn random() -> Result<Self, crate::auth::AuthError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| crate::auth::AuthError::Random(e.to_string()))?;
        Ok(GrantKey { key })
    }

    fn mac(&self, body: &Body) -> Result<blake3::Hash, postcard::Error> {
        Ok(blake3::keyed_hash(&self.key, &postcard::to_allocvec(body)?))
    }

    /// A grant of `operation` on `path` to `session` (logged in as `user`, at the login numbered
    /// `login`), valid for `ttl`, for at most `max_size` bytes (writes).
    pub fn grant(
        &self,
        operation: CloudOperation,
        path: &CloudPath,
        (session, (user, login)): (SessionId, Login),
        ttl: Duration,
        max_size: Option<u64>,
    ) -> Result<Grant, postcard::Error> {
        let body = Body {
            operation,
            path: path.as_str().to_owned(),
            session: *session.as_bytes(),
            user,
            login,
            expires: unix_now().saturating_add(ttl.as_secs().max(1)),
            max_size,
        };
        let mac = *self.mac(&body)?.as_bytes();
        Ok(Grant { body, mac })
    }

    /// Checks that `grant` is ours, current, and for `operation` on `path`; returns the session
    /// it was given to and its login then (user and number; the caller checks the session is
    /// still alive and still at that login).
    pub fn verify(
        &self,
        grant: &Grant,
        operation: CloudOperation,
        path: &CloudPath,
    ) -> Result<([u8; 16], Login), GrantError> {
        let expected = self
            .mac(&grant.body)
            .map_err(|_| GrantError::BadSignature)?;
        // blake3::Hash compares in constant time.
        if expected != blake3::Hash::from(grant.mac) {
            return Err(GrantError::BadSignature);
        }
        if unix_now() >= grant.body.expires {
            return Err(GrantError::Expired);
        }
        if grant.body.operation != operation {
            return Err(GrantError::WrongOperation {
                granted: grant.body.operation,
                asked: operation,
            });
        }
        if CloudPath::parse(&grant.body.path)? != *path {
            return Err(GrantError::WrongPath);
        }
        Ok((grant.body.session, (grant.body.user, grant.body.login)))
    }
}

impl Grant {
    /// The operation it allows.
    pub fn operation(&self) -> CloudOperation {
        self.body.operation
    }

    /// The path it is for.
    pub fn path(&self) -> &str {
        &self.body.path
    }

    /// The most bytes a write may bring, if limited.
    pub fn max_size(&self) -> Option<u64> {
        self.body.max_size
    }
}

/// Checks a grant for `operation` on `path`: signed with `key`, not expired, for exactly that,
/// and its session still there and logged in as when the grant was signed (a logout revokes).
/// The session and its user.
pub(crate) fn check(
    key: &GrantKey,
    sessions: &dyn crate::auth::SessionVerifier,
    grant: &Grant,
    operation: CloudOperation,
    path: &CloudPath,
) -> Result<(crate::auth::SessionId, Option<crate::auth::UserId>), GrantError> {
    let (session, login) = key.verify(grant, operation, path)?;
    let session = crate::auth::SessionId::from_bytes(session);
    match sessions.login_of(&session) {
        Some(now) if now == login => Ok((session, login.0)),
        _ => Err(GrantError::Revoked),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (GrantKey, SessionId, CloudPath) {
        (
            GrantKey::from_private_key(&[9; 32]),
            SessionId::random().unwrap(),
            CloudPath::parse("jack/docs/a.txt").unwrap(),
        )
    }

    #[test]
    fn a_grant_works_for_exactly_what_it_names() {
        let (key, session, path) = setup();
        let grant = key
            .grant(
                CloudOperation::WriteFile,
                &path,
                (session, (Some(1), 1)),
                Duration::from_secs(60),
                Some(10),
            )
            .unwrap();
        assert_eq!(
            key.verify(&grant, CloudOperation::WriteFile, &path)
                .unwrap(),
            (*session.as_bytes(), (Some(1), 1))
        );
        assert_eq!(grant.max_size(), Some(10));
        assert!(matches!(
            key.verify(&grant, CloudOperation::ReadFile, &path),
            Err(GrantError::WrongOperation { .. })
        ));
        let other = CloudPath::parse("jack/docs/b.txt").unwrap();
        assert_eq!(
            key.verify(&grant, CloudOperation::WriteFile, &other),
            Err(GrantError::WrongPath)
        );
        // Equivalent spellings of the same path are the same path.
        let spelled = CloudPath::parse("jack//docs/a.txt/").unwrap();
        assert!(key
            .verify(&grant, CloudOperation::WriteFile, &spelled)
            .is_ok());
    }

    #[test]
    fn forged_tampered_foreign_and_expired_grants_are_refused() {
        let (key, session, path) = setup();
        let grant = key
            .grant(
                CloudOperation::ReadFile,
                &path,
                (session, (None, 0)),
                Duration::from_secs(60),
                None,
            )
            .unwrap();
        let foreign = GrantKey::from_private_key(&[8; 32]);
        assert_eq!(
            foreign.verify(&grant, CloudOperation::ReadFile, &path),
            Err(GrantError::BadSignature)
        );

        let mut tampered = grant.clone();
        tampered.body.path = "jill/docs/a.txt".into();
        let jill = CloudPath::parse("jill/docs/a.txt").unwrap();
        assert_eq!(
            key.verify(&tampered, CloudOperation::ReadFile, &jill),
            Err(GrantError::BadSignature)
        );

        let mut longer = grant.clone();
        longer.body.expires += 3600;
        assert_eq!(
            key.verify(&longer, CloudOperation::ReadFile, &path),
            Err(GrantError::BadSignature)
        );

        let mut expired = grant.clone();
        expired.body.expires = unix_now() - 1;
        expired.mac = *key.mac(&expired.body).unwrap().as_bytes();
        assert_eq!(
            key.verify(&expired, CloudOperation::ReadFile, &path),
            Err(GrantError::Expired)
        );
    }
}
