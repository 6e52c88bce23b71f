//! fluxon on PostgreSQL: the SQLite benchmark's models and operations, on a `postgres://` URL.

use fluxon::db::{AsyncDatabase, Executor};

use crate::db::fluxon_side::{seed, Async, Course, Sync, Teacher};

/// Creates and seeds the database at `url` (the same models as on SQLite); the sync and async
/// contenders share its pool.
pub fn open(url: &str) -> anyhow::Result<AsyncDatabase> {
    let shared = AsyncDatabase::open_with_readers(url, 4)?;
    let db = shared.blocking();
    db.create_tables(&[
        <Teacher as fluxon::db::Model>::SCHEMA,
        <Course as fluxon::db::Model>::SCHEMA,
    ])?;
    seed(&db)?;
    Ok(shared)
}

/// The sync contender.
pub fn sync(db: &AsyncDatabase) -> Sync {
    Sync::new(db)
}

/// The async contender.
pub fn asynchronous(db: AsyncDatabase) -> Async {
    Async::new(db)
}
