//! Raw rusqlite: hand-written SQL, `prepare_cached`, rows mapped by hand.

use std::path::Path;

use rusqlite::{params, Connection};

use super::{title, CourseRow, Op, COURSES, PRAGMAS, SCHEMA, TEACHERS};

/// A seeded database.
pub struct Raw {
    conn: Connection,
    next: i64,
}

impl Raw {
    /// Creates and seeds the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Raw> {
        let conn = Connection::open(path)?;
        conn.execute_batch(PRAGMAS)?;
        conn.execute_batch(SCHEMA)?;
        let tx = conn.unchecked_transaction()?;
        for t in 0..TEACHERS {
            tx.execute(
                "INSERT INTO teacher (name) VALUES (?1)",
                [format!("Teacher {t}")],
            )?;
        }
        for i in 0..COURSES {
            tx.execute(
                "INSERT INTO course (title, teacher, seats) VALUES (?1, ?2, ?3)",
                params![title(i), i % TEACHERS + 1, 30],
            )?;
        }
        tx.commit()?;
        Ok(Raw {
            conn,
            next: COURSES,
        })
    }

    fn insert(conn: &Connection, i: i64) -> anyhow::Result<i64> {
        conn.prepare_cached("INSERT INTO course (title, teacher, seats) VALUES (?1, ?2, ?3)")?
            .execute(params![title(i), i % TEACHERS + 1, 30])?;
        Ok(conn.last_insert_rowid())
    }

    fn map(row: &rusqlite::Row<'_>) -> rusqlite::Result<CourseRow> {
        Ok(CourseRow {
            id: row.get(0)?,
            title: row.get(1)?,
            teacher: row.get(2)?,
            seats: row.get(3)?,
        })
    }

    /// Runs one operation; returns a number that depends on its result (so nothing is optimized
    /// away, and the contenders can be checked against each other).
    pub fn run(&mut self, op: Op) -> anyhow::Result<i64> {
        let first = self.next + 1;
        self.next += op.rows_inserted();
        let conn = &self.conn;
        match op {
            Op::InsertOne => Self::insert(conn, first),
            Op::Insert100 => {
                let tx = conn.unchecked_transaction()?;
                let mut last = 0;
                for i in first..first + 100 {
                    last = Self::insert(&tx, i)?;
                }
                tx.commit()?;
                Ok(last)
            }
            Op::SelectById => {
                let row = conn
                    .prepare_cached("SELECT id, title, teacher, seats FROM course WHERE id = ?1")?
                    .query_row([500], Self::map)?;
                Ok(row.id)
            }
            Op::Load1000 => {
                let mut statement =
                    conn.prepare_cached("SELECT id, title, teacher, seats FROM course LIMIT 1000")?;
                let rows: Vec<CourseRow> = statement
                    .query_map([], Self::map)?
                    .collect::<Result<_, _>>()?;
                Ok(rows.len() as i64)
            }
            Op::Join1000 => {
                let mut statement = conn.prepare_cached(
                    "SELECT c.id, c.title, c.teacher, c.seats, t.id, t.name FROM course AS c \
                     JOIN teacher AS t ON t.id = c.teacher LIMIT 1000",
                )?;
                let rows: Vec<(CourseRow, i64, String)> = statement
                    .query_map([], |row| Ok((Self::map(row)?, row.get(4)?, row.get(5)?)))?
                    .collect::<Result<_, _>>()?;
                Ok(rows.len() as i64)
            }
        }
    }
}
