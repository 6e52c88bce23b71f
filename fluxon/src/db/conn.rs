//! [`Conn`]: one connection of either backend, as a [`Query`](super::Query) runs on it. Every
//! statement fluxon runs goes through these few methods (execute, insert, read rows, a batch of
//! SQL), so a query is written once for every backend: it says what to run and how to read a
//! row ([`SqlRow`]), and the connection prepares (cached per connection), binds fluxon's
//! [`Value`]s and steps the rows in its driver's way.

use std::cell::RefCell;
use std::ops::ControlFlow;

use rusqlite::params_from_iter;

use super::dialect::Dialect;
use super::postgres::PgConnection;
use super::sql::{SqlRow, Value};
use super::statement::{Outcome, Parts, Statement};
use super::DbError;

/// A connection a query runs on (inside whatever transaction it is in).
#[derive(Clone, Copy)]
pub struct Conn<'c> {
    driver: Driver<'c>,
}

#[derive(Clone, Copy)]
enum Driver<'c> {
    Sqlite(&'c rusqlite::Connection),
    Postgres(&'c RefCell<PgConnection>),
}

impl<'c> Conn<'c> {
    /// A SQLite connection.
    pub(crate) fn sqlite(conn: &'c rusqlite::Connection) -> Self {
        Conn {
            driver: Driver::Sqlite(conn),
        }
    }

    /// A PostgreSQL connection.
    pub(crate) fn postgres(conn: &'c RefCell<PgConnection>) -> Self {
        Conn {
            driver: Driver::Postgres(conn),
        }
    }

    /// The backend's dialect.
    pub fn dialect(&self) -> Dialect {
        match self.driver {
            Driver::Sqlite(_) => Dialect::Sqlite,
            Driver::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection underneath, for SQLite's own escape hatches
    /// ([`Transaction::with_connection`](super::Transaction::with_connection)); `None` on another
    /// backend.
    pub(crate) fn as_sqlite(&self) -> Option<&'c rusqlite::Connection> {
        match self.driver {
            Driver::Sqlite(conn) => Some(conn),
            Driver::Postgres(_) => None,
        }
    }

    /// Runs a statement with `params` bound to its `?`s; how many rows it changed.
    pub(crate) fn execute(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<usize, DbError> {
        match self.driver {
            Driver::Sqlite(conn) => Ok(conn
                .prepare_cached(sql)?
                .execute(params_from_iter(params))?),
            Driver::Postgres(conn) => conn.borrow_mut().execute(sql, params),
        }
    }

    /// Runs an INSERT of rows whose key column is `key`, and gives the key of the last row it
    /// inserted (SQLite: its rowid, which is an auto key; PostgreSQL: `RETURNING` the key).
    pub(crate) fn insert(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
        key: &str,
    ) -> Result<i64, DbError> {
        match self.driver {
            Driver::Sqlite(conn) => {
                conn.prepare_cached(sql)?
                    .execute(params_from_iter(params))?;
                Ok(conn.last_insert_rowid())
            }
            Driver::Postgres(conn) => {
                let sql = format!("{sql} RETURNING {}", super::schema::quote_ident(key));
                let mut last = None;
                conn.borrow_mut().each(&sql, params, false, &mut |row| {
                    last = Some(returned_key(row));
                    Ok(ControlFlow::Continue(()))
                })?;
                last.ok_or(DbError::NotFound)
            }
        }
    }

    /// Runs an INSERT of `rows` rows whose key column is `key`, and adds their keys to `ids`,
    /// in order (SQLite: a statement's rows get consecutive rowids, each the largest so far plus
    /// one; PostgreSQL: `RETURNING` the keys, which need not be consecutive).
    pub(crate) fn insert_rows(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
        key: &str,
        rows: usize,
        ids: &mut Vec<i64>,
    ) -> Result<(), DbError> {
        match self.driver {
            Driver::Sqlite(_) => {
                let last = self.insert(sql, params, key)?;
                ids.extend((0..rows as i64).rev().map(|back| last - back));
                Ok(())
            }
            Driver::Postgres(conn) => {
                let sql = format!("{sql} RETURNING {}", super::schema::quote_ident(key));
                conn.borrow_mut().each(&sql, params, false, &mut |row| {
                    ids.push(returned_key(row));
                    Ok(ControlFlow::Continue(()))
                })
            }
        }
    }

    /// Runs a query, handing each row to `each` until it says [`ControlFlow::Break`] or errs.
    #[inline]
    pub(crate) fn each(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
        each: impl FnMut(&SqlRow<'_>) -> Result<ControlFlow<()>, DbError>,
    ) -> Result<(), DbError> {
        self.each_row(sql, params, false, each)
    }

    /// [`each`](Self::each) for a result too large to hold: the rows are read as `each` takes
    /// them, in bounded memory (SQLite always steps row by row; PostgreSQL otherwise reads the
    /// whole result in one round trip).
    pub(crate) fn each_streamed(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
        each: impl FnMut(&SqlRow<'_>) -> Result<ControlFlow<()>, DbError>,
    ) -> Result<(), DbError> {
        self.each_row(sql, params, true, each)
    }

    fn each_row(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
        streamed: bool,
        mut each: impl FnMut(&SqlRow<'_>) -> Result<ControlFlow<()>, DbError>,
    ) -> Result<(), DbError> {
        match self.driver {
            Driver::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(sql)?;
                let mut rows = statement.query(params_from_iter(params))?;
                while let Some(row) = rows.next()? {
                    if each(&SqlRow::new(row))?.is_break() {
                        break;
                    }
                }
                Ok(())
            }
            Driver::Postgres(conn) => conn.borrow_mut().each(sql, params, streamed, &mut each),
        }
    }

    /// Runs a one-statement query.
    pub(crate) fn statement<T>(&self, statement: Statement<T>) -> Result<T, DbError> {
        let Parts {
            sql,
            params,
            outcome,
        } = statement.parts?;
        match outcome {
            Outcome::Changed(then) => then(self.execute(&sql, params)?),
            Outcome::Inserted { key, then } => then(self.insert(&sql, params, key)?),
            Outcome::Rows(mut reader) => {
                self.each(&sql, params, |row| reader.row(row))?;
                reader.finish()
            }
            Outcome::Ready(value) => Ok(value),
        }
    }

    /// Runs a query and reads every row with `read`.
    #[inline]
    pub(crate) fn rows<T>(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
        mut read: impl FnMut(&SqlRow<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        let mut out = Vec::new();
        self.each(sql, params, |row| {
            out.push(read(row)?);
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(out)
    }

    /// Runs a query and reads its first row with `read`, if it has one.
    #[inline]
    pub(crate) fn first<T>(
        &self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
        read: impl FnOnce(&SqlRow<'_>) -> Result<T, DbError>,
    ) -> Result<Option<T>, DbError> {
        let mut read = Some(read);
        let mut out = None;
        self.each(sql, params, |row| {
            if let Some(read) = read.take() {
                out = Some(read(row)?);
            }
            Ok(ControlFlow::Break(()))
        })?;
        Ok(out)
    }

    /// Whether a transaction is open on the connection.
    pub(crate) fn in_transaction(&self) -> bool {
        match self.driver {
            Driver::Sqlite(conn) => !conn.is_autocommit(),
            Driver::Postgres(conn) => conn.borrow().in_transaction(),
        }
    }

    /// Begins a transaction (SQLite: deferred).
    pub(crate) fn begin(&self) -> Result<(), DbError> {
        match self.driver {
            Driver::Sqlite(conn) => Ok(conn.execute_batch("BEGIN")?),
            Driver::Postgres(conn) => conn.borrow_mut().begin(false),
        }
    }

    /// Commits or rolls back the transaction [`begin`](Self::begin) opened.
    pub(crate) fn end(&self, commit: bool) -> Result<(), DbError> {
        match self.driver {
            Driver::Sqlite(conn) => {
                let ended = conn.execute_batch(if commit { "COMMIT" } else { "ROLLBACK" });
                if ended.is_err() && !conn.is_autocommit() {
                    let _ = conn.execute_batch("ROLLBACK");
                }
                Ok(ended?)
            }
            Driver::Postgres(conn) => conn.borrow_mut().end(commit),
        }
    }

    /// Runs statements with no parameters (`;`-separated).
    pub(crate) fn batch(&self, sql: &str) -> Result<(), DbError> {
        match self.driver {
            Driver::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Driver::Postgres(conn) => conn.borrow_mut().batch(sql),
        }
    }
}

/// The key an INSERT returned, as the `i64` the insert methods give: an integer key as it is; a
/// key of another type (text a model gives itself) as 0, since PostgreSQL has no rowid (the
/// caller knows that key: it gave it).
pub(crate) fn returned_key(row: &SqlRow<'_>) -> i64 {
    row.get_ref(0)
        .ok()
        .and_then(|value| value.as_i64().ok())
        .unwrap_or(0)
}
