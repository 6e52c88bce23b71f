//! Passwords, stored only as argon2id hashes.

use super::sql::{Value, ValueRef};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

use super::schema::{ColumnSchema, FieldKind};
use super::value::{ColumnType, SqlType};
use super::DbError;

/// A password field: holds the argon2id hash (PHC string), never the password. Make one with
/// [`Password::hash`]; check one with [`Password::verify`].
#[derive(Clone, PartialEq, Eq)]
pub struct Password {
    hash: String,
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(argon2id hash)")
    }
}

/// The most memory a stored hash may ask of a check (in KiB blocks, argon2's `m`): a hash made with
/// more (not by this crate) is refused rather than let one login allocate without bound.
const MAX_M_COST: u32 = 256 * 1024;

/// Work space for argon2: one [`Block`] per KiB of its memory cost. Kept by a hashing thread
/// between hashes, so that a server hashing all day holds the same memory as one hashing once.
pub(crate) type Memory = Vec<Block>;

fn failed(err: impl std::fmt::Display) -> DbError {
    DbError::Password(err.to_string())
}

impl Password {
    /// Hashes `plain` with argon2id (19 MiB, two passes) and a fresh random salt.
    ///
    /// This blocks its thread for the whole hash (tens of milliseconds, on one core). In a view,
    /// use [`Request::hash_password`](crate::Request::hash_password), which runs it off the
    /// runtime and within the server's hashing bound; elsewhere in async code,
    /// [`PasswordHasher`](crate::auth::PasswordHasher).
    pub fn hash(plain: &str) -> Result<Password, DbError> {
        Self::hash_in(plain, &mut Memory::new())
    }

    /// Whether `plain` is the password (the outputs compared in constant time). Blocks its thread
    /// as long as [`hash`](Self::hash) does.
    pub fn verify(&self, plain: &str) -> bool {
        self.verify_in(plain, &mut Memory::new())
    }

    /// [`hash`](Self::hash), with argon2's work space in `memory` (grown to size the first time).
    pub(crate) fn hash_in(plain: &str, memory: &mut Memory) -> Result<Password, DbError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(failed)?;
        let params = Params::default();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        memory.resize(params.block_count(), Block::default());
        let output = Output::init_with(Params::DEFAULT_OUTPUT_LEN, |out| {
            argon
                .hash_password_into_with_memory(plain.as_bytes(), &salt, out, &mut memory[..])
                .map_err(Into::into)
        })
        .map_err(failed)?;
        let salt = SaltString::encode_b64(&salt).map_err(failed)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(failed)?,
            salt: Some(salt.as_salt()),
            hash: Some(output),
        };
        Ok(Password {
            hash: phc.to_string(),
        })
    }

    /// [`verify`](Self::verify), with argon2's work space in `memory`. A stored hash that is not
    /// argon2id, or asks for more than [`MAX_M_COST`], never verifies.
    pub(crate) fn verify_in(&self, plain: &str, memory: &mut Memory) -> bool {
        let Ok(hash) = PasswordHash::new(&self.hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else {
            return false;
        };
        let Ok(params) = Params::try_from(&hash) else {
            return false;
        };
        if hash.algorithm != Algorithm::Argon2id.ident() || params.m_cost() > MAX_M_COST {
            return false;
        }
        let version = match hash.version.map(Version::try_from) {
            None => Version::V0x13,
            Some(Ok(version)) => version,
            Some(Err(_)) => return false,
        };
        let mut salt_bytes = [0u8; 64];
        let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
            return false;
        };
        let argon = Argon2::new(Algorithm::Argon2id, version, params.clone());
        memory.resize(params.block_count(), Block::default());
        let computed = Output::init_with(expected.len(), |out| {
            argon
                .hash_password_into_with_memory(plain.as_bytes(), salt, out, &mut memory[..])
                .map_err(Into::into)
        });
        // A stored hash with more memory than ours leaves no larger work space behind.
        let usual = Params::default().block_count();
        if memory.len() > usual {
            memory.truncate(usual);
            memory.shrink_to_fit();
        }
        // `Output`'s equality is constant-time.
        computed.is_ok_and(|computed| computed == expected)
    }

    /// The stored PHC string (`$argon2id$v=19$...`).
    pub fn phc(&self) -> &str {
        &self.hash
    }
}

impl SqlType for Password {
    const KIND: FieldKind = FieldKind::Password;
    fn to_sql(&self, _: &ColumnSchema) -> Result<Value, DbError> {
        Ok(Value::Text(self.hash.clone()))
    }
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
        let hash = String::from_sql(value, column)?;
        if !hash.starts_with("$argon2id$") {
            return Err(DbError::Decode {
                column: column.name,
                expected: "argon2id hash",
                reason: "the stored value is not an argon2id PHC string".to_owned(),
            });
        }
        Ok(Password { hash })
    }
}

impl ColumnType for Password {
    type Inner = Password;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hashes made with a reused work space are ordinary PHC strings that argon2's own
    /// verifier accepts, and the other way round.
    #[test]
    fn hashes_are_argon2s_own_phc_strings() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let mut memory = Memory::new();
        let ours = Password::hash_in("hunter2 ✓", &mut memory).unwrap();
        let parsed = PasswordHash::new(ours.phc()).unwrap();
        assert!(Argon2::default()
            .verify_password("hunter2 ✓".as_bytes(), &parsed)
            .is_ok());
        assert!(ours.phc().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"other", &salt)
            .unwrap()
            .to_string();
        let theirs = Password { hash: theirs };
        assert!(theirs.verify_in("other", &mut memory));
        assert!(!theirs.verify_in("Other", &mut memory));
        assert_eq!(
            memory.len(),
            Params::default().block_count(),
            "reused, not regrown"
        );
        // Not argon2id, or asking for more memory than allowed: never verifies.
        let argon2i = ours.phc().replacen("argon2id", "argon2i", 1);
        assert!(!Password { hash: argon2i }.verify("hunter2 ✓"));
        let greedy = ours.phc().replacen("m=19456", "m=4194304", 1);
        assert!(!Password { hash: greedy }.verify("hunter2 ✓"));
    }

    #[test]
    fn hash_verifies_only_the_right_password_and_never_holds_it() {
        let password = Password::hash("correct horse").unwrap();
        assert!(password.verify("correct horse"));
        assert!(!password.verify("correct horse "));
        assert!(password.phc().starts_with("$argon2id$"));
        assert!(!password.phc().contains("correct horse"));
        assert!(!format!("{password:?}").contains("argon2id$"));
        assert_ne!(Password::hash("correct horse").unwrap(), password, "salted");
    }
}
