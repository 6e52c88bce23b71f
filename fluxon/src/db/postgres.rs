//! The PostgreSQL backend's blocking connection: the `postgres` crate's client (tokio-postgres
//! underneath, driven by a runtime of its own, so a query is a direct round trip on the calling
//! thread with no hop to another task), a cache of prepared statements per connection, its
//! pool, and the bridge between fluxon's [`Value`]s and PostgreSQL's types, which the awaited
//! path ([`postgres_async`](super::postgres_async)) shares.
//!
//! Binding goes by the type PostgreSQL inferred for each parameter when the statement was
//! prepared: an integer binds as BOOLEAN, SMALLINT, INTEGER or BIGINT as the column wants, text
//! as TEXT, JSONB, DATE, TIME or TIMESTAMPTZ (parsed from the text SQLite stores). Reading turns
//! each column back into the value SQLite would have given ([`ValueRef`]), so every field type
//! decodes the same way on both backends.

use std::cell::RefCell;
use std::ops::ControlFlow;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type};
use postgres::{Client, Statement};

use super::conn::Conn;
use super::dialect::Dialect;
use super::query::Query;
use super::sql::{SqlRow, Value, ValueRef};
use super::statement::{self, Outcome};
use super::DbError;

/// Prepared statements kept per connection.
pub(crate) const STATEMENT_CACHE: usize = 256;

/// One connection to a PostgreSQL server.
pub(crate) struct PgConnection {
    client: Client,
    statements: StatementCache<Statement>,
    in_transaction: bool,
    read_only: bool,
    /// A statement of the open transaction lost to a concurrent one (serialization failure or
    /// deadlock): the transaction is to run again.
    conflicted: bool,
}

/// The connections to one server: at most `max_open` at once (a caller past that waits for one,
/// up to [`POOL_WAIT`]), idle ones kept for the next query. Reads get connections of their own,
/// read-only (`default_transaction_read_only`), so a write slipped into a read (raw SQL) is
/// refused as on SQLite's read-only readers.
pub(crate) struct PgPool {
    url: String,
    state: Mutex<PoolState>,
    freed: Condvar,
    max_open: usize,
}

#[derive(Default)]
struct PoolState {
    writers: Vec<PgConnection>,
    readers: Vec<PgConnection>,
    /// Connections open now, idle or in use.
    open: usize,
    /// Callers waiting for a connection: a connection given back wakes one only if some wait
    /// (a condvar's notify is a system call even when nobody waits).
    waiting: usize,
}

impl PoolState {
    fn idle(&mut self, read_only: bool) -> &mut Vec<PgConnection> {
        if read_only {
            &mut self.readers
        } else {
            &mut self.writers
        }
    }
}

/// How many times a transaction that keeps losing to concurrent ones runs in all.
pub(crate) const ATTEMPTS: u32 = 8;

/// The wait before attempt `attempt + 1`: 1 ms doubling to 64 ms, with jitter so that the
/// transactions that collided do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(1 << attempt.min(6));
    let mut byte = [0u8; 1];
    let jitter = match getrandom::fill(&mut byte) {
        Ok(()) => u32::from(byte[0]),
        Err(_) => 128,
    };
    base + base * jitter / 256
}

/// The longest a query waits for a connection when all are in use.
const POOL_WAIT: Duration = Duration::from_secs(30);

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection taken from a pool, given back when dropped: closed instead if it is broken, in a
/// transaction, or dropped by a panic (a query cut off mid-way).
struct Lease<'p> {
    pool: &'p PgPool,
    conn: std::mem::ManuallyDrop<RefCell<PgConnection>>,
}

impl<'p> Lease<'p> {
    fn new(pool: &'p PgPool, conn: PgConnection) -> Self {
        Lease {
            pool,
            conn: std::mem::ManuallyDrop::new(RefCell::new(conn)),
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        // SAFETY: `conn` is taken exactly once, here, and never used after.
        let mut conn = unsafe { std::mem::ManuallyDrop::take(&mut self.conn) }.into_inner();
        if std::thread::panicking() {
            conn.in_transaction = true; // not kept: closed, its slot freed
        }
        self.pool.give_back(conn);
    }
}

/// Runs `work`, which blocks on the client's own runtime, where tokio allows that: directly
/// outside any runtime (the database's own threads, plain threads), in `block_in_place` on a
/// multi-threaded runtime's worker (the blocking `Database` used from async code). A
/// current-threaded runtime cannot give its thread away: the blocking `Database` is refused there
/// (its async twin, `AsyncDatabase`, sends the work to threads of its own).
fn off_runtime<T>(work: impl FnOnce() -> T) -> Result<T, DbError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Err(_) => Ok(work()),
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => {
            Ok(tokio::task::block_in_place(work))
        }
        Ok(_) => Err(DbError::BlockingInAsync),
    }
}

impl Drop for PgPool {
    fn drop(&mut self) {
        // Closing a client blocks on its own runtime, which tokio refuses inside another's.
        let mut state = lock(&self.state);
        let mut idle = std::mem::take(&mut state.writers);
        idle.append(&mut state.readers);
        drop(state);
        if !idle.is_empty() && tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::Builder::new()
                .name("fluxon-pg-close".to_owned())
                .spawn(move || drop(idle));
        }
    }
}

impl PgPool {
    /// Connects once (so a wrong URL or an unreachable server is an error here, not at the
    /// first query) and keeps that connection.
    pub(crate) fn open(url: &str, max_open: usize) -> Result<Self, DbError> {
        let first = PgConnection::connect(url)?;
        Ok(PgPool {
            url: url.to_owned(),
            state: Mutex::new(PoolState {
                writers: vec![first],
                readers: Vec::new(),
                open: 1,
                waiting: 0,
            }),
            freed: Condvar::new(),
            max_open: max_open.max(2),
        })
    }

    /// An idle connection of the kind, or a new one while fewer than `max_open` are open (an
    /// idle one of the other kind is closed to make room), else the first one given back.
    fn take(&self, read_only: bool) -> Result<PgConnection, DbError> {
        let deadline = Instant::now() + POOL_WAIT;
        let mut state = lock(&self.state);
        loop {
            if let Some(conn) = state.idle(read_only).pop() {
                return Ok(conn);
            }
            if state.open >= self.max_open {
                // Room made by closing an idle connection of the other kind.
                if let Some(other) = state.idle(!read_only).pop() {
                    state.open -= 1;
                    drop(other);
                }
            }
            if state.open < self.max_open {
                state.open += 1;
                drop(state);
                let made = self.connect(read_only);
                if made.is_err() {
                    let mut state = lock(&self.state);
                    state.open -= 1;
                    self.wake_one(&state);
                }
                return made;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(DbError::PoolTimeout(POOL_WAIT));
            }
            state.waiting += 1;
            state = self
                .freed
                .wait_timeout(state, deadline - now)
                .map(|(state, _)| state)
                .unwrap_or_else(|poisoned| poisoned.into_inner().0);
            state.waiting -= 1;
        }
    }

    /// Wakes one caller waiting for a connection, if any waits.
    fn wake_one(&self, state: &PoolState) {
        if state.waiting > 0 {
            self.freed.notify_one();
        }
    }

    fn connect(&self, read_only: bool) -> Result<PgConnection, DbError> {
        let mut conn = PgConnection::connect(&self.url)?;
        if read_only {
            conn.batch("SET default_transaction_read_only = on")?;
            conn.read_only = true;
        }
        Ok(conn)
    }

    /// Keeps a connection for the next query, unless it is closed or in a transaction (a body
    /// that panicked): those are closed, and make room for a new one.
    fn give_back(&self, conn: PgConnection) {
        let mut state = lock(&self.state);
        if conn.is_closed() || conn.in_transaction {
            state.open -= 1;
            self.wake_one(&state);
            drop(state);
            drop(conn);
        } else {
            state.idle(conn.read_only).push(conn);
            self.wake_one(&state);
        }
    }

    /// Runs a query on a pooled connection.
    pub(crate) fn run<Q: Query>(&self, query: Q) -> Result<Q::Output, DbError> {
        off_runtime(|| match query.into_statement(Dialect::Postgres) {
            Ok(statement) => self.statement(statement),
            Err(query) => {
                let lease = Lease::new(self, self.take(!query.writes())?);
                query.run(&Conn::postgres(&lease.conn))
            }
        })?
    }

    /// Runs a one-statement query. A read whose connection turns out lost is run again once on
    /// a new connection (the idle ones are dropped first: a server that ended one has likely
    /// ended them all).
    fn statement<T>(&self, statement: statement::Statement<T>) -> Result<T, DbError> {
        let writes = statement.writes;
        let parts = statement.parts?;
        let Outcome::Rows(mut reader) = parts.outcome else {
            let lease = Lease::new(self, self.take(!writes)?);
            return Conn::postgres(&lease.conn).statement(statement::Statement {
                parts: Ok(parts),
                writes,
            });
        };
        let mut attempts = if writes { 1 } else { 2 };
        let rows = loop {
            let lease = Lease::new(self, self.take(!writes)?);
            let rows = lease.conn.borrow_mut().rows(&parts.sql, &parts.params);
            attempts -= 1;
            match rows {
                Err(DbError::ConnectionLost(_)) if attempts > 0 => {
                    drop(lease);
                    self.forget_idle();
                }
                rows => break rows?,
            }
        };
        read_each(&rows, &mut |row| reader.row(row))?;
        reader.finish()
    }

    /// Closes every idle connection.
    fn forget_idle(&self) {
        let mut state = lock(&self.state);
        let mut idle = std::mem::take(&mut state.writers);
        idle.append(&mut state.readers);
        state.open -= idle.len();
        self.wake_one(&state);
        drop(state);
        drop(idle);
    }

    /// Runs `body` in a SERIALIZABLE transaction on a pooled connection: committed when it
    /// returns `Ok`, rolled back when it returns `Err`. A transaction that loses to a concurrent
    /// one (a serialization failure or a deadlock, in any statement or at COMMIT) is rolled
    /// back and run again, at most `attempts` times in all, after a short wait that grows;
    /// the last attempt's error is the answer. A connection found lost at BEGIN (before the body
    /// ran) is replaced, once. A body that panics takes its connection with it,
    /// and the server rolls back what it began.
    pub(crate) fn transaction<T, E: From<DbError>>(
        &self,
        attempts: u32,
        mut body: impl FnMut(Conn<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        off_runtime(|| {
            for attempt in 1.. {
                let mut lease = Lease::new(self, self.take(false)?);
                let begun = lease.conn.borrow_mut().begin(true);
                match begun {
                    Ok(()) => {}
                    // Nothing ran yet: begin again on a new connection, once.
                    Err(DbError::ConnectionLost(_)) => {
                        drop(lease);
                        self.forget_idle();
                        lease = Lease::new(self, self.take(false)?);
                        lease.conn.borrow_mut().begin(true)?;
                    }
                    Err(err) => return Err(err.into()),
                }
                let result = body(Conn::postgres(&lease.conn));
                let ended = lease.conn.borrow_mut().end(result.is_ok());
                let conflicted = lease.conn.borrow().conflicted;
                drop(lease);
                if conflicted && attempt < attempts {
                    std::thread::sleep(backoff(attempt));
                    continue;
                }
                return match (result, ended) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Ok(_), Err(err)) => Err(err.into()),
                    (Err(err), _) => Err(err),
                };
            }
            Err(DbError::Conflict("no attempt ran".to_owned()).into())
        })?
    }
}

impl std::fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConnection").finish_non_exhaustive()
    }
}

impl PgConnection {
    /// Connects to the server a `postgres://` URL names. The client blocks on a runtime of its
    /// own, which tokio refuses inside another's: called from async code (opening an
    /// `AsyncDatabase`), it connects from a thread of its own.
    pub(crate) fn connect(url: &str) -> Result<Self, DbError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Self::connect_here(url);
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| Self::connect_here(url))
                .join()
                .unwrap_or_else(|_| Err(DbError::Panicked("connecting to PostgreSQL".to_owned())))
        })
    }

    fn connect_here(url: &str) -> Result<Self, DbError> {
        let (config, tls) = config_of(url)?;
        let config = postgres::Config::from(config);
        let client = match tls {
            Some(rustls) => config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(rustls)),
            None => config.connect(postgres::NoTls),
        }
        .map_err(|err| refused(url, chain(&err)))?;
        Ok(PgConnection {
            client,
            statements: statement_cache(),
            in_transaction: false,
            read_only: false,
            conflicted: false,
        })
    }

    /// Whether a transaction is open on the connection.
    pub(crate) fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Begins a transaction: READ COMMITTED (PostgreSQL's default) for fluxon's own
    /// all-or-nothing writes of many rows, SERIALIZABLE for a [`PgPool::transaction`] body, as
    /// SQLite's one-writer-at-a-time transactions are.
    pub(crate) fn begin(&mut self, serializable: bool) -> Result<(), DbError> {
        let begin = if serializable {
            "BEGIN ISOLATION LEVEL SERIALIZABLE"
        } else {
            "BEGIN"
        };
        self.client.batch_execute(begin).map_err(error)?;
        self.in_transaction = true;
        self.conflicted = false;
        Ok(())
    }

    /// Commits (or rolls back) the open transaction. A failed COMMIT (a deferred foreign key)
    /// leaves none open: the server rolled it back.
    pub(crate) fn end(&mut self, commit: bool) -> Result<(), DbError> {
        let ended = self
            .client
            .batch_execute(if commit { "COMMIT" } else { "ROLLBACK" })
            .map_err(error);
        let ended = self.noted(ended);
        if ended.is_err() && commit {
            // Make sure: a COMMIT that failed for a reason of the connection's own.
            let _ = self.client.batch_execute("ROLLBACK");
        }
        self.in_transaction = false;
        ended
    }

    /// Whether the connection is gone (the server closed it): such a connection is not pooled
    /// again.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The prepared statement for `sql` (fluxon's `?` form), from the cache or made now.
    fn prepare(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let numbered = Dialect::Postgres.parameters(sql);
        let statement = self.client.prepare(&numbered).map_err(error)?;
        self.statements.put(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Notes a failure that lost to a concurrent transaction (the transaction then runs again).
    fn noted<T>(&mut self, result: Result<T, DbError>) -> Result<T, DbError> {
        if matches!(result, Err(DbError::Conflict(_))) {
            self.conflicted = true;
        }
        result
    }

    /// Runs a statement; how many rows it changed.
    pub(crate) fn execute(
        &mut self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<usize, DbError> {
        let result = self.execute_here(sql, params);
        self.noted(result)
    }

    fn execute_here(
        &mut self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
    ) -> Result<usize, DbError> {
        let statement = self.prepare(sql)?;
        let params: Vec<Value> = params.into_iter().collect();
        let bound = bind(&statement, &params)?;
        let changed = self.client.execute(&statement, &bound).map_err(error)?;
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    /// Runs a query, handing each row to `each` until it says stop. `streamed`: the rows are
    /// read from the socket as `each` takes them (bounded memory, a round trip per batch the
    /// socket holds); otherwise all at once in one round trip, then handed over.
    pub(crate) fn each(
        &mut self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
        streamed: bool,
        each: &mut dyn FnMut(&SqlRow<'_>) -> Result<ControlFlow<()>, DbError>,
    ) -> Result<(), DbError> {
        let result = self.each_here(sql, params, streamed, each);
        self.noted(result)
    }

    fn each_here(
        &mut self,
        sql: &str,
        params: impl IntoIterator<Item = Value>,
        streamed: bool,
        each: &mut dyn FnMut(&SqlRow<'_>) -> Result<ControlFlow<()>, DbError>,
    ) -> Result<(), DbError> {
        use postgres::fallible_iterator::FallibleIterator;
        let statement = self.prepare(sql)?;
        let params: Vec<Value> = params.into_iter().collect();
        let bound = bind(&statement, &params)?;
        if !streamed {
            let rows = self.client.query(&statement, &bound).map_err(error)?;
            return read_each(&rows, each);
        }
        let mut rows = self
            .client
            .query_raw(&statement, bound.iter().copied())
            .map_err(error)?;
        while let Some(row) = rows.next().map_err(error)? {
            if hand_over(&row, each)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Runs a query and gives its rows, all read in one round trip.
    fn rows(&mut self, sql: &str, params: &[Value]) -> Result<Vec<postgres::Row>, DbError> {
        let result = self.rows_here(sql, params);
        self.noted(result)
    }

    fn rows_here(&mut self, sql: &str, params: &[Value]) -> Result<Vec<postgres::Row>, DbError> {
        let statement = self.prepare(sql)?;
        let bound = bind(&statement, params)?;
        self.client.query(&statement, &bound).map_err(error)
    }

    /// Runs statements with no parameters (`;`-separated).
    pub(crate) fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        let result = self.client.batch_execute(sql).map_err(error);
        self.noted(result)
    }
}

/// Hands one row to `each`, its columns read as SQLite would have given them.
fn hand_over(
    row: &postgres::Row,
    each: &mut dyn FnMut(&SqlRow<'_>) -> Result<ControlFlow<()>, DbError>,
) -> Result<ControlFlow<()>, DbError> {
    let mut texts = Vec::new();
    owned_texts(row, &mut texts)?;
    let mut values = Vec::with_capacity(row.len());
    let mut owned = texts.iter();
    for (i, column) in row.columns().iter().enumerate() {
        values.push(value_ref(row, i, column.type_(), &mut owned)?);
    }
    each(&SqlRow::from_postgres(&values, row.columns()))
}

/// Hands `rows` to `each` until it says stop.
pub(crate) fn read_each(
    rows: &[postgres::Row],
    each: &mut dyn FnMut(&SqlRow<'_>) -> Result<ControlFlow<()>, DbError>,
) -> Result<(), DbError> {
    for row in rows {
        if hand_over(row, each)?.is_break() {
            break;
        }
    }
    Ok(())
}

/// The bound form of `params` for `statement`: each checked against the type PostgreSQL wants.
pub(crate) fn bind<'v>(
    statement: &Statement,
    params: &'v [Value],
) -> Result<Vec<&'v (dyn ToSql + Sync)>, DbError> {
    let wanted = statement.params().len();
    if wanted != params.len() {
        return Err(DbError::InvalidValue {
            column: "?",
            reason: format!(
                "the statement has {wanted} parameters; {} were given",
                params.len()
            ),
        });
    }
    if params
        .iter()
        .any(|v| matches!(v, Value::Text(text) if text.contains('\0')))
    {
        return Err(DbError::InvalidValue {
            column: "?",
            reason: "PostgreSQL's text cannot hold the NUL character (\\0)".to_owned(),
        });
    }
    Ok(params.iter().map(|v| v as &(dyn ToSql + Sync)).collect())
}

/// A cache of prepared statements, keyed by fluxon's SQL.
pub(crate) type StatementCache<S> = lru::LruCache<String, S, foldhash::fast::RandomState>;

/// An empty statement cache of [`STATEMENT_CACHE`] entries.
pub(crate) fn statement_cache<S>() -> StatementCache<S> {
    let capacity =
        std::num::NonZeroUsize::new(STATEMENT_CACHE).unwrap_or(std::num::NonZeroUsize::MIN);
    // SQL text is fluxon's own or the app's, not a peer's: a fast hasher, seeded per process.
    lru::LruCache::with_hasher(capacity, foldhash::fast::RandomState::default())
}

/// The connection settings a `postgres://` URL gives, and the TLS its `sslmode` asks for.
pub(crate) fn config_of(
    url: &str,
) -> Result<(tokio_postgres::Config, Option<rustls::ClientConfig>), DbError> {
    let tls = super::postgres_tls::from_url(url).map_err(|err| refused(url, err.to_string()))?;
    let mut config: tokio_postgres::Config = tls
        .url
        .parse()
        .map_err(|err| refused(url, format!("{err}")))?;
    config.ssl_mode(tls.mode);
    Ok((config, tls.config))
}

/// A connection to `url` refused, and why.
pub(crate) fn refused(url: &str, reason: String) -> DbError {
    DbError::Connect {
        url: redact(url),
        reason,
    }
}

/// A URL with its password (if any) left out, for errors and logs.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// An error and its sources, `: `-separated.
pub(crate) fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    for _ in 0..8 {
        let Some(inner) = source else { break };
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// A driver error as fluxon's: constraint failures by their SQLSTATE, as on SQLite.
pub(crate) fn error(err: postgres::Error) -> DbError {
    use postgres::error::SqlState;
    let Some(db) = err.as_db_error() else {
        let io =
            std::error::Error::source(&err).is_some_and(|source| source.is::<std::io::Error>());
        return if err.is_closed() || io {
            DbError::ConnectionLost(chain(&err))
        } else {
            DbError::Postgres(chain(&err))
        };
    };
    // Class 08 (connection exception) and 57P0x (the server shutting down or ending this
    // connection): the connection is gone.
    if db.code().code().starts_with("08") || db.code().code().starts_with("57P") {
        return DbError::ConnectionLost(format!("{} ({})", db.message(), db.code().code()));
    }
    let what = match (db.table(), db.constraint()) {
        (Some(table), Some(constraint)) => format!("{table}: {constraint}"),
        _ => db.message().to_owned(),
    };
    match db.code() {
        c if *c == SqlState::UNIQUE_VIOLATION => DbError::Unique(what),
        c if *c == SqlState::FOREIGN_KEY_VIOLATION => DbError::ForeignKey(what),
        c if *c == SqlState::CHECK_VIOLATION => DbError::Check(what),
        c if *c == SqlState::NOT_NULL_VIOLATION => {
            DbError::NotNull(db.column().unwrap_or(db.message()).to_owned())
        }
        c if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            DbError::Conflict(db.message().to_owned())
        }
        // A data exception (text that is not JSON, a number out of range): the database refused
        // the value, as SQLite's CHECKs do.
        code if code.code().starts_with("22") => {
            DbError::Check(format!("{} ({})", db.message(), code.code()))
        }
        code => DbError::Postgres(format!("{} ({})", db.message(), code.code())),
    }
}

/// Binds a value as the type PostgreSQL wants for its parameter.
impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        let wrong = || -> Box<dyn std::error::Error + Sync + Send> {
            format!("cannot bind {} as {ty}", self.kind()).into()
        };
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(n) => match *ty {
                Type::BOOL => (*n != 0).to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT8 => n.to_sql(ty, out),
                Type::FLOAT4 | Type::FLOAT8 => (*n as f64).to_sql(&Type::FLOAT8, out),
                Type::NUMERIC => rust_decimal::Decimal::from(*n).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => n.to_string().to_sql(ty, out),
                _ => Err(wrong()),
            },
            Value::Real(x) => match *ty {
                Type::FLOAT8 => x.to_sql(ty, out),
                Type::FLOAT4 => (*x as f32).to_sql(ty, out),
                Type::NUMERIC => rust_decimal::Decimal::try_from(*x)?.to_sql(ty, out),
                _ => Err(wrong()),
            },
            Value::Decimal(d) => match *ty {
                Type::NUMERIC => d.to_sql(ty, out),
                Type::FLOAT8 => f64::try_from(*d)?.to_sql(ty, out),
                _ => Err(wrong()),
            },
            Value::Text(text) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    text.to_sql(ty, out)
                }
                Type::JSONB => {
                    // JSONB's binary form: a version byte, then the text.
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(text.as_bytes());
                    Ok(IsNull::No)
                }
                Type::JSON => {
                    out.extend_from_slice(text.as_bytes());
                    Ok(IsNull::No)
                }
                Type::DATE => parse_sqlite::<time::Date>(text)?.to_sql(ty, out),
                Type::TIME => parse_sqlite::<time::Time>(text)?.to_sql(ty, out),
                Type::TIMESTAMPTZ => parse_sqlite::<time::OffsetDateTime>(text)?.to_sql(ty, out),
                Type::NUMERIC => text.parse::<rust_decimal::Decimal>()?.to_sql(ty, out),
                _ => Err(wrong()),
            },
            Value::Blob(bytes) => match *ty {
                Type::BYTEA => bytes.as_slice().to_sql(ty, out),
                _ => Err(wrong()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A date or time from the text SQLite stores it as (what fluxon's fields write).
fn parse_sqlite<T: rusqlite::types::FromSql>(
    text: &str,
) -> Result<T, Box<dyn std::error::Error + Sync + Send>> {
    T::column_result(rusqlite::types::ValueRef::Text(text.as_bytes()))
        .map_err(|err| format!("`{text}`: {err}").into())
}

/// A date or time as the text SQLite stores it as (what fluxon's fields read).
fn sqlite_text<T: rusqlite::types::ToSql>(value: &T) -> Result<String, DbError> {
    use rusqlite::types::{ToSqlOutput, Value as V, ValueRef as R};
    match value.to_sql()? {
        ToSqlOutput::Owned(V::Text(text)) => Ok(text),
        ToSqlOutput::Borrowed(R::Text(text)) => Ok(String::from_utf8_lossy(text).into_owned()),
        _ => Ok(String::new()),
    }
}

/// A column's value as PostgreSQL sent it (binary), whatever its type.
struct RawValue<'a>(&'a [u8]);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawValue(raw))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// Whether a column of this type is read into text made for it (the others are read in place).
fn needs_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::DATE | Type::TIME | Type::TIMESTAMPTZ | Type::TIMESTAMP | Type::NUMERIC
    )
}

/// The text of each column that needs it, in column order.
fn owned_texts(row: &postgres::Row, texts: &mut Vec<String>) -> Result<(), DbError> {
    let decode = |i: usize, err: postgres::Error| DbError::Decode {
        column: "?",
        expected: "a value PostgreSQL sent",
        reason: format!("column {i}: {}", chain(&err)),
    };
    for (i, column) in row.columns().iter().enumerate() {
        let text = match *column.type_() {
            Type::DATE => row
                .try_get::<_, Option<time::Date>>(i)
                .map_err(|e| decode(i, e))?
                .map(|v| sqlite_text(&v))
                .transpose()?,
            Type::TIME => row
                .try_get::<_, Option<time::Time>>(i)
                .map_err(|e| decode(i, e))?
                .map(|v| sqlite_text(&v))
                .transpose()?,
            Type::TIMESTAMPTZ => row
                .try_get::<_, Option<time::OffsetDateTime>>(i)
                .map_err(|e| decode(i, e))?
                .map(|v| sqlite_text(&v))
                .transpose()?,
            Type::TIMESTAMP => row
                .try_get::<_, Option<time::PrimitiveDateTime>>(i)
                .map_err(|e| decode(i, e))?
                .map(|v| sqlite_text(&v.assume_utc()))
                .transpose()?,
            Type::NUMERIC => row
                .try_get::<_, Option<rust_decimal::Decimal>>(i)
                .map_err(|e| decode(i, e))?
                .map(|d| d.to_string()),
            _ => continue,
        };
        texts.push(text.unwrap_or_default());
    }
    Ok(())
}

/// Column `i` as the value SQLite would have given: integers and booleans as integers, floats
/// as reals, text and JSON as text, dates, times and decimals as their text (from `owned`, in
/// column order), bytes as a blob.
fn value_ref<'r>(
    row: &'r postgres::Row,
    i: usize,
    ty: &Type,
    owned: &mut std::slice::Iter<'r, String>,
) -> Result<ValueRef<'r>, DbError> {
    let raw = row
        .try_get::<_, Option<RawValue<'r>>>(i)
        .map_err(|err| DbError::Decode {
            column: "?",
            expected: "a value PostgreSQL sent",
            reason: format!("column {i}: {}", chain(&err)),
        })?;
    if needs_text(ty) {
        let text = owned.next();
        return Ok(match (raw, text) {
            (None, _) | (_, None) => ValueRef::Null,
            (Some(_), Some(text)) => {
                // A whole decimal reads as an integer (a SUM, a COUNT), as on SQLite.
                match (*ty == Type::NUMERIC)
                    .then(|| text.parse::<i64>().ok())
                    .flatten()
                {
                    Some(n) => ValueRef::Integer(n),
                    None => ValueRef::Text(text.as_bytes()),
                }
            }
        });
    }
    let Some(RawValue(bytes)) = raw else {
        return Ok(ValueRef::Null);
    };
    let fixed = |n: usize| -> Result<&[u8], DbError> {
        bytes.get(..n).ok_or_else(|| DbError::Decode {
            column: "?",
            expected: "a value PostgreSQL sent",
            reason: format!("column {i}: {} bytes for a {ty}", bytes.len()),
        })
    };
    Ok(match *ty {
        Type::BOOL => ValueRef::Integer(i64::from(fixed(1)?[0] != 0)),
        Type::INT2 => ValueRef::Integer(i64::from(i16::from_be_bytes([fixed(2)?[0], bytes[1]]))),
        Type::INT4 => {
            let b = fixed(4)?;
            ValueRef::Integer(i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        }
        Type::INT8 => {
            let b = fixed(8)?;
            ValueRef::Integer(i64::from_be_bytes([
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
            ]))
        }
        Type::OID => {
            let b = fixed(4)?;
            ValueRef::Integer(i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        }
        Type::FLOAT4 => {
            let b = fixed(4)?;
            ValueRef::Real(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        }
        Type::FLOAT8 => {
            let b = fixed(8)?;
            ValueRef::Real(f64::from_be_bytes([
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
            ]))
        }
        Type::JSONB => ValueRef::Text(bytes.get(1..).unwrap_or_default()),
        Type::BYTEA => ValueRef::Blob(bytes),
        // TEXT, VARCHAR, NAME, JSON and anything else whose binary form is its text.
        _ => ValueRef::Text(bytes),
    })
}
