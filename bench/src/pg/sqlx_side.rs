//! sqlx: the same SQL through `sqlx::query` (sqlx caches each statement it prepares on the
//! connection), rows mapped by hand; on one bare connection, or through a `PgPool` as a server
//! shares one (a connection acquired for each operation, as `fetch_one(&pool)` does).

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool, Row};

use super::sql;
use crate::db::{title, CourseRow, Op, COURSES, TEACHERS};

/// Where the operations run.
enum Source {
    Connection(PgConnection),
    Pool(PgPool),
}

/// A connection, or a pool, to a seeded database.
pub struct Sqlx {
    source: Source,
    next: i64,
}

impl Sqlx {
    /// One bare connection to `url` (a seeded database).
    pub async fn connect(url: &str) -> anyhow::Result<Sqlx> {
        Ok(Sqlx {
            source: Source::Connection(PgConnection::connect(url).await?),
            next: COURSES * 40,
        })
    }

    /// A pool of `size` connections to `url` (a seeded database). Not the default options:
    /// sqlx pings a connection (a round trip) before lending it unless told not to, and fluxon
    /// does not, so the pool is told not to.
    pub async fn pool(url: &str, size: u32) -> anyhow::Result<Sqlx> {
        let pool = PgPoolOptions::new()
            .max_connections(size)
            .test_before_acquire(false)
            .connect(url)
            .await?;
        Ok(Sqlx {
            source: Source::Pool(pool),
            next: COURSES * 40,
        })
    }

    fn map(row: &sqlx::postgres::PgRow) -> CourseRow {
        CourseRow {
            id: row.get(0),
            title: row.get(1),
            teacher: row.get(2),
            seats: row.get::<i64, _>(3) as u32,
        }
    }

    /// Runs one operation; returns a number that depends on its result.
    pub async fn run(&mut self, op: Op) -> anyhow::Result<i64> {
        let first = self.next + 1;
        self.next += op.rows_inserted();
        match &mut self.source {
            Source::Connection(conn) => Self::run_on(conn, op, first).await,
            Source::Pool(pool) => Self::run_on(&mut *pool.acquire().await?, op, first).await,
        }
    }

    async fn run_on(conn: &mut PgConnection, op: Op, first: i64) -> anyhow::Result<i64> {
        Ok(match op {
            Op::InsertOne => sqlx::query(sql::INSERT)
                .bind(title(first))
                .bind(first % TEACHERS + 1)
                .bind(30i64)
                .fetch_one(&mut *conn)
                .await?
                .get(0),
            Op::Insert100 => {
                let mut tx = conn.begin().await?;
                let mut last = 0;
                for i in first..first + 100 {
                    last = sqlx::query(sql::INSERT)
                        .bind(title(i))
                        .bind(i % TEACHERS + 1)
                        .bind(30i64)
                        .fetch_one(&mut *tx)
                        .await?
                        .get(0);
                }
                tx.commit().await?;
                last
            }
            Op::SelectById => {
                let row = sqlx::query(sql::BY_ID)
                    .bind(500i64)
                    .fetch_one(&mut *conn)
                    .await?;
                let course = Self::map(&row);
                course.seats as i64 + course.id - 30
            }
            Op::Load1000 => {
                let rows = sqlx::query(sql::LOAD).fetch_all(&mut *conn).await?;
                rows.iter().map(Self::map).collect::<Vec<_>>().len() as i64
            }
            Op::Join1000 => {
                let rows = sqlx::query(sql::JOIN).fetch_all(&mut *conn).await?;
                rows.iter()
                    .map(|r| (Self::map(r), r.get::<i64, _>(4), r.get::<String, _>(5)))
                    .collect::<Vec<_>>()
                    .len() as i64
            }
        })
    }
}
