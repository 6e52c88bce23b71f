//! Errors of the database layer.

/// What went wrong with a query or a transaction. Constraint failures are split out so a view can
/// answer "that username is taken" without parsing SQLite's messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// A UNIQUE or PRIMARY KEY constraint refused the row.
    #[error("unique constraint failed: {0}")]
    Unique(String),
    /// A FOREIGN KEY constraint refused the change: a missing parent, or deleting a row that rows
    /// with `on_delete = protect` still refer to.
    #[error("foreign key constraint failed: {0}")]
    ForeignKey(String),
    /// A CHECK constraint (max_length, positive, ...) refused the row.
    #[error("check constraint failed: {0}")]
    Check(String),
    /// A NOT NULL constraint refused the row.
    #[error("not null constraint failed: {0}")]
    NotNull(String),
    /// A value that cannot be stored in its column (a decimal with too many digits, ...).
    #[error("invalid value for column `{column}`: {reason}")]
    InvalidValue {
        /// The column.
        column: &'static str,
        /// Why.
        reason: String,
    },
    /// A stored value that does not decode as the field's type.
    #[error("column `{column}` holds a value that is not a {expected}: {reason}")]
    Decode {
        /// The column.
        column: &'static str,
        /// The field's type.
        expected: &'static str,
        /// Why.
        reason: String,
    },
    /// The row (or a column's new value) failed the model's validation; nothing was written.
    #[error("invalid: {0}")]
    Invalid(super::ValidationErrors),
    /// A model refers to a table that is not among the models given.
    #[error(
        "`{table}`.`{column}` refers to `{references}`, which is not among the models: list it too"
    )]
    MissingModel {
        /// The referring table.
        table: &'static str,
        /// Its reference column.
        column: &'static str,
        /// The table it refers to.
        references: &'static str,
    },
    /// These tables refer to each other in a cycle of NOT NULL references: no row of any could
    /// be made first. Make one of the references an `Option`.
    #[error("the tables {0:?} refer to each other through NOT NULL references only: make one reference an Option")]
    ReferenceCycle(Vec<&'static str>),
    /// An upsert's conflict columns are not one of the model's unique sets.
    #[error(
        "`{table}` has no unique constraint on ({columns}): declare #[model(unique({columns}))]"
    )]
    NotUnique {
        /// The model's table.
        table: &'static str,
        /// The columns named.
        columns: String,
    },
    /// No row matched where one was required.
    #[error("no matching row")]
    NotFound,
    /// A loaded row was saved or deleted, but its row is no longer in the table (deleted
    /// meanwhile): nothing was written.
    #[error("the `{table}` row with key {key} is gone (deleted meanwhile?); nothing was written")]
    RowGone {
        /// The model's table.
        table: &'static str,
        /// The row's key, as `Debug` prints it.
        key: String,
    },
    /// A user name or password did not match.
    #[error("wrong username or password")]
    BadCredentials,
    /// Hashing a password failed.
    #[error("password hashing failed: {0}")]
    Password(String),
    /// The database's threads are gone (it was closed, or one of them panicked).
    #[error("the database is closed")]
    Closed,
    /// A write through the database (not through the transaction's handle) inside a transaction
    /// closure: it would wait for the transaction forever, so it is refused.
    #[error("a write inside a transaction must go through the transaction's handle (`tx`), not the database")]
    NestedWrite,
    /// A transaction closure (or a query) panicked; it was rolled back.
    #[error("the database work panicked: {0}")]
    Panicked(String),
    /// A database thread could not be started.
    #[error("cannot start a database thread: {0}")]
    Thread(std::io::Error),
    /// The server has no database: give the router one with `Router::state(db)`.
    #[error("no database: give the router one with Router::state(AsyncDatabase)")]
    NoDatabase,
    /// Two models are marked `#[model(authorized_user)]`.
    #[error(
        "two user models: `{0}` and `{1}` are both #[model(authorized_user)]; there may be one"
    )]
    TwoUserModels(&'static str, &'static str),
    /// The database file could not be opened or configured.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// The PostgreSQL server could not be reached or refused the connection.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL, its password left out.
        url: String,
        /// Why.
        reason: String,
    },
    /// A transaction lost to a concurrent one (PostgreSQL's serialization failure or deadlock);
    /// running it again may succeed.
    #[error("the transaction conflicted with another one: {0}")]
    Conflict(String),
    /// The blocking `Database` was used on a PostgreSQL server from a current-threaded tokio
    /// runtime, which cannot lend its thread to the blocking client: use `AsyncDatabase` there.
    #[error("the blocking Database cannot reach PostgreSQL from a current-threaded tokio runtime: use AsyncDatabase in async code")]
    BlockingInAsync,
    /// Every connection of the pool stayed in use for this long.
    #[error("no database connection came free within {0:?} (all in use: a transaction waiting on a query outside it?)")]
    PoolTimeout(std::time::Duration),
    /// The connection to the database server was lost (the server ended it, restarted, or the
    /// network failed). A read that finds its pooled connection lost runs again once on a new
    /// one; a write does not (it may have run before the connection went), so it is this error.
    #[error("the connection to the database was lost: {0}")]
    ConnectionLost(String),
    /// Any other PostgreSQL error (its message and SQLSTATE).
    #[error("postgres: {0}")]
    Postgres(String),
    /// SQLite's own escape hatch (a rusqlite connection) was asked of another backend.
    #[error("{0} is SQLite's own (it hands out a rusqlite connection); on this backend use Raw::query / Raw::statement")]
    SqliteOnly(&'static str),
    /// Any other SQLite error.
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for DbError {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        if let rusqlite::Error::SqliteFailure(code, message) = &err {
            if code.code == ErrorCode::ConstraintViolation {
                let text = message.clone().unwrap_or_else(|| err.to_string());
                let kind = code.extended_code;
                return match kind {
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => DbError::Unique(text),
                    rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => DbError::ForeignKey(text),
                    rusqlite::ffi::SQLITE_CONSTRAINT_CHECK => DbError::Check(text),
                    rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL => DbError::NotNull(text),
                    // Some paths (a RESTRICT firing at statement end, a deferred check at commit)
                    // report only the primary code; SQLite's message names the constraint.
                    _ if text.starts_with("FOREIGN KEY") => DbError::ForeignKey(text),
                    _ if text.starts_with("UNIQUE") => DbError::Unique(text),
                    _ if text.starts_with("CHECK") => DbError::Check(text),
                    _ if text.starts_with("NOT NULL") => DbError::NotNull(text),
                    _ => DbError::Sqlite(err),
                };
            }
        }
        DbError::Sqlite(err)
    }
}
