//! The awaited PostgreSQL path of [`AsyncDatabase`](super::AsyncDatabase): a one-statement query
//! ([`Statement`]) is sent by tokio-postgres from the task that awaits it, with no thread
//! blocked. Its connections are shared, not lent: tokio-postgres pipelines the statements of
//! every task using a connection (each written as soon as it is made, the answers read back in
//! order by the connection's own task), so a few connections serve any number of tasks with no
//! waiting for a free one, which is what a server's many concurrent views need. Transactions
//! (whose bodies are blocking closures, each needing a connection of its own) and queries of
//! several statements take the blocking path ([`PgPool`](super::postgres::PgPool)) instead, so a
//! database keeps two sets of connections, each opened when first needed.
//!
//! A query takes the connections in turn. Reads have connections of their own, read-only, as on
//! the blocking path. A connection's task runs on the tokio runtime that opened it, and a
//! connection is only used from that runtime: another runtime's queries open their own in its
//! place. A connection found closed is opened again.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_postgres::Client;

use super::dialect::Dialect;
use super::postgres::{
    bind, chain, config_of, error, lock, read_each, refused, statement_cache, StatementCache,
};
use super::schema::quote_ident;
use super::sql::{SqlRow, Value};
use super::statement::{Outcome, Parts, Statement};
use super::DbError;

/// One connection, shared by the tasks using it, and the statements prepared on it.
struct Shared {
    client: Client,
    statements: Mutex<StatementCache<tokio_postgres::Statement>>,
    /// The runtime whose task drives the connection.
    runtime: tokio::runtime::Id,
}

/// A set of connections of one kind (read-only or not), taken in turn.
struct Slots {
    slots: Vec<Slot>,
    next: AtomicUsize,
    read_only: bool,
}

#[derive(Default)]
struct Slot {
    /// Statements in flight on it.
    busy: AtomicUsize,
    /// The connection, once open.
    open: Mutex<Option<Arc<Shared>>>,
    /// Held while a connection is being opened for this slot, so that tasks finding it empty
    /// at once open one connection, not one each.
    opening: tokio::sync::Mutex<()>,
}

/// The awaited connections to one server: writers, and read-only readers.
pub(crate) struct AwaitedPool {
    url: String,
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    writers: Slots,
    readers: Slots,
}

impl AwaitedPool {
    /// The connections for `url`, at most `connections` of each kind; none is opened yet.
    pub(crate) fn new(url: &str, connections: usize) -> Result<Self, DbError> {
        let (config, tls) = config_of(url)?;
        let slots = |read_only: bool| Slots {
            slots: (0..connections.max(1)).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
            read_only,
        };
        Ok(AwaitedPool {
            url: url.to_owned(),
            config,
            tls: tls.map(tokio_postgres_rustls::MakeRustlsConnect::new),
            writers: slots(false),
            readers: slots(true),
        })
    }

    /// Runs `statement`, from the awaiting task.
    ///
    /// A read whose connection turns out lost (the server ended it) runs again once, every
    /// connection opened anew first (a server that ended one has likely ended them all).
    pub(crate) async fn run<T>(&self, statement: Statement<T>) -> Result<T, DbError> {
        let writes = statement.writes;
        let Parts {
            sql,
            params,
            outcome,
        } = statement.parts?;
        let slots = if writes { &self.writers } else { &self.readers };
        match outcome {
            Outcome::Ready(value) => Ok(value),
            Outcome::Changed(then) => {
                let conn = self.take(slots).await?;
                let prepared = conn.prepare(&sql).await?;
                let bound = bind(&prepared, &params)?;
                let changed = conn
                    .client
                    .execute(&prepared, &bound)
                    .await
                    .map_err(error)?;
                then(usize::try_from(changed).unwrap_or(usize::MAX))
            }
            Outcome::Inserted { key, then } => {
                let sql = format!("{sql} RETURNING {}", quote_ident(key));
                let rows = self.take(slots).await?.rows(&sql, &params).await?;
                let mut last = None;
                read_rows(&rows, &mut |row| {
                    last = Some(super::conn::returned_key(row));
                    Ok(ControlFlow::Continue(()))
                })?;
                then(last.ok_or(DbError::NotFound)?)
            }
            Outcome::Rows(mut reader) => {
                let mut attempts = if writes { 1 } else { 2 };
                let rows = loop {
                    let rows = self.take(slots).await?.rows(&sql, &params).await;
                    attempts -= 1;
                    match rows {
                        Err(DbError::ConnectionLost(_)) if attempts > 0 => {
                            self.writers.forget();
                            self.readers.forget();
                        }
                        rows => break rows?,
                    }
                };
                read_rows(&rows, &mut |row| reader.row(row))?;
                reader.finish()
            }
        }
    }

    /// A connection of `slots`: the first with nothing in flight (so that one caller at a time
    /// keeps to one warm connection), else the next in turn; opened if it is not (or not on
    /// this runtime). Counted busy until the guard is dropped.
    async fn take<'s>(&self, slots: &'s Slots) -> Result<Taken<'s>, DbError> {
        let runtime = tokio::runtime::Handle::current().id();
        let at = slots
            .slots
            .iter()
            .position(|slot| slot.busy.load(Ordering::Relaxed) == 0)
            .unwrap_or_else(|| slots.next.fetch_add(1, Ordering::Relaxed) % slots.slots.len());
        let slot = &slots.slots[at];
        slot.busy.fetch_add(1, Ordering::Relaxed);
        let busy = Busy(slot);
        let conn = self.open(slot, slots.read_only, runtime).await?;
        Ok(Taken { conn, _busy: busy })
    }

    async fn open(
        &self,
        slot: &Slot,
        read_only: bool,
        runtime: tokio::runtime::Id,
    ) -> Result<Arc<Shared>, DbError> {
        let usable = |open: &Option<Arc<Shared>>| {
            open.as_ref()
                .filter(|conn| conn.runtime == runtime && !conn.client.is_closed())
                .cloned()
        };
        if let Some(conn) = usable(&lock(&slot.open)) {
            return Ok(conn);
        }
        let _opening = slot.opening.lock().await;
        if let Some(conn) = usable(&lock(&slot.open)) {
            return Ok(conn);
        }
        // Boxed: connecting (TLS included) is a large future, which would otherwise make every
        // query's future as large, though it runs once per connection.
        let conn = Arc::new(Box::pin(self.connect(read_only, runtime)).await?);
        *lock(&slot.open) = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Opens a connection, its task spawned on this runtime.
    async fn connect(
        &self,
        read_only: bool,
        runtime: tokio::runtime::Id,
    ) -> Result<Shared, DbError> {
        let refused = |err: tokio_postgres::Error| refused(&self.url, chain(&err));
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) =
                    self.config.connect(tls.clone()).await.map_err(refused)?;
                tokio::spawn(connection);
                client
            }
            None => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(refused)?;
                tokio::spawn(connection);
                client
            }
        };
        if read_only {
            client
                .batch_execute("SET default_transaction_read_only = on")
                .await
                .map_err(error)?;
        }
        Ok(Shared {
            client,
            statements: Mutex::new(statement_cache()),
            runtime,
        })
    }
}

/// A slot counted busy while a statement runs on it.
struct Busy<'s>(&'s Slot);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection taken for one statement.
struct Taken<'s> {
    conn: Arc<Shared>,
    _busy: Busy<'s>,
}

impl std::ops::Deref for Taken<'_> {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.conn
    }
}

impl Slots {
    /// Lets go of every connection (each closes when the last query using it ends).
    fn forget(&self) {
        for slot in &self.slots {
            lock(&slot.open).take();
        }
    }
}

impl Shared {
    /// The prepared statement for `sql` (fluxon's `?` form), from the cache or made now.
    async fn prepare(&self, sql: &str) -> Result<tokio_postgres::Statement, DbError> {
        if let Some(statement) = lock(&self.statements).get(sql) {
            return Ok(statement.clone());
        }
        let numbered = Dialect::Postgres.parameters(sql);
        // Boxed: a large future that runs once per statement and connection.
        let statement = Box::pin(self.client.prepare(&numbered))
            .await
            .map_err(error)?;
        lock(&self.statements).put(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// Runs a query and gives its rows, all read in one round trip.
    async fn rows(&self, sql: &str, params: &[Value]) -> Result<Vec<tokio_postgres::Row>, DbError> {
        let prepared = self.prepare(sql).await?;
        let bound = bind(&prepared, params)?;
        self.client.query(&prepared, &bound).await.map_err(error)
    }
}

/// Hands `rows` to `each` until it says stop, a panic in it made an error (as on the blocking
/// path, where it would otherwise take a database thread).
fn read_rows(
    rows: &[tokio_postgres::Row],
    each: &mut dyn FnMut(&SqlRow<'_>) -> Result<ControlFlow<()>, DbError>,
) -> Result<(), DbError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_each(rows, each)))
        .unwrap_or_else(|panic| Err(DbError::Panicked(crate::panic::panic_text(panic.as_ref()))))
}
