//! [`Statement`]: a query that is one SQL statement, as data: its SQL, its bound values, and how
//! the statement's result becomes the query's output. Most queries are one statement (a select,
//! an insert, an update); written this way, one description serves every way of running it: a
//! blocking connection of either backend ([`Conn::statement`](super::Conn)) and the awaited
//! PostgreSQL path of [`AsyncDatabase`](super::AsyncDatabase), which sends the statement from
//! the awaiting task with no thread in between.

use std::borrow::Cow;
use std::ops::ControlFlow;

use super::conn::Conn;
use super::query::Query;
use super::sql::{SqlRow, Value};
use super::DbError;

/// A query that is one statement: what to run and how its result makes the output. Made by
/// [`Query::into_statement`] (fluxon's own one-statement queries); opaque outside fluxon.
pub struct Statement<T> {
    pub(crate) parts: Result<Parts<T>, DbError>,
    pub(crate) writes: bool,
}

/// What a [`Statement`] holds once made without error.
pub(crate) struct Parts<T> {
    /// The SQL, with `?` for each bound value.
    pub sql: Cow<'static, str>,
    pub params: Vec<Value>,
    pub outcome: Outcome<T>,
}

/// How the statement's result becomes the output.
pub(crate) enum Outcome<T> {
    /// From how many rows it changed.
    Changed(Box<dyn FnOnce(usize) -> Result<T, DbError> + Send>),
    /// From the key of the last row it inserted, whose key column is `key` (SQLite: the rowid;
    /// PostgreSQL: the statement `RETURNING` that column).
    Inserted {
        key: &'static str,
        then: Box<dyn FnOnce(i64) -> Result<T, DbError> + Send>,
    },
    /// From its rows, handed to a reader one by one until it says stop.
    Rows(Box<dyn ReadRows<T>>),
    /// Nothing to run: the output is known (an update that sets nothing).
    Ready(T),
}

/// Reads a statement's rows into an output.
pub(crate) trait ReadRows<T>: Send {
    /// Takes one row; [`ControlFlow::Break`] when no more are wanted.
    fn row(&mut self, row: &SqlRow<'_>) -> Result<ControlFlow<()>, DbError>;
    /// The output, once the rows are read.
    fn finish(self: Box<Self>) -> Result<T, DbError>;
}

impl<T> Statement<T> {
    /// A statement that changes rows; `then` makes the output of how many it changed.
    pub(crate) fn changed(
        sql: impl Into<Cow<'static, str>>,
        params: Vec<Value>,
        then: impl FnOnce(usize) -> Result<T, DbError> + Send + 'static,
    ) -> Self {
        Self::new(sql, params, true, Outcome::Changed(Box::new(then)))
    }

    /// A statement whose rows `reader` reads; `writes` says which connections may run it.
    pub(crate) fn rows(
        sql: impl Into<Cow<'static, str>>,
        params: Vec<Value>,
        writes: bool,
        reader: impl ReadRows<T> + 'static,
    ) -> Self {
        Self::new(sql, params, writes, Outcome::Rows(Box::new(reader)))
    }

    /// Nothing to run: the output is `value`.
    pub(crate) fn ready(value: T, writes: bool) -> Self {
        Self::new("", Vec::new(), writes, Outcome::Ready(value))
    }

    /// A statement that could not be made: running it is `err`.
    pub(crate) fn failed(err: DbError, writes: bool) -> Self {
        Statement {
            parts: Err(err),
            writes,
        }
    }

    fn new(
        sql: impl Into<Cow<'static, str>>,
        params: Vec<Value>,
        writes: bool,
        outcome: Outcome<T>,
    ) -> Self {
        Statement {
            parts: Ok(Parts {
                sql: sql.into(),
                params,
                outcome,
            }),
            writes,
        }
    }

    /// Builds the statement with `make`, or one that fails with its error.
    pub(crate) fn made(writes: bool, make: impl FnOnce() -> Result<Self, DbError>) -> Self {
        make().unwrap_or_else(|err| Self::failed(err, writes))
    }
}

impl Statement<i64> {
    /// An INSERT whose output is the key of the row it inserted (`key` is the key column).
    pub(crate) fn inserted(
        sql: impl Into<Cow<'static, str>>,
        params: Vec<Value>,
        key: &'static str,
    ) -> Self {
        Self::new(
            sql,
            params,
            true,
            Outcome::Inserted {
                key,
                then: Box::new(Ok),
            },
        )
    }
}

impl<T: Send + 'static> Statement<T> {
    /// The same statement, its output turned into another by `then`.
    pub(crate) fn map<U: Send + 'static>(
        self,
        then: impl FnOnce(T) -> Result<U, DbError> + Send + 'static,
    ) -> Statement<U> {
        let writes = self.writes;
        let parts = match self.parts {
            Ok(parts) => parts,
            Err(err) => return Statement::failed(err, writes),
        };
        let outcome = match parts.outcome {
            Outcome::Changed(first) => Outcome::Changed(Box::new(move |n| then(first(n)?))),
            Outcome::Inserted { key, then: first } => Outcome::Inserted {
                key,
                then: Box::new(move |n| then(first(n)?)),
            },
            Outcome::Rows(reader) => Outcome::Rows(Box::new(Mapped { reader, then })),
            Outcome::Ready(value) => match then(value) {
                Ok(value) => Outcome::Ready(value),
                Err(err) => return Statement::failed(err, writes),
            },
        };
        Statement::new(parts.sql, parts.params, writes, outcome)
    }
}

/// A reader whose output is turned into another.
struct Mapped<T, F> {
    reader: Box<dyn ReadRows<T>>,
    then: F,
}

impl<T, U, F: FnOnce(T) -> Result<U, DbError> + Send> ReadRows<U> for Mapped<T, F> {
    fn row(&mut self, row: &SqlRow<'_>) -> Result<ControlFlow<()>, DbError> {
        self.reader.row(row)
    }
    fn finish(self: Box<Self>) -> Result<U, DbError> {
        let this = *self;
        (this.then)(this.reader.finish()?)
    }
}

/// Every row, each read by `read`.
pub(crate) struct AllRows<T, F> {
    out: Vec<T>,
    read: F,
}

impl<T, F> AllRows<T, F> {
    pub(crate) fn new(read: F) -> Self {
        AllRows {
            out: Vec::new(),
            read,
        }
    }
}

impl<T: Send, F: FnMut(&SqlRow<'_>) -> Result<T, DbError> + Send> ReadRows<Vec<T>>
    for AllRows<T, F>
{
    fn row(&mut self, row: &SqlRow<'_>) -> Result<ControlFlow<()>, DbError> {
        self.out.push((self.read)(row)?);
        Ok(ControlFlow::Continue(()))
    }
    fn finish(self: Box<Self>) -> Result<Vec<T>, DbError> {
        Ok(self.out)
    }
}

/// The first row, if any, read by `read`.
pub(crate) struct FirstRow<T, F> {
    out: Option<T>,
    read: Option<F>,
}

impl<T, F> FirstRow<T, F> {
    pub(crate) fn new(read: F) -> Self {
        FirstRow {
            out: None,
            read: Some(read),
        }
    }
}

impl<T: Send, F: FnOnce(&SqlRow<'_>) -> Result<T, DbError> + Send> ReadRows<Option<T>>
    for FirstRow<T, F>
{
    fn row(&mut self, row: &SqlRow<'_>) -> Result<ControlFlow<()>, DbError> {
        if let Some(read) = self.read.take() {
            self.out = Some(read(row)?);
        }
        Ok(ControlFlow::Break(()))
    }
    fn finish(self: Box<Self>) -> Result<Option<T>, DbError> {
        Ok(self.out)
    }
}

impl<T: Send + 'static> Query for Statement<T> {
    type Output = T;
    fn writes(&self) -> bool {
        self.writes
    }
    fn run(self, conn: &Conn<'_>) -> Result<T, DbError> {
        conn.statement(self)
    }
    fn into_statement(self, _: super::Dialect) -> Result<Statement<T>, Self> {
        Ok(self)
    }
}

/// The `run` and `into_statement` of a query whose inherent `statement(self, dialect)` makes it
/// one [`Statement`].
macro_rules! one_statement {
    () => {
        fn run(self, conn: &$crate::db::Conn<'_>) -> Result<Self::Output, $crate::db::DbError> {
            conn.statement(self.statement(conn.dialect()))
        }
        fn into_statement(
            self,
            dialect: $crate::db::Dialect,
        ) -> Result<$crate::db::Statement<Self::Output>, Self> {
            Ok(self.statement(dialect))
        }
    };
}
pub(crate) use one_statement;
