//! fluxon: models, `Database` (sync) and `AsyncDatabase` (async) running the same queries.

use std::path::Path;

use fluxon::db::{AsyncDatabase, Database, DbError, Executor, ForeignKey, Model, Transaction};

use super::{concurrency, title, Op, COURSES, TEACHERS};

/// The teacher model.
#[derive(Model, Debug)]
pub struct Teacher {
    /// Name.
    #[field(max_length = 50, unique)]
    pub name: String,
}

/// The course model.
#[derive(Model, Debug)]
pub struct Course {
    /// Title.
    #[field(max_length = 100)]
    pub title: String,
    /// Teacher.
    #[field(on_delete = cascade)]
    pub teacher: ForeignKey<Teacher>,
    /// Seats.
    pub seats: u32,
}

fn course(i: i64) -> Course {
    Course {
        title: title(i),
        teacher: (i % TEACHERS + 1).into(),
        seats: 30,
    }
}

/// Inserts courses `first..first + 100` in the transaction; the last id.
fn insert_hundred(tx: &Transaction<'_>, first: i64) -> Result<i64, DbError> {
    let mut last = 0;
    for i in first..first + 100 {
        last = tx.insert(&course(i))?;
    }
    Ok(last)
}

/// Creates and seeds the database at `path`; the sync and async contenders share its connections.
pub fn open(path: &Path) -> anyhow::Result<AsyncDatabase> {
    let shared = AsyncDatabase::open_with_readers(path, concurrency::CALLERS)?;
    let db = shared.blocking();
    db.create_tables(&[Teacher::SCHEMA, Course::SCHEMA])?;
    seed(&db)?;
    Ok(shared)
}

/// Seeds the teachers and courses every contender starts with.
pub fn seed(db: &Database) -> anyhow::Result<()> {
    db.transaction(|tx| {
        for t in 0..TEACHERS {
            tx.insert(&Teacher {
                name: format!("Teacher {t}"),
            })?;
        }
        for i in 0..COURSES {
            tx.insert(&course(i))?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The sync contender.
pub struct Sync {
    db: Database,
    next: i64,
}

impl Sync {
    /// On a seeded database.
    pub fn new(db: &AsyncDatabase) -> Self {
        Sync {
            db: db.blocking(),
            next: COURSES * 10,
        }
    }

    /// Runs one operation; returns a number that depends on its result.
    pub fn run(&mut self, op: Op) -> anyhow::Result<i64> {
        let db = &self.db;
        Ok(match op {
            Op::InsertOne => {
                self.next += 1;
                db.insert(&course(self.next))?
            }
            Op::Insert100 => {
                let first = self.next + 1;
                self.next += 100;
                db.transaction(move |tx| insert_hundred(tx, first))?
            }
            Op::SelectById => db
                .check(Course::id.eq(500))
                .first()?
                .map_or(0, |c| c.seats as i64 + 500 - 30),
            Op::Load1000 => db.check_all::<Course>().limit(1000).all()?.len() as i64,
            Op::Join1000 => db
                .check_all::<Course>()
                .limit(1000)
                .related(Course::teacher)?
                .len() as i64,
        })
    }
}

/// The async contender (awaits each call in turn).
pub struct Async {
    db: AsyncDatabase,
    next: i64,
}

impl Async {
    /// On a seeded database.
    pub fn new(db: AsyncDatabase) -> Self {
        Async {
            db,
            next: COURSES * 20,
        }
    }

    /// Runs one operation; returns a number that depends on its result.
    pub async fn run(&mut self, op: Op) -> anyhow::Result<i64> {
        let db = &self.db;
        Ok(match op {
            Op::InsertOne => {
                self.next += 1;
                db.insert(&course(self.next)).await?
            }
            Op::Insert100 => {
                let first = self.next + 1;
                self.next += 100;
                db.transaction(move |tx| insert_hundred(tx, first)).await?
            }
            Op::SelectById => db
                .check(Course::id.eq(500))
                .first()
                .await?
                .map_or(0, |c| c.seats as i64 + 500 - 30),
            Op::Load1000 => db.check_all::<Course>().limit(1000).all().await?.len() as i64,
            Op::Join1000 => db
                .check_all::<Course>()
                .limit(1000)
                .related(Course::teacher)
                .await?
                .len() as i64,
        })
    }
}
