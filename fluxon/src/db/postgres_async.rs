//! The awaited PostgreSQL path of [`AsyncDatabase`](super::AsyncDatabase): a one-statement query
//! ([`Statement`]) is sent by tokio-postgres from the task that awaits it, on a connection from a
//! deadpool pool, with no thread in between and none blocked. Transactions (whose bodies are
//! blocking closures) and queries of several statements take the blocking path
//! ([`PgPool`](super::postgres::PgPool)) instead, so a database keeps two sets of connections,
//! each opened when first needed.
//!
//! Each connection is driven by the task awaiting a statement on it, and used only on the tokio
//! runtime that opened it: a database used from several runtimes opens connections on each.
//! Reads take connections of their own, read-only, as on the blocking path.

use std::future::Future;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;

use deadpool::managed::{self, Metrics, Pool, RecycleError, RecycleResult};
use tokio_postgres::Client;

use super::dialect::Dialect;
use super::postgres::{
    bind, chain, config_of, error, read_each, refused, statement_cache, StatementCache, POOL_WAIT,
};
use super::schema::quote_ident;
use super::statement::{Outcome, Parts, Statement};
use super::DbError;

/// A connection's own future: it writes requests and reads responses, and ends when the
/// connection does.
type Driver = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// One connection, and the statements prepared on it.
///
/// The connection is driven by the task awaiting a statement on it (no task of its own, as
/// sqlx does it): the request is written, and the answer read and handed over, in that task,
/// with no wake-up of another. A connection is only used on the runtime that opened it (whose
/// I/O driver its socket is registered with).
pub(crate) struct AwaitedConnection {
    client: Client,
    link: Link,
    runtime: tokio::runtime::Id,
    statements: StatementCache<tokio_postgres::Statement>,
}

/// A connection's own future, and why it ended once it has.
struct Link {
    driver: Driver,
    ended: Option<String>,
    wakes: Arc<Wakes>,
}

/// Opens connections to one server for the pool.
struct Manager {
    url: String,
    config: tokio_postgres::Config,
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    read_only: bool,
}

impl managed::Manager for Manager {
    type Type = AwaitedConnection;
    type Error = DbError;

    // Boxed: connecting (TLS included) is a large future, which would otherwise make every
    // query's future as large (and moved whole), though it runs once per connection.
    fn create(&self) -> impl Future<Output = Result<AwaitedConnection, DbError>> + Send {
        Box::pin(self.connect())
    }

    /// A connection is kept while it is open and belongs to the runtime asking: what arrived
    /// while it was idle (the server closing it) is read first, without waiting.
    async fn recycle(&self, conn: &mut AwaitedConnection, _: &Metrics) -> RecycleResult<DbError> {
        let here = tokio::runtime::Handle::try_current().map(|runtime| runtime.id());
        if here.ok() != Some(conn.runtime) {
            return Err(RecycleError::message("opened on another runtime"));
        }
        std::future::poll_fn(|cx| {
            conn.link.poll(cx);
            Poll::Ready(())
        })
        .await;
        if conn.link.ended.is_some() || conn.client.is_closed() {
            return Err(RecycleError::message("the connection is closed"));
        }
        Ok(())
    }
}

impl Manager {
    async fn connect(&self) -> Result<AwaitedConnection, DbError> {
        let runtime = tokio::runtime::Handle::current().id();
        let refused = |err: tokio_postgres::Error| refused(&self.url, chain(&err));
        let (client, driver): (Client, Driver) = match &self.tls {
            Some(tls) => {
                let (client, connection) =
                    self.config.connect(tls.clone()).await.map_err(refused)?;
                (client, Box::pin(connection))
            }
            None => {
                let (client, connection) = self
                    .config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(refused)?;
                (client, Box::pin(connection))
            }
        };
        let mut conn = AwaitedConnection {
            client,
            link: Link {
                driver,
                ended: None,
                wakes: Arc::default(),
            },
            runtime,
            statements: statement_cache(),
        };
        if self.read_only {
            let read_only = conn
                .client
                .batch_execute("SET default_transaction_read_only = on");
            conn.link.drive(read_only).await?.map_err(error)?;
        }
        Ok(conn)
    }
}

/// The awaited connections to one server: writers, and read-only readers.
pub(crate) struct AwaitedPool {
    writers: Pool<Manager>,
    readers: Pool<Manager>,
}

impl AwaitedPool {
    /// The pools for `url`, at most `max_open` connections each; none is opened yet.
    pub(crate) fn new(url: &str, max_open: usize) -> Result<Self, DbError> {
        let (config, tls) = config_of(url)?;
        let tls = tls.map(tokio_postgres_rustls::MakeRustlsConnect::new);
        let pool = |read_only: bool| {
            let manager = Manager {
                url: url.to_owned(),
                config: config.clone(),
                tls: tls.clone(),
                read_only,
            };
            Pool::builder(manager)
                .max_size(max_open.max(1))
                .wait_timeout(Some(POOL_WAIT))
                .runtime(deadpool::Runtime::Tokio1)
                .build()
                .map_err(|err| refused(url, err.to_string()))
        };
        Ok(AwaitedPool {
            writers: pool(false)?,
            readers: pool(true)?,
        })
    }

    /// Runs `statement` on a pooled connection, from the awaiting task.
    ///
    /// A read whose connection turns out lost (the server ended it while it was idle) runs
    /// again once on a new connection, the idle ones dropped first (a server that ended one
    /// has likely ended them all).
    pub(crate) async fn run<T>(&self, statement: Statement<T>) -> Result<T, DbError> {
        let writes = statement.writes;
        let Parts {
            sql,
            params,
            outcome,
        } = statement.parts?;
        let pool = if writes { &self.writers } else { &self.readers };
        match outcome {
            Outcome::Ready(value) => Ok(value),
            Outcome::Changed(then) => {
                let mut conn = get(pool).await?;
                let conn = &mut *conn;
                let prepared = conn.prepare(&sql).await?;
                let bound = bind(&prepared, &params)?;
                let execute = conn.client.execute(&prepared, &bound);
                let changed = conn.link.drive(execute).await?.map_err(error)?;
                then(usize::try_from(changed).unwrap_or(usize::MAX))
            }
            Outcome::Inserted { key, then } => {
                let sql = format!("{sql} RETURNING {}", quote_ident(key));
                let rows = get(pool).await?.rows(&sql, &params).await?;
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
                    let rows = get(pool).await?.rows(&sql, &params).await;
                    attempts -= 1;
                    match rows {
                        Err(DbError::ConnectionLost(_)) if attempts > 0 => self.forget_idle(),
                        rows => break rows?,
                    }
                };
                read_rows(&rows, &mut |row| reader.row(row))?;
                reader.finish()
            }
        }
    }

    /// Closes every idle connection.
    fn forget_idle(&self) {
        self.writers.retain(|_, _| false);
        self.readers.retain(|_, _| false);
    }
}

/// A connection from `pool`: an idle one (or a new one while there is room) at once, without
/// setting a timer; else the first one given back within [`POOL_WAIT`].
async fn get(pool: &Pool<Manager>) -> Result<managed::Object<Manager>, DbError> {
    let now = managed::Timeouts {
        wait: Some(std::time::Duration::ZERO),
        create: None,
        recycle: None,
    };
    let got = match pool.timeout_get(&now).await {
        Err(managed::PoolError::Timeout(_)) => pool.get().await,
        other => other,
    };
    got.map_err(|err| match err {
        managed::PoolError::Backend(err) => err,
        managed::PoolError::Timeout(_) => DbError::PoolTimeout(POOL_WAIT),
        other => DbError::Postgres(other.to_string()),
    })
}

impl Link {
    /// Polls the connection's own future (writing what is asked, reading what came), noting
    /// its end.
    fn poll(&mut self, cx: &mut Context<'_>) {
        if self.ended.is_none() {
            if let Poll::Ready(ended) = self.driver.as_mut().poll(cx) {
                self.ended = Some(match ended {
                    Ok(()) => "the connection closed".to_owned(),
                    Err(err) => chain(&err),
                });
            }
        }
    }

    /// Awaits `request` (made on this connection's client) while driving the connection; an
    /// error if the connection ends first.
    ///
    /// The request and the connection hand each other work through channels, each waking the
    /// other's waker. Both are polled with a waker of this link's ([`Wakes`]): a wake-up from one
    /// while this task polls them only means "poll again now", looped here, instead of the task
    /// being queued anew (which on a multi-threaded runtime can wake an idle worker to steal it).
    /// Wake-ups from elsewhere (the socket) wake the task.
    async fn drive<F: Future>(&mut self, request: F) -> Result<F::Output, DbError> {
        let mut request = std::pin::pin!(request);
        std::future::poll_fn(|cx| {
            self.wakes.task.register(cx.waker());
            let waker = Waker::from(Arc::clone(&self.wakes));
            let mut inner = Context::from_waker(&waker);
            // Bounded: a pair that keeps waking each other yields the thread after a while.
            for _ in 0..64 {
                self.wakes.polling.store(true, Ordering::SeqCst);
                self.wakes.woken.store(false, Ordering::SeqCst);
                self.poll(&mut inner);
                let answer = request.as_mut().poll(&mut inner);
                self.wakes.polling.store(false, Ordering::SeqCst);
                if let Poll::Ready(answer) = answer {
                    return Poll::Ready(Ok(answer));
                }
                if let Some(why) = &self.ended {
                    return Poll::Ready(Err(DbError::ConnectionLost(why.clone())));
                }
                if !self.wakes.woken.load(Ordering::SeqCst) {
                    return Poll::Pending;
                }
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await
    }
}

/// The waker a connection and its request are polled with (see [`Link::drive`]).
#[derive(Default)]
struct Wakes {
    /// The task awaiting the request.
    task: AtomicWaker,
    /// Set while the task polls the pair.
    polling: AtomicBool,
    /// Set by a wake-up since the pair was last polled.
    woken: AtomicBool,
}

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // `woken` first: either the poller sees it once it stops polling, or this sees that it
        // stopped and wakes the task (or both: one wake-up too many, never one too few).
        self.woken.store(true, Ordering::SeqCst);
        if !self.polling.load(Ordering::SeqCst) {
            self.task.wake();
        }
    }
}

impl AwaitedConnection {
    /// Runs a query and gives its rows, all read in one round trip.
    async fn rows(
        &mut self,
        sql: &str,
        params: &[super::Value],
    ) -> Result<Vec<tokio_postgres::Row>, DbError> {
        let prepared = self.prepare(sql).await?;
        let bound = bind(&prepared, params)?;
        let query = self.client.query(&prepared, &bound);
        self.link.drive(query).await?.map_err(error)
    }

    /// The prepared statement for `sql` (fluxon's `?` form), from the cache or made now.
    async fn prepare(&mut self, sql: &str) -> Result<tokio_postgres::Statement, DbError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let numbered = Dialect::Postgres.parameters(sql);
        // Boxed: a large future that runs once per statement and connection.
        let prepare = Box::pin(self.client.prepare(&numbered));
        let statement = self.link.drive(prepare).await?.map_err(error)?;
        self.statements.put(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// Hands `rows` to `each` until it says stop, a panic in it made an error (as on the blocking
/// path, where it would otherwise take a database thread).
fn read_rows(
    rows: &[tokio_postgres::Row],
    each: &mut dyn FnMut(&super::SqlRow<'_>) -> Result<ControlFlow<()>, DbError>,
) -> Result<(), DbError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_each(rows, each)))
        .unwrap_or_else(|panic| Err(DbError::Panicked(crate::panic::panic_text(panic.as_ref()))))
}
