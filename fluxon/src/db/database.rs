//! `Database`: SQLite in WAL mode with one writer connection and a pool of readers, used from the
//! calling thread. [`AsyncDatabase`](super::AsyncDatabase) runs the same connections on threads of
//! their own.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::conn::Conn;
use super::dialect::Location;
use super::executor::Executor;
use super::postgres::{PgPool, ATTEMPTS};
use super::postgres_async::AwaitedPool;
use super::query::{Closure, Query};
use super::DbError;

/// How long a connection waits on a lock before reporting it (readers never wait on the writer in
/// WAL mode, and there is only one writer: this is a backstop, e.g. for a checkpoint).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 256;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a connection leaves it usable: SQLite rolls back an open transaction
    // when the next BEGIN fails, and every write here runs in its own statement or transaction.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

thread_local! {
    /// Whether this thread holds the writer connection (inside a write or a transaction).
    static WRITING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The writer connection, held by this thread until dropped; refuses to be taken twice by one
/// thread (a write through the database inside a transaction closure would wait for itself).
struct Writing<'a> {
    conn: MutexGuard<'a, Connection>,
}

impl<'a> Writing<'a> {
    fn take(writer: &'a Mutex<Connection>) -> Result<Self, DbError> {
        if WRITING.with(std::cell::Cell::get) {
            return Err(DbError::NestedWrite);
        }
        let conn = lock(writer);
        WRITING.with(|w| w.set(true));
        Ok(Writing { conn })
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        WRITING.with(|w| w.set(false));
    }
}

impl std::ops::Deref for Writing<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// Connections to one database, shared by `Database` and `AsyncDatabase`: a SQLite file's
/// writer and readers, or a pool of connections to a PostgreSQL server.
pub(crate) struct Core {
    location: Location,
    backend: Backend,
}

enum Backend {
    Sqlite {
        writer: Mutex<Connection>,
        readers: Mutex<Vec<Connection>>,
        max_readers: usize,
    },
    Postgres {
        /// Connections used from the calling thread (blocking).
        blocking: PgPool,
        /// Connections awaited by `AsyncDatabase`'s one-statement queries.
        awaited: Box<AwaitedPool>,
    },
}

impl Core {
    /// Opens the database at `place`: a PostgreSQL server for a `postgres://` URL, else a
    /// SQLite file ([`Location::of`]). `connections` bounds the pooled readers (SQLite) or the
    /// idle connections kept (PostgreSQL).
    pub(crate) fn open(place: &Path, connections: usize) -> Result<Core, DbError> {
        let location = Location::of(place);
        let backend = match &location {
            Location::Sqlite(path) => Backend::Sqlite {
                writer: Mutex::new(open_connection(path, false)?),
                readers: Mutex::new(Vec::new()),
                max_readers: connections.max(1),
            },
            Location::Postgres(url) => Backend::Postgres {
                blocking: PgPool::open(url, connections)?,
                awaited: Box::new(AwaitedPool::new(url, connections)?),
            },
        };
        Ok(Core { location, backend })
    }

    /// Where the database is.
    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// The connections one-statement queries are awaited on, on a backend that has them
    /// (PostgreSQL).
    pub(crate) fn awaited(&self) -> Option<&AwaitedPool> {
        match &self.backend {
            Backend::Postgres { awaited, .. } => Some(awaited),
            Backend::Sqlite { .. } => None,
        }
    }

    /// Whether this thread is inside a transaction body (where a second write would wait for
    /// the first on SQLite: refused on every backend alike).
    pub(crate) fn writing() -> bool {
        WRITING.with(std::cell::Cell::get)
    }

    /// Runs a query where it belongs: on SQLite a write on the writer connection (serialized by
    /// its lock), a read on a pooled reader; on PostgreSQL on a pooled connection.
    pub(crate) fn run<Q: Query>(&self, query: Q) -> Result<Q::Output, DbError> {
        let (writer, readers, max_readers) = match &self.backend {
            Backend::Sqlite {
                writer,
                readers,
                max_readers,
            } => (writer, readers, *max_readers),
            Backend::Postgres { blocking: pool, .. } => {
                if query.writes() && WRITING.with(std::cell::Cell::get) {
                    return Err(DbError::NestedWrite);
                }
                return pool.run(query);
            }
        };
        if query.writes() {
            let writer = Writing::take(writer)?;
            query.run(&Conn::sqlite(&writer))
        } else {
            let reader = match lock(readers).pop() {
                Some(reader) => reader,
                None => open_connection(self.sqlite_path(), true)?,
            };
            let result = query.run(&Conn::sqlite(&reader));
            let mut readers = lock(readers);
            if readers.len() < max_readers {
                readers.push(reader);
            }
            result
        }
    }

    fn sqlite_path(&self) -> &Path {
        match &self.location {
            Location::Sqlite(path) => path,
            Location::Postgres(url) => Path::new(url),
        }
    }

    /// Runs `body` as one transaction: on SQLite `BEGIN IMMEDIATE` on the writer connection
    /// (never in conflict: one writer at a time), on PostgreSQL SERIALIZABLE and run again when
    /// it loses to a concurrent transaction, at most `attempts` times in all. Committed when it
    /// returns `Ok`, rolled back when it returns `Err` or panics.
    pub(crate) fn transaction<T, E: From<DbError>>(
        &self,
        attempts: u32,
        mut body: impl FnMut(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let writer = match &self.backend {
            Backend::Sqlite { writer, .. } => writer,
            Backend::Postgres { blocking: pool, .. } => {
                if WRITING.with(std::cell::Cell::get) {
                    return Err(DbError::NestedWrite.into());
                }
                WRITING.with(|w| w.set(true));
                let _done = WritingDone;
                return pool.transaction(attempts, |conn| body(&Transaction { conn }));
            }
        };
        let writer = Writing::take(writer)?;
        let sql = |sql: &str| -> Result<(), DbError> {
            writer.prepare_cached(sql)?.execute([])?;
            Ok(())
        };
        sql("BEGIN IMMEDIATE")?;
        let rollback = RollbackOnDrop(&writer, true);
        let result = body(&Transaction {
            conn: Conn::sqlite(&writer),
        });
        let mut rollback = rollback;
        rollback.1 = false;
        match result {
            Ok(value) => match sql("COMMIT") {
                Ok(()) => Ok(value),
                Err(err) => {
                    let _ = writer.execute_batch("ROLLBACK");
                    Err(err.into())
                }
            },
            Err(err) => {
                sql("ROLLBACK")?;
                Err(err)
            }
        }
    }
}

/// Clears the thread's writing flag when a PostgreSQL transaction ends, however it ends.
struct WritingDone;

impl Drop for WritingDone {
    fn drop(&mut self) {
        WRITING.with(|w| w.set(false));
    }
}

/// Rolls back if a transaction body panics, so the writer connection is clean for the next one.
struct RollbackOnDrop<'c>(&'c Connection, bool);

impl Drop for RollbackOnDrop<'_> {
    fn drop(&mut self) {
        if self.1 {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// Opens a connection with fluxon's settings (WAL, synchronous=NORMAL, foreign keys, busy timeout).
pub(crate) fn open_connection(path: &Path, read_only: bool) -> Result<Connection, DbError> {
    let open_error = |source| DbError::Open {
        path: path.to_owned(),
        source,
    };
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI
    };
    let conn = Connection::open_with_flags(path, flags).map_err(open_error)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_error)?;
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_error)?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(open_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A SQLite database used from the calling thread: reads on a pool of reader connections, writes
/// on the one writer connection, one at a time. Cheap to clone (clones share the connections).
///
/// ```
/// use fluxon::db::{Database, Executor};
/// # let dir = tempfile::tempdir().unwrap();
/// let db = Database::open(dir.path().join("app.sqlite3"))?;
/// let answer: i64 = db.transaction(|tx| tx.with_connection(|c| Ok(c.query_row("SELECT 42", [], |r| r.get(0))?)))?;
/// assert_eq!(answer, 42);
/// # Ok::<(), fluxon::db::DbError>(())
/// ```
#[derive(Clone)]
pub struct Database {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("location", &self.core.location())
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating if needed) the database file, in WAL mode, with at most 4 pooled readers.
    pub fn open(path: impl AsRef<Path>) -> Result<Database, DbError> {
        Self::open_with_readers(path, 4)
    }

    /// Opens the database file with at most `readers` pooled reader connections.
    pub fn open_with_readers(path: impl AsRef<Path>, readers: usize) -> Result<Database, DbError> {
        Ok(Database {
            core: Arc::new(Core::open(path.as_ref(), readers)?),
        })
    }

    /// Runs `body` as one transaction (SQLite: `BEGIN IMMEDIATE`): committed if it returns `Ok`,
    /// rolled back if it returns `Err` or panics.
    ///
    /// On PostgreSQL the transaction is SERIALIZABLE (as SQLite's, which run one writer at a
    /// time, are in effect): when it loses to a concurrent one (a serialization failure or a
    /// deadlock, in any statement or at COMMIT), it is rolled back and `body` runs again, up to
    /// 8 times in all with a short growing wait between, so `body` is `FnMut` and must be
    /// re-runnable: what it does outside the database (a message sent, a file written) is yours
    /// to make idempotent or to do after the commit. After the last attempt the answer is
    /// [`DbError::Conflict`] (or `body`'s own error made from it), and nothing was written.
    /// SQLite never runs it twice.
    pub fn transaction<T>(
        &self,
        body: impl FnMut(&Transaction<'_>) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.core.transaction(ATTEMPTS, body)
    }

    /// Like [`transaction`](Self::transaction), with an error type of your own (one a
    /// [`DbError`] converts into): rolled back when `body` returns any `Err`.
    pub fn transaction_with<T, E: From<DbError>>(
        &self,
        body: impl FnMut(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.core.transaction(ATTEMPTS, body)
    }

    /// Runs `body` with a reader connection, for SQL of your own.
    ///
    /// The connection is rusqlite's, so this is SQLite's own escape hatch: SQL meant for any
    /// backend goes through [`Raw`](crate::db::Raw), which binds fluxon's own values.
    pub fn read<T: Send + 'static>(
        &self,
        body: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        self.core
            .run(Closure(sqlite_only("Database::read", body), false))
    }
}

impl Executor for Database {
    type Out<T: Send + 'static> = Result<T, DbError>;

    fn execute<Q: Query>(&self, query: Q) -> Result<Q::Output, DbError> {
        self.core.run(query)
    }
}

/// A transaction in progress: queries run on it directly, and are committed or rolled back
/// together.
pub struct Transaction<'c> {
    conn: Conn<'c>,
}

impl<'c> Transaction<'c> {
    /// Runs SQL of your own inside the transaction.
    ///
    /// The connection is rusqlite's, so this is SQLite's own escape hatch: SQL meant for any
    /// backend goes through [`Raw`](crate::db::Raw), which binds fluxon's own values.
    pub fn with_connection<T>(
        &self,
        body: impl FnOnce(&Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        body(
            self.conn
                .as_sqlite()
                .ok_or(DbError::SqliteOnly("Transaction::with_connection"))?,
        )
    }

    /// The connection the transaction runs on.
    pub(crate) fn conn(&self) -> Conn<'c> {
        self.conn
    }
}

impl Executor for Transaction<'_> {
    type Out<T: Send + 'static> = Result<T, DbError>;

    fn execute<Q: Query>(&self, query: Q) -> Result<Q::Output, DbError> {
        query.run(&self.conn)
    }
}

/// A closure over SQLite's own connection, as a closure over either backend's that refuses the
/// others (the escape hatches that hand out a rusqlite connection).
pub(crate) fn sqlite_only<T>(
    what: &'static str,
    body: impl FnOnce(&Connection) -> Result<T, DbError>,
) -> impl FnOnce(&Conn<'_>) -> Result<T, DbError> {
    move |conn| body(conn.as_sqlite().ok_or(DbError::SqliteOnly(what))?)
}
