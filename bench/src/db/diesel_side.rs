//! Diesel (sync, SQLite backend): `table!` schema, Queryable structs, its own statement cache.

use std::path::Path;

use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

use super::{title, Op, COURSES, PRAGMAS, SCHEMA, TEACHERS};

diesel::table! {
    teacher (id) {
        id -> BigInt,
        name -> Text,
    }
}

diesel::table! {
    course (id) {
        id -> BigInt,
        title -> Text,
        teacher -> BigInt,
        seats -> Integer,
    }
}

diesel::joinable!(course -> teacher (teacher));
diesel::allow_tables_to_appear_in_same_query!(course, teacher);

#[derive(Queryable, Debug)]
struct Course {
    id: i64,
    #[allow(dead_code)]
    title: String,
    #[allow(dead_code)]
    teacher: i64,
    #[allow(dead_code)]
    seats: i32,
}

#[derive(Queryable, Debug)]
struct Teacher {
    #[allow(dead_code)]
    id: i64,
    #[allow(dead_code)]
    name: String,
}

#[derive(Insertable)]
#[diesel(table_name = course)]
struct NewCourse {
    title: String,
    teacher: i64,
    seats: i32,
}

/// A seeded database.
pub struct Diesel {
    conn: SqliteConnection,
    next: i64,
}

impl Diesel {
    /// Creates and seeds the database at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Diesel> {
        let url = path
            .to_str()
            .ok_or_else(|| anyhow::anyhow!("path is not UTF-8"))?;
        let mut conn = SqliteConnection::establish(url)?;
        diesel::connection::SimpleConnection::batch_execute(&mut conn, PRAGMAS)?;
        diesel::connection::SimpleConnection::batch_execute(&mut conn, SCHEMA)?;
        conn.transaction::<_, diesel::result::Error, _>(|conn| {
            for t in 0..TEACHERS {
                diesel::insert_into(teacher::table)
                    .values(teacher::name.eq(format!("Teacher {t}")))
                    .execute(conn)?;
            }
            for i in 0..COURSES {
                diesel::insert_into(course::table)
                    .values(Self::row(i))
                    .execute(conn)?;
            }
            Ok(())
        })?;
        Ok(Diesel {
            conn,
            next: COURSES,
        })
    }

    fn row(i: i64) -> NewCourse {
        NewCourse {
            title: title(i),
            teacher: i % TEACHERS + 1,
            seats: 30,
        }
    }

    /// Runs one operation; returns a number that depends on its result.
    pub fn run(&mut self, op: Op) -> anyhow::Result<i64> {
        let conn = &mut self.conn;
        match op {
            Op::InsertOne => {
                self.next += 1;
                Ok(diesel::insert_into(course::table)
                    .values(Self::row(self.next))
                    .execute(conn)? as i64)
            }
            Op::Insert100 => {
                let first = self.next + 1;
                self.next += 100;
                let inserted = conn.transaction::<_, diesel::result::Error, _>(|conn| {
                    let mut n = 0;
                    for i in first..first + 100 {
                        n += diesel::insert_into(course::table)
                            .values(Self::row(i))
                            .execute(conn)?;
                    }
                    Ok(n)
                })?;
                Ok(inserted as i64)
            }
            Op::SelectById => {
                let row: Course = course::table.find(500i64).first(conn)?;
                Ok(row.id)
            }
            Op::Load1000 => {
                let rows: Vec<Course> = course::table.limit(1000).load(conn)?;
                Ok(rows.len() as i64)
            }
            Op::Join1000 => {
                let rows: Vec<(Course, Teacher)> = course::table
                    .inner_join(teacher::table)
                    .limit(1000)
                    .load(conn)?;
                Ok(rows.len() as i64)
            }
        }
    }
}
