//! The mailbox: reverse requests kept in SQLite for users who are offline, delivered when they
//! next connect — in order, at least once, each removed only once the client acknowledged it (a
//! successful reply from its handler).
//!
//! Bounded like everything a peer can make the server keep: at most [`MailboxLimits::per_user`]
//! waiting messages per user, each kept at most [`MailboxLimits::ttl`]. A message the client
//! cannot take (no handler, its handler fails, no answer) is retried with back-off while the user
//! is online and, after [`MailboxLimits::max_tries`], set aside as a dead letter, so one bad
//! message cannot hold back the ones behind it for ever. Dead letters stay (for an operator to look
//! at) until the TTL removes them.

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

/// Columns added after the first version of the table (an existing mailbox gets them at start).
const ADDED_COLUMNS: [(&str, &str); 3] = [
    ("tries", "INTEGER NOT NULL DEFAULT 0"),
    ("dead", "INTEGER NOT NULL DEFAULT 0"),
    ("last_error", "TEXT"),
];

/// How long a delivery waits for the client's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Bounds on what the mailbox keeps.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[must_use = "limits do nothing until given to a server"]
pub struct MailboxLimits {
    /// Messages waiting for one user at most (default 1,000); past it `reverse_request_or_keep`
    /// fails with [`ReverseError::MailboxFull`].
    pub per_user: u64,
    /// How long a message is kept at most, delivered or not (default 7 days).
    pub ttl: Duration,
    /// Deliveries a message gets before it becomes a dead letter (default 5).
    pub max_tries: u32,
    /// The wait before the first retry; it doubles after each (default 1 s).
    pub first_retry: Duration,
}

setters!(MailboxLimits {
    per_user: u64,
    ttl: Duration,
    max_tries: u32,
    first_retry: Duration,
});

impl Default for MailboxLimits {
    fn default() -> Self {
        MailboxLimits {
            per_user: 1_000,
            ttl: Duration::from_secs(7 * 24 * 3600),
            max_tries: 5,
            first_retry: Duration::from_secs(1),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Kept messages and the users being delivered to right now.
pub(crate) struct Mailbox {
    db: AsyncDatabase,
    limits: MailboxLimits,
    delivering: Mutex<HashSet<UserId>>,
}

/// `created` values older than this many seconds ago, as SQLite writes `CURRENT_TIMESTAMP`.
fn cutoff(ttl: Duration) -> String {
    format!("-{} seconds", ttl.as_secs())
}

impl Mailbox {
    /// Opens the mailbox in `db`, creating its table (or adding what an older one lacks) and
    /// removing what is past the TTL.
    pub async fn open(db: AsyncDatabase, limits: MailboxLimits) -> Result<Arc<Mailbox>, DbError> {
        db.transaction(|tx| {
            tx.with_connection(|c| {
                c.execute_batch(SCHEMA)?;
                let mut has = HashSet::new();
                let mut columns =
                    c.prepare("SELECT name FROM pragma_table_info('fluxon_mailbox')")?;
                for name in columns.query_map([], |row| row.get::<_, String>(0))? {
                    has.insert(name?);
                }
                for (column, kind) in ADDED_COLUMNS {
                    if !has.contains(column) {
                        c.execute_batch(&format!(
                            "ALTER TABLE fluxon_mailbox ADD COLUMN {column} {kind}"
                        ))?;
                    }
                }
                Ok(())
            })
        })
        .await?;
        let mailbox = Arc::new(Mailbox {
            db,
            limits,
            delivering: Mutex::new(HashSet::new()),
        });
        mailbox.expire().await?;
        Ok(mailbox)
    }

    /// Removes every message past the TTL; how many.
    pub async fn expire(&self) -> Result<usize, DbError> {
        let cutoff = cutoff(self.limits.ttl);
        self.db
            .transaction(move |tx| {
                tx.with_connection(|c| {
                    Ok(c.execute(
                        "DELETE FROM fluxon_mailbox WHERE created < datetime('now', ?1)",
                        [cutoff],
                    )?)
                })
            })
            .await
    }

    /// Keeps a request for `user`, unless the user already has their maximum waiting.
    pub async fn keep(
        &self,
        user: UserId,
        name: &str,
        payload: Vec<u8>,
    ) -> Result<(), ReverseError> {
        let name = name.to_owned();
        let (limit, cutoff) = (self.limits.per_user, cutoff(self.limits.ttl));
        let kept = self
            .db
            .transaction(move |tx| {
                tx.with_connection(|c| {
                    // What is past the TTL does not count (and goes now).
                    c.execute(
                        "DELETE FROM fluxon_mailbox WHERE user = ?1 AND created < datetime('now', ?2)",
                        rusqlite::params![user, cutoff],
                    )?;
                    let waiting: i64 = c.query_row(
                        "SELECT count(*) FROM fluxon_mailbox WHERE user = ?1 AND dead = 0",
                        [user],
                        |r| r.get(0),
                    )?;
                    if u64::try_from(waiting).unwrap_or(u64::MAX) >= limit {
                        return Ok(false);
                    }
                    c.execute(
                        "INSERT INTO fluxon_mailbox (user, name, payload) VALUES (?1, ?2, ?3)",
                        rusqlite::params![user, name, payload],
                    )?;
                    Ok(true)
                })
            })
            .await
            .map_err(|e| ReverseError::Mailbox(e.to_string()))?;
        if kept {
            Ok(())
        } else {
            Err(ReverseError::MailboxFull { user, limit })
        }
    }

    /// How many requests wait for `user` (dead letters not counted).
    pub async fn count(&self, user: UserId) -> Result<i64, DbError> {
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM fluxon_mailbox WHERE user = ?1 AND dead = 0",
                    [user],
                    |r| r.get(0),
                )?)
            })
            .await
    }

    /// How many of `user`'s requests were set aside as dead letters.
    pub async fn dead_letters(&self, user: UserId) -> Result<i64, DbError> {
        self.db
            .read(move |c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM fluxon_mailbox WHERE user = ?1 AND dead = 1",
                    [user],
                    |r| r.get(0),
                )?)
            })
            .await
    }

    /// The oldest request waiting for `user`: id, name, payload, deliveries tried so far.
    async fn next(&self, user: UserId) -> Result<Option<(i64, String, Vec<u8>, u32)>, DbError> {
        let cutoff = cutoff(self.limits.ttl);
        self.db
            .read(move |c| {
                let mut statement = c.prepare_cached(
                    "SELECT id, name, payload, tries FROM fluxon_mailbox
                     WHERE user = ?1 AND dead = 0 AND created >= datetime('now', ?2)
                     ORDER BY id LIMIT 1",
                )?;
                let mut rows = statement.query(rusqlite::params![user, cutoff])?;
                match rows.next()? {
                    Some(row) => Ok(Some((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get::<_, u32>(3)?,
                    ))),
                    None => Ok(None),
                }
            })
            .await
    }

    async fn write(
        &self,
        sql: &'static str,
        id: i64,
        error: Option<String>,
    ) -> Result<(), DbError> {
        self.db
            .transaction(move |tx| {
                tx.with_connection(|c| {
                    match error {
                        Some(error) => c.execute(sql, rusqlite::params![id, error])?,
                        None => c.execute(sql, [id])?,
                    };
                    Ok(())
                })
            })
            .await
    }

    /// Delivers what is kept for `user` over `links`, oldest first, one at a time, removing each
    /// once acknowledged. A message the client does not acknowledge is tried again after a wait
    /// that doubles each time, and set aside as a dead letter after the last try; delivery stops
    /// (the rest stay for next time) when the user goes offline.
    pub async fn deliver(self: Arc<Self>, user: UserId, links: impl Fn() -> Vec<Arc<Link>>) {
        if !lock(&self.delivering).insert(user) {
            return; // Another delivery to this user is under way; it keeps the order.
        }
        // Bounded: each message ends removed, dead, or with the user gone; a backstop anyway.
        for _ in 0..self
            .limits
            .per_user
            .saturating_mul(u64::from(self.limits.max_tries) + 1)
        {
            let (id, name, payload, tries) = match self.next(user).await {
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
                        .write("DELETE FROM fluxon_mailbox WHERE id = ?1", id, None)
                        .await;
                    if let Err(err) = removed {
                        tracing::warn!(%err, user, "mailbox: delivered but not removed (it will come again)");
                        break;
                    }
                }
                // Nobody to give it to now: it waits, and this does not count as a try.
                Err(ReverseError::Offline | ReverseError::Disconnected | ReverseError::Full) => {
                    break
                }
                Err(err) => {
                    let tries = tries + 1;
                    let why = err.to_string();
                    if tries >= self.limits.max_tries {
                        tracing::warn!(user, name, tries, error = %why, "mailbox: a message was never acknowledged; set aside as a dead letter");
                        let dead = self
                            .write(
                                "UPDATE fluxon_mailbox SET dead = 1, tries = tries + 1, last_error = ?2 WHERE id = ?1",
                                id,
                                Some(why),
                            )
                            .await;
                        if dead.is_err() {
                            break;
                        }
                        continue;
                    }
                    tracing::info!(user, name, tries, error = %why, "mailbox: not acknowledged; retrying later");
                    let counted = self
                        .write(
                            "UPDATE fluxon_mailbox SET tries = tries + 1, last_error = ?2 WHERE id = ?1",
                            id,
                            Some(why),
                        )
                        .await;
                    if counted.is_err() {
                        break;
                    }
                    let wait = self
                        .limits
                        .first_retry
                        .saturating_mul(1u32 << (tries - 1).min(16));
                    tokio::time::sleep(wait).await;
                }
            }
        }
        lock(&self.delivering).remove(&user);
    }
}
