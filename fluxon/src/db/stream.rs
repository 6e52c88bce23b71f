//! Large results with bounded memory: rows handed over one at a time as SQLite steps through
//! them ([`Check::for_each`](super::Check::for_each), and the async [`RowStream`]), and keyset
//! pagination ([`Check::after`](super::Check::after)): the next page starts after the last key
//! seen, so page 1,000 costs what page 1 does.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use std::ops::ControlFlow;

use super::conn::Conn;
use super::dialect::Location;
use super::postgres::PgConnection;
use tokio::sync::mpsc;

use super::model::Model;
use super::query::{Query, Select};
use super::row::Row;
use super::DbError;

/// Calls a closure on each matching row as SQLite reads it; produces how many rows it saw.
pub struct ForEach<M, F> {
    pub(crate) select: Select<M>,
    pub(crate) each: F,
}

impl<M: Model, F> Query for ForEach<M, F>
where
    F: FnMut(Row<M>) -> Result<(), DbError> + Send + 'static,
{
    type Output = u64;
    fn writes(&self) -> bool {
        false
    }
    fn run(mut self, conn: &Conn<'_>) -> Result<u64, DbError> {
        each_row(conn, self.select, &mut self.each)
    }
}

/// Steps through the rows of `select`, handing each to `each`; stops at its first error.
fn each_row<M: Model>(
    conn: &Conn<'_>,
    select: Select<M>,
    each: &mut dyn FnMut(Row<M>) -> Result<(), DbError>,
) -> Result<u64, DbError> {
    let (sql, params) = select.sql(M::SCHEMA.select_list, "")?;
    let mut seen = 0;
    conn.each_streamed(&sql, params, |row| {
        each(Row::read(row, 0)?)?;
        seen += 1;
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(seen)
}

/// Rows of a query as an async [`Stream`], read by a thread of its own on a connection of its
/// own and handed over through a bounded queue: memory holds at most the queue's rows however
/// large the result, and a slow reader slows the query rather than growing a buffer. Dropping
/// the stream stops the query.
pub struct RowStream<M: Model> {
    rows: mpsc::Receiver<Result<Row<M>, DbError>>,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> RowStream<M> {
    pub(crate) fn start(location: Location, select: Select<M>, buffer: usize) -> Self {
        let (send, rows) = mpsc::channel(buffer.max(1));
        let started = std::thread::Builder::new()
            .name("fluxon-db-stream".to_owned())
            .spawn({
                let send = send.clone();
                move || {
                    // The reader went away: stop reading (an error nobody sees).
                    let mut hand_over =
                        |row| send.blocking_send(Ok(row)).map_err(|_| DbError::Closed);
                    let result = match &location {
                        Location::Sqlite(path) => {
                            super::open_connection(path, true).and_then(|conn| {
                                each_row(&Conn::sqlite(&conn), select, &mut hand_over)
                            })
                        }
                        Location::Postgres(url) => PgConnection::connect(url).and_then(|conn| {
                            let conn = std::cell::RefCell::new(conn);
                            each_row(&Conn::postgres(&conn), select, &mut hand_over)
                        }),
                    };
                    if let Err(err) = result {
                        if !matches!(err, DbError::Closed) {
                            let _ = send.blocking_send(Err(err));
                        }
                    }
                }
            });
        if let Err(err) = started {
            let _ = send.try_send(Err(DbError::Thread(err)));
        }
        RowStream {
            rows,
            _model: PhantomData,
        }
    }

    /// The next row, or `None` at the end.
    ///
    /// # Errors
    /// A row that does not decode, or the query's own error; the stream ends after it.
    ///
    /// # Cancel safety
    /// Cancel safe: a row not yet taken stays in the queue.
    pub async fn next(&mut self) -> Option<Result<Row<M>, DbError>> {
        self.rows.recv().await
    }
}

impl<M: Model> Stream for RowStream<M> {
    type Item = Result<Row<M>, DbError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rows.poll_recv(cx)
    }
}
