//! `AsyncDatabase`: the same connections as [`Database`](super::Database), for async code. On
//! PostgreSQL, inside a tokio runtime, a query that is one statement is awaited on connections
//! of its own ([`postgres_async`](super::postgres_async)). Every other query runs as follows. On a
//! multi-threaded tokio runtime it runs where it is awaited, inside `block_in_place` (the
//! worker's other tasks carry on elsewhere): rows are made on the thread that uses them, with no
//! wake-up to pay. Elsewhere (a current-thread runtime, another executor) it is one hop to the
//! database's own threads and one back: a writer thread for writes and transactions, reader
//! threads for reads. A view's first poll on its connection's reader never runs a query: the query
//! waits for the view's own task, so the reader goes on reading.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::oneshot;

use super::database::{Core, Transaction};
use super::dialect::Dialect;
use super::executor::{Check, Executor};
use super::model::Model;
use super::query::{Closure, Query};
use super::statement::Statement;
use super::stream::RowStream;
use super::{Database, DbError};

type Job = Box<dyn FnOnce(&Core) + Send>;

/// A query or transaction for an [`AsyncDatabase`]; it runs when first polled, not before.
///
/// On PostgreSQL, inside a tokio runtime, a query that is one statement (a select, an insert,
/// an update, a delete, raw SQL: see [`Query::into_statement`]) is awaited: tokio-postgres sends
/// it from the polling task and the task yields until the answer comes, with no thread blocked.
/// What follows is how the rest runs (every query on SQLite; transactions and queries of
/// several statements on PostgreSQL).
///
/// On a multi-threaded tokio runtime it runs on the polling thread, inside
/// [`block_in_place`](tokio::task::block_in_place) (the worker's other tasks move to another
/// thread meanwhile): no hop to another thread and back, and the rows are made where they are used.
/// Anywhere else (a current-thread runtime, another executor) it is sent to the database's own
/// threads; a query that usually answers within a few tens of microseconds is then first awaited
/// by looking for the answer for up to twice its usual time (at most 50 µs) before the task yields
/// its thread, since being woken costs more than that wait.
///
/// Tokio does not allow blocking in place inside a `LocalSet` that a multi-threaded runtime's
/// `block_on` drives, and gives no way to see that case beforehand: a query awaited there panics.
/// Await it in a spawned task, or use a current-thread runtime for the `LocalSet`.
///
/// # Cancel safety
/// Dropping a `DbFuture` before its first poll runs nothing. An awaited PostgreSQL statement
/// dropped after its first poll may or may not have reached the server. Dropping the others
/// later does not stop the statement: one run in place has already finished when the poll returns, and one sent to the
/// database's threads runs to its end (a write or a transaction is committed or rolled back as if
/// awaited), its result dropped. So a write whose future was dropped (a `select!` that lost, a
/// timed-out task) may have happened: read it back to know.
pub struct DbFuture<T> {
    state: State<T>,
}

// A `T` it holds (a statement's known answer) is only ever moved, never pinned.
impl<T> Unpin for DbFuture<T> {}

type Work<T> = Box<dyn FnOnce(&Core) -> Result<T, DbError> + Send>;

enum State<T> {
    /// Not started: the work and where it belongs.
    Unstarted {
        db: AsyncDatabase,
        write: bool,
        work: Work<T>,
    },
    /// Not started: a statement to await on PostgreSQL, where a tokio runtime runs the task.
    Statement {
        db: AsyncDatabase,
        statement: Statement<T>,
    },
    /// Awaited on PostgreSQL.
    Awaiting(Pin<Box<dyn Future<Output = Result<T, DbError>> + Send>>),
    /// Sent to a database thread.
    Sent {
        reply: oneshot::Receiver<Result<T, DbError>>,
        spin: Duration,
    },
    /// Answered (the future was polled to completion).
    Done,
}

thread_local! {
    /// Set while the server polls a view for the first time on its connection's reader: a query
    /// started then must not block the reader, so it waits for the view's own task.
    static NOT_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `poll` so that queries it starts do not run on this thread: a query future polled inside
/// returns `Pending` (waking its task) and runs when polled again outside.
pub(crate) fn elsewhere<R>(poll: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            NOT_HERE.with(|flag| flag.set(self.0));
        }
    }
    let _reset = Reset(NOT_HERE.with(|flag| flag.replace(true)));
    poll()
}

/// Whether a query may run on this thread, inside `block_in_place`.
fn here() -> bool {
    use tokio::runtime::{Handle, RuntimeFlavor};
    Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == RuntimeFlavor::MultiThread)
}

/// The most reader threads a database starts (they serve runtimes that cannot block in place).
const READER_THREADS: usize = 2;

/// The longest a caller looks for its answer before it yields its thread.
const MAX_AWAIT_SPIN: Duration = Duration::from_micros(50);

/// A moving average of how long jobs of one kind take on their thread, in nanoseconds.
#[derive(Default)]
struct Typical(AtomicU64);

impl Typical {
    fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let old = self.0.load(Ordering::Relaxed);
        // 7/8 old, 1/8 new: settles in a few dozen queries, shrugs off one outlier.
        let new = if old == 0 {
            took
        } else {
            old - old / 8 + took / 8
        };
        self.0.store(new, Ordering::Relaxed);
    }

    /// How long a caller should look for the answer before yielding.
    fn spin(&self) -> Duration {
        let typical = Duration::from_nanos(self.0.load(Ordering::Relaxed));
        if typical == Duration::ZERO || typical >= MAX_AWAIT_SPIN {
            Duration::ZERO
        } else {
            (typical * 2 + Duration::from_micros(5)).min(MAX_AWAIT_SPIN)
        }
    }
}

impl<T: Send + 'static> Future for DbFuture<T> {
    type Output = Result<T, DbError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if matches!(self.state, State::Statement { .. }) {
            self.state = match std::mem::replace(&mut self.state, State::Done) {
                State::Statement { db, statement } => db.start(statement),
                other => other,
            };
        }
        if let State::Awaiting(awaiting) = &mut self.state {
            let answer = ready!(awaiting.as_mut().poll(cx));
            self.state = State::Done;
            return Poll::Ready(answer);
        }
        if matches!(self.state, State::Unstarted { .. }) && NOT_HERE.with(std::cell::Cell::get) {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Unstarted { db, work, .. } if here() => {
                let core = &db.core;
                return Poll::Ready(tokio::task::block_in_place(|| guarded(core, work)));
            }
            State::Unstarted { db, write, work } => self.state = db.send(write, work),
            other => self.state = other,
        }
        let State::Sent { reply, spin } = &mut self.state else {
            return Poll::Ready(Err(DbError::Closed));
        };
        if *spin > Duration::ZERO {
            let spin = std::mem::take(spin);
            let start = Instant::now();
            while start.elapsed() < spin {
                match reply.try_recv() {
                    Ok(answer) => {
                        self.state = State::Done;
                        return Poll::Ready(answer);
                    }
                    Err(oneshot::error::TryRecvError::Closed) => {
                        self.state = State::Done;
                        return Poll::Ready(Err(DbError::Closed));
                    }
                    Err(oneshot::error::TryRecvError::Empty) => std::hint::spin_loop(),
                }
            }
        }
        let answer = ready!(Pin::new(reply).poll(cx));
        self.state = State::Done;
        Poll::Ready(answer.unwrap_or(Err(DbError::Closed)))
    }
}

/// Runs `work`, turning a panic in it into an error: a panicking closure must not take a thread
/// (and every later query) with it.
fn guarded<T>(core: &Core, work: Work<T>) -> Result<T, DbError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(core)))
        .unwrap_or_else(|panic| Err(DbError::Panicked(crate::panic::panic_text(panic.as_ref()))))
}

struct Threads {
    writes: Sender<Job>,
    reads: Sender<Job>,
    typical_write: Typical,
    typical_read: Typical,
}

/// A SQLite database for async code. Cheap to clone; the threads stop when the last clone is
/// dropped.
///
/// ```
/// use fluxon::db::{AsyncDatabase, Executor};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), fluxon::db::DbError> {
/// # let dir = tempfile::tempdir().unwrap();
/// let db = AsyncDatabase::open(dir.path().join("app.sqlite3"))?;
/// let n: i64 = db.transaction(|tx| tx.with_connection(|c| Ok(c.query_row("SELECT 7", [], |r| r.get(0))?))).await?;
/// assert_eq!(n, 7);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AsyncDatabase {
    core: Arc<Core>,
    threads: Arc<Threads>,
}

impl std::fmt::Debug for AsyncDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncDatabase")
            .field("location", &self.core.location())
            .finish_non_exhaustive()
    }
}

fn spawn_worker(name: &str, core: Arc<Core>, jobs: Receiver<Job>) -> Result<(), DbError> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            while let Some(job) = next_job(&jobs) {
                job(&core);
            }
        })
        .map(|_| ())
        .map_err(DbError::Thread)
}

/// How long an idle database thread keeps looking for the next job before it sleeps: a caller
/// awaiting one query after another then finds the thread awake instead of paying a wake-up.
const SPIN: Duration = Duration::from_micros(50);

fn next_job(jobs: &Receiver<Job>) -> Option<Job> {
    let start = Instant::now();
    loop {
        match jobs.try_recv() {
            Ok(job) => return Some(job),
            Err(crossbeam_channel::TryRecvError::Disconnected) => return None,
            Err(crossbeam_channel::TryRecvError::Empty) if start.elapsed() < SPIN => {
                std::hint::spin_loop();
            }
            Err(crossbeam_channel::TryRecvError::Empty) => return jobs.recv().ok(),
        }
    }
}

impl AsyncDatabase {
    /// Opens (creating if needed) the database file, with at most 8 pooled reader connections (and
    /// a writer thread and 2 reader threads for runtimes that cannot block in place).
    pub fn open(path: impl AsRef<Path>) -> Result<AsyncDatabase, DbError> {
        Self::open_with_readers(path, 8)
    }

    /// Opens the database file with at most `readers` pooled reader connections (at least one)
    /// and as many reader threads, up to 2. Reads beyond that many at once open a connection of
    /// their own, closed afterwards.
    pub fn open_with_readers(
        path: impl AsRef<Path>,
        readers: usize,
    ) -> Result<AsyncDatabase, DbError> {
        let readers = readers.max(1);
        let core = Arc::new(Core::open(path.as_ref(), readers)?);
        let (writes, write_jobs) = crossbeam_channel::unbounded::<Job>();
        let (reads, read_jobs) = crossbeam_channel::unbounded::<Job>();
        spawn_worker("fluxon-db-writer", Arc::clone(&core), write_jobs)?;
        for _ in 0..readers.min(READER_THREADS) {
            spawn_worker("fluxon-db-reader", Arc::clone(&core), read_jobs.clone())?;
        }
        Ok(AsyncDatabase {
            core,
            threads: Arc::new(Threads {
                writes,
                reads,
                typical_write: Typical::default(),
                typical_read: Typical::default(),
            }),
        })
    }

    /// The same database, used from the calling thread.
    pub fn blocking(&self) -> Database {
        Database {
            core: Arc::clone(&self.core),
        }
    }

    fn submit<T: Send + 'static>(
        &self,
        write: bool,
        work: impl FnOnce(&Core) -> Result<T, DbError> + Send + 'static,
    ) -> DbFuture<T> {
        DbFuture {
            state: State::Unstarted {
                db: self.clone(),
                write,
                work: Box::new(work),
            },
        }
    }

    /// Starts a statement: awaited where a tokio runtime runs the task, else sent to the
    /// database's threads like any query.
    fn start<T: Send + 'static>(self, statement: Statement<T>) -> State<T> {
        if tokio::runtime::Handle::try_current().is_err() {
            return State::Unstarted {
                write: statement.writes,
                work: Box::new(move |core| core.run(statement)),
                db: self,
            };
        }
        if statement.writes && Core::writing() {
            return State::Awaiting(Box::pin(std::future::ready(Err(DbError::NestedWrite))));
        }
        State::Awaiting(Box::pin(async move {
            match self.core.awaited() {
                Some(pool) => pool.run(statement).await,
                None => self.core.run(statement),
            }
        }))
    }

    /// Sends `work` to the database's threads (writer or readers).
    fn send<T: Send + 'static>(&self, write: bool, work: Work<T>) -> State<T> {
        let (answer, reply) = oneshot::channel();
        let threads = Arc::clone(&self.threads);
        let job: Job = Box::new(move |core| {
            let start = Instant::now();
            let result = guarded(core, work);
            let typical = if write {
                &threads.typical_write
            } else {
                &threads.typical_read
            };
            typical.record(start.elapsed());
            let _ = answer.send(result);
        });
        let (queue, typical) = if write {
            (&self.threads.writes, &self.threads.typical_write)
        } else {
            (&self.threads.reads, &self.threads.typical_read)
        };
        // If the threads are gone the job (and its sender) is dropped: the future says Closed.
        let _ = queue.send(job);
        State::Sent {
            reply,
            spin: typical.spin(),
        }
    }

    /// Runs `body` as one transaction where the database's queries run (one hop for the whole
    /// closure): committed if it returns `Ok`, rolled back if it returns `Err` or panics.
    ///
    /// On PostgreSQL the transaction is SERIALIZABLE (as SQLite's, which run one writer at a
    /// time, are in effect): when it loses to a concurrent one (a serialization failure or a
    /// deadlock, in any statement or at COMMIT), it is rolled back and `body` runs again, up to
    /// 8 times in all with a short growing wait between, so `body` is `FnMut` and must be
    /// re-runnable: what it does outside the database (a message sent, a file written) is yours
    /// to make idempotent or to do after the commit. After the last attempt the answer is
    /// [`DbError::Conflict`] (or `body`'s own error made from it), and nothing was written.
    /// SQLite never runs it twice.
    pub fn transaction<T, F>(&self, body: F) -> DbFuture<T>
    where
        F: FnMut(&Transaction<'_>) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        self.submit(true, move |core| {
            core.transaction(super::postgres::ATTEMPTS, body)
        })
    }

    /// Like [`transaction`](Self::transaction), with an error type of your own (one a
    /// [`DbError`] converts into): rolled back when `body` returns any `Err`.
    ///
    /// # Errors
    /// `body`'s error, or the database's (converted into `E`).
    ///
    /// # Cancel safety
    /// Cancel safe: once started the transaction runs to its end (committed or rolled back) on
    /// its connection; dropping the future only forgets the answer.
    pub async fn transaction_with<T, E, F>(&self, body: F) -> Result<T, E>
    where
        F: FnMut(&Transaction<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        match self
            .submit(true, move |core| {
                Ok(core.transaction(super::postgres::ATTEMPTS, body))
            })
            .await
        {
            Ok(done) => done,
            Err(err) => Err(err.into()),
        }
    }

    /// A transaction that is never run twice (its body does something outside the database,
    /// such as renaming a file): on PostgreSQL a conflict with a concurrent transaction is its
    /// error, [`DbError::Conflict`], not a second run.
    pub(crate) async fn transaction_once<T, E, F>(&self, body: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let mut body = Some(body);
        let once = move |tx: &Transaction<'_>| match body.take() {
            Some(body) => body(tx),
            None => Err(DbError::Conflict("the transaction may not run twice".to_owned()).into()),
        };
        match self
            .submit(true, move |core| Ok(core.transaction(1, once)))
            .await
        {
            Ok(done) => done,
            Err(err) => Err(err.into()),
        }
    }

    /// Runs `body` with a reader connection on a reader thread, for SQL of your own.
    ///
    /// The connection is rusqlite's, so this is SQLite's own escape hatch: SQL meant for any
    /// backend goes through [`Raw`](crate::db::Raw), which binds fluxon's own values.
    pub fn read<T, F>(&self, body: F) -> DbFuture<T>
    where
        F: FnOnce(&rusqlite::Connection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let body = super::database::sqlite_only("AsyncDatabase::read", body);
        self.execute(Closure(body, false))
    }

    /// Runs `body` on a reader connection of either backend (fluxon's own reads of its tables).
    pub(crate) fn read_on<T, F>(&self, body: F) -> DbFuture<T>
    where
        F: FnOnce(&super::Conn<'_>) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        self.execute(Closure(body, false))
    }
}

impl<M: Model> Check<'_, AsyncDatabase, M> {
    /// The matching rows as an async stream, read by a thread of their own on a connection of
    /// their own through a queue of `buffer` rows: memory stays bounded however many rows
    /// match. See [`RowStream`].
    pub fn stream(self, buffer: usize) -> RowStream<M> {
        let (executor, select) = self.into_parts();
        RowStream::start(executor.core.location().clone(), select, buffer)
    }
}

impl Executor for AsyncDatabase {
    type Out<T: Send + 'static> = DbFuture<T>;

    fn execute<Q: Query>(&self, query: Q) -> DbFuture<Q::Output> {
        let query = match self.core.awaited() {
            Some(_) => match query.into_statement(Dialect::Postgres) {
                Ok(statement) => {
                    return DbFuture {
                        state: State::Statement {
                            db: self.clone(),
                            statement,
                        },
                    }
                }
                Err(query) => query,
            },
            None => query,
        };
        let write = query.writes();
        self.submit(write, move |core| core.run(query))
    }
}
