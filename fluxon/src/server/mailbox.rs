//! The mailbox: reverse requests kept in SQLite for users who are offline, delivered when they
//! next connect — in order, at least once, each removed only once the client acknowledged it (a
//! successful reply from its handler).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::db::{AsyncDatabase, DbError};

use super::reverse::{self, Link, ReverseError};
use super::UserId;

/// The mailbox's own table (not a model: migrations and the drift check leave it alone).
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS fluxon_mailbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user INTEGER NOT NULL,
    name TEXT NOT NULL,
    payload BLOB NOT NULL,
    created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS fluxon_mailbox_user_idx ON fluxon_mailbox (user, id);";

/// How long a delivery waits for the client's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kept messages and the users being delivered to right now.
pub(crate) struct Mailbox {
    db: AsyncDatabase,
    delivering: Mutex<HashSet<UserId>>,
}

impl Mailbox {
    /// Opens the mailbox in `db`, creating its table if needed.
    pub async fn open(db: AsyncDatabase) -> Result<Arc<Mailbox>, DbError> {
        db.transaction(|tx| tx.with_connection(|c| Ok(c.execute_batch(SCHEMA)?)))
            .await?;
        Ok(Arc::new(Mailbox {
            db,
            delivering: Mutex::new(HashSet::new()),
        }))
    }

    /// Keeps a request for `user`.
    pub async fn keep(&self, user: UserId, name: &str, payload: Vec<u8>) -> Result<(), DbError> {
        let name = name.to_owned();
        self.db
            .transaction(move |tx| {
                tx.with_connection(|c| {
                    c.execute(
                        "INSERT INTO fluxon_mailbox (user, name, payload) VALUES (?1, ?2, ?3)",
                        rusqlite::params![user, name, payload],
                    )?;
                    Ok(())
                })
            })
            .await
    }

    /// How many requests are kept for `user`.
    pub async fn count(&self, user: UserId) -> Result<i64, DbError> {
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM fluxon_mailbox WHERE user = ?1",
                    [user],
                    |r| r.get(0),
                )?)
            })
            .await
    }

    /// Delivers what is kept for `user` over `links`, oldest first, one at a time, removing each
    /// once acknowledged; stops at the first that is not (it stays for next time).
    pub async fn deliver(self: Arc<Self>, user: UserId, links: impl Fn() -> Vec<Arc<Link>>) {
        if !lock(&self.delivering).insert(user) {
            return; // Another delivery to this user is under way; it keeps the order.
        }
        loop {
            let next = self
                .db
                .read(move |c| {
                    let mut statement = c.prepare_cached(
                        "SELECT id, name, payload FROM fluxon_mailbox WHERE user = ?1 ORDER BY id LIMIT 1",
                    )?;
                    let mut rows = statement.query([user])?;
                    match rows.next()? {
                        Some(row) => Ok(Some((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, Vec<u8>>(2)?))),
                        None => Ok(None),
                    }
                })
                .await;
            let (id, name, payload) = match next {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(%err, user, "mailbox read failed");
                    break;
                }
            };
            match reverse::call_first_raw(&links(), &name, &payload, ACK_TIMEOUT).await {
                Ok(_) => {
                    let removed = self
                        .db
                        .transaction(move |tx| {
                            tx.with_connection(|c| {
                                Ok(c.execute("DELETE FROM fluxon_mailbox WHERE id = ?1", [id])?)
                            })
                        })
                        .await;
                    if let Err(err) = removed {
                        tracing::warn!(%err, user, "mailbox: delivered but not removed (it will come again)");
                        break;
                    }
                }
                Err(ReverseError::Offline | ReverseError::Disconnected) => break,
                Err(err) => {
                    tracing::info!(%err, user, name, "mailbox: not acknowledged; kept for next time");
                    break;
                }
            }
        }
        lock(&self.delivering).remove(&user);
    }
}
