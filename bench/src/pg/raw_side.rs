//! Raw tokio-postgres: hand-written SQL, each statement prepared once, rows mapped by hand; the
//! connection's task spawned on the runtime, as its docs do it.

use tokio_postgres::{Client, NoTls, Statement};

use super::sql;
use crate::db::{title, CourseRow, Op, COURSES, TEACHERS};

/// A seeded database and its prepared statements.
pub struct Raw {
    client: Client,
    insert: Statement,
    by_id: Statement,
    load: Statement,
    join: Statement,
    next: i64,
}

impl Raw {
    /// Connects to `url` (a seeded database) and prepares the statements.
    pub async fn connect(url: &str) -> anyhow::Result<Raw> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                eprintln!("tokio-postgres connection: {err}");
            }
        });
        Ok(Raw {
            insert: client.prepare(sql::INSERT).await?,
            by_id: client.prepare(sql::BY_ID).await?,
            load: client.prepare(sql::LOAD).await?,
            join: client.prepare(sql::JOIN).await?,
            client,
            next: COURSES * 30,
        })
    }

    fn map(row: &tokio_postgres::Row) -> CourseRow {
        CourseRow {
            id: row.get(0),
            title: row.get(1),
            teacher: row.get(2),
            seats: row.get::<_, i64>(3) as u32,
        }
    }

    /// Inserts course `i`; its id.
    async fn insert(&self, i: i64) -> anyhow::Result<i64> {
        let (title, teacher, seats) = (title(i), i % TEACHERS + 1, 30i64);
        let row = self
            .client
            .query_one(&self.insert, &[&title, &teacher, &seats])
            .await?;
        Ok(row.get(0))
    }

    /// Runs one operation; returns a number that depends on its result.
    pub async fn run(&mut self, op: Op) -> anyhow::Result<i64> {
        let first = self.next + 1;
        self.next += op.rows_inserted();
        Ok(match op {
            Op::InsertOne => self.insert(first).await?,
            Op::Insert100 => {
                self.client.batch_execute("BEGIN").await?;
                let mut last = 0;
                for i in first..first + 100 {
                    last = self.insert(i).await?;
                }
                self.client.batch_execute("COMMIT").await?;
                last
            }
            Op::SelectById => {
                let row = self.client.query_one(&self.by_id, &[&500i64]).await?;
                let course = Self::map(&row);
                course.seats as i64 + course.id - 30
            }
            Op::Load1000 => {
                let rows = self.client.query(&self.load, &[]).await?;
                rows.iter().map(Self::map).collect::<Vec<_>>().len() as i64
            }
            Op::Join1000 => {
                let rows = self.client.query(&self.join, &[]).await?;
                rows.iter()
                    .map(|r| (Self::map(r), r.get::<_, i64>(4), r.get::<_, String>(5)))
                    .collect::<Vec<_>>()
                    .len() as i64
            }
        })
    }
}
