//! The user model's queries: load the logged-in user, and check a username and password.

use std::marker::PhantomData;

use super::conn::Conn;
use super::sql::Value;

use super::column::{Column, ReadOnly};
use super::model::{AuthorizedUser, Model};
use super::password::Password;
use super::query::{First, Query, Select};
use super::schema::{quote_ident, ColumnSchema};
use super::value::SqlType;
use super::DbError;

fn column_index<U: Model>(name: &str) -> Result<usize, DbError> {
    U::SCHEMA
        .columns
        .iter()
        .position(|c| c.name == name)
        .ok_or(DbError::NotFound)
}

/// Loads the user whose key is `id`.
pub fn user_by_id<U: AuthorizedUser>(id: i64) -> Result<First<U>, DbError> {
    let key: Column<U, i64, ReadOnly> = Column::new(column_index::<U>(U::KEY_COLUMN)?);
    Ok(First(Select::new(key.eq(id))))
}

/// Looks up a user's id and password hash by username.
pub struct Credentials<U> {
    username: String,
    _user: PhantomData<fn() -> U>,
}

impl<U: AuthorizedUser> Credentials<U> {
    /// The lookup of `username`.
    pub fn new(username: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            _user: PhantomData,
        }
    }
}

impl<U: AuthorizedUser> Query for Credentials<U> {
    type Output = Option<(i64, Password)>;
    fn writes(&self) -> bool {
        false
    }
    fn run(self, conn: &Conn<'_>) -> Result<Self::Output, DbError> {
        let password: &'static ColumnSchema =
            &U::SCHEMA.columns[column_index::<U>(U::PASSWORD_COLUMN)?];
        let sql = format!(
            "SELECT {}, {} FROM {} WHERE {} = ?",
            quote_ident(U::KEY_COLUMN),
            quote_ident(U::PASSWORD_COLUMN),
            quote_ident(U::TABLE),
            quote_ident(U::USERNAME_COLUMN)
        );
        conn.first(&sql, [Value::Text(self.username)], |row| {
            let id = row.integer(0, U::KEY_COLUMN)?;
            let hash = Password::from_sql(row.get_ref(1)?, password)?;
            Ok((id, hash))
        })
    }
}
