//! Passwords, stored only as argon2id hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rusqlite::types::{Value, ValueRef};

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

impl Password {
    /// Hashes `plain` with argon2id and a fresh random salt.
    pub fn hash(plain: &str) -> Result<Password, DbError> {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| DbError::Password(e.to_string()))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| DbError::Password(e.to_string()))?;
        let hash = Argon2::default()
            .hash_password(plain.as_bytes(), &salt)
            .map_err(|e| DbError::Password(e.to_string()))?;
        Ok(Password {
            hash: hash.to_string(),
        })
    }

    /// Whether `plain` is the password (in constant time, by argon2's verifier).
    pub fn verify(&self, plain: &str) -> bool {
        match PasswordHash::new(&self.hash) {
            Ok(hash) => Argon2::default()
                .verify_password(plain.as_bytes(), &hash)
                .is_ok(),
            Err(_) => false,
        }
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
