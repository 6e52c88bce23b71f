//! sqlx: the same SQL through `sqlx::query` on one connection (sqlx caches each statement it
//! prepares on the connection), rows mapped by hand.

use sqlx::{Connection, PgConnection, Row};

use super::sql;
use crate::db::{title, CourseRow, Op, COURSES, TEACHERS};

/// A connection to a seeded database.
pub struct Sqlx {
    conn: PgConnection,
    next: i64,
}

impl Sqlx {
    /// Connects to `url` (a seeded database).
    pub async fn connect(url: &str) -> anyhow::Result<Sqlx> {
        Ok(Sqlx {
            conn: PgConnection::connect(url).await?,
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
        Ok(match op {
            Op::InsertOne => sqlx::query(sql::INSERT)
                .bind(title(first))
                .bind(first % TEACHERS + 1)
                .bind(30i64)
                .fetch_one(&mut self.conn)
                .await?
                .get(0),
            Op::Insert100 => {
                let mut tx = self.conn.begin().await?;
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
                    .fetch_one(&mut self.conn)
                    .await?;
                let course = Self::map(&row);
                course.seats as i64 + course.id - 30
            }
            Op::Load1000 => {
                let rows = sqlx::query(sql::LOAD).fetch_all(&mut self.conn).await?;
                rows.iter().map(Self::map).collect::<Vec<_>>().len() as i64
            }
            Op::Join1000 => {
                let rows = sqlx::query(sql::JOIN).fetch_all(&mut self.conn).await?;
                rows.iter()
                    .map(|r| (Self::map(r), r.get::<i64, _>(4), r.get::<String, _>(5)))
                    .collect::<Vec<_>>()
                    .len() as i64
            }
        })
    }
}
