//! Savepoints, and a bare connection as an [`Executor`]: what code that runs inside someone
//! else's transaction uses (the cloud's metadata, a bulk insert) to make its own writes all or
//! nothing without ending the surrounding transaction.

use super::conn::Conn;
use super::executor::Executor;
use super::query::Query;
use super::DbError;

/// A bare connection as an [`Executor`]: queries run on it directly (inside whatever
/// transaction it is in).
pub(crate) struct On<'c>(pub(crate) Conn<'c>);

impl Executor for On<'_> {
    type Out<T: Send + 'static> = Result<T, DbError>;

    fn execute<Q: Query>(&self, query: Q) -> Result<Q::Output, DbError> {
        query.run(&self.0)
    }
}

/// Runs `body` in the savepoint `name`: if it returns `Err`, every write it made is undone and
/// the surrounding transaction (if any) stays usable; outside a transaction, the savepoint is
/// one. Savepoints nest.
pub(crate) fn savepoint<T, E: From<DbError>>(
    conn: &Conn<'_>,
    name: &str,
    body: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    if !conn.in_transaction() {
        // Outside a transaction a savepoint is one; PostgreSQL takes SAVEPOINT only inside.
        conn.begin()?;
        let result = body();
        conn.end(result.is_ok())?;
        return result;
    }
    let run = |sql: String| conn.batch(&sql);
    run(format!("SAVEPOINT {name}"))?;
    // A panic in `body` leaves the savepoint open; the transaction's own rollback closes it.
    match body() {
        Ok(value) => {
            run(format!("RELEASE {name}"))?;
            Ok(value)
        }
        Err(err) => {
            run(format!("ROLLBACK TO {name}; RELEASE {name}"))?;
            Err(err)
        }
    }
}
