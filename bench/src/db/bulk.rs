//! Bulk insert: 10,000 courses in one transaction, fluxon's `insert_many` (sync and async)
//! against rusqlite's prepared-statement loop, each on a fresh file of its own with the same
//! settings. Both start from rows already in memory; every rep empties the table after itself.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fluxon::db::{AsyncDatabase, Executor, Model};
use rusqlite::{params, Connection};

use super::fluxon_side::{Course, Teacher};
use super::{title, PRAGMAS, SCHEMA, TEACHERS};
use crate::stats::{median, paired_ratio};

/// Rows per bulk insert.
pub const ROWS: i64 = 10_000;

/// The medians of one run, milliseconds, and fluxon over rusqlite (medians of each rep's ratio).
#[derive(Debug)]
pub struct Bulk {
    /// rusqlite's loop.
    pub raw_ms: f64,
    /// `Database::insert_many`.
    pub sync_ms: f64,
    /// `AsyncDatabase::insert_many`, awaited by a task on a worker thread.
    pub async_ms: f64,
    /// sync over rusqlite.
    pub sync_ratio: f64,
    /// async over rusqlite.
    pub async_ratio: f64,
}

fn raw_insert(conn: &Connection, rows: &[(String, i64, u32)]) -> anyhow::Result<usize> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut statement =
            tx.prepare_cached("INSERT INTO course (title, teacher, seats) VALUES (?1, ?2, ?3)")?;
        for (title, teacher, seats) in rows {
            statement.execute(params![title, teacher, seats])?;
        }
    }
    tx.commit()?;
    Ok(rows.len())
}

/// Runs `reps` reps (plus a warm-up), the three contenders in an order that rotates each rep.
pub fn measure(runtime: &tokio::runtime::Runtime, dir: &Path, reps: usize) -> anyhow::Result<Bulk> {
    let raw = Connection::open(dir.join("bulk-raw.sqlite3"))?;
    raw.execute_batch(PRAGMAS)?;
    raw.execute_batch(SCHEMA)?;
    // Each contender on a file of its own: the WAL checkpoints one's writes cause fall on itself.
    let open = |name: &str| runtime.block_on(async { AsyncDatabase::open(dir.join(name)) });
    let db = open("bulk-fluxon-async.sqlite3")?;
    let sync = open("bulk-fluxon-sync.sqlite3")?.blocking();
    for t in 0..TEACHERS {
        let name = format!("Teacher {t}");
        raw.execute("INSERT INTO teacher (name) VALUES (?1)", [&name])?;
        for fluxon in [&sync, &db.blocking()] {
            if t == 0 {
                fluxon.create_tables(&[Teacher::SCHEMA, Course::SCHEMA])?;
            }
            fluxon.insert(&Teacher { name: name.clone() })?;
        }
    }
    let raw_rows: Vec<(String, i64, u32)> = (0..ROWS)
        .map(|i| (title(i), i % TEACHERS + 1, 30))
        .collect();
    let courses: Arc<Vec<Course>> = (0..ROWS)
        .map(|i| Course {
            title: title(i),
            teacher: (i % TEACHERS + 1).into(),
            seats: 30,
        })
        .collect::<Vec<_>>()
        .into();
    let mut samples: [Vec<f64>; 3] = Default::default();
    for rep in 0..=reps {
        let mut took = [Duration::ZERO; 3];
        for turn in 0..3 {
            let who = (turn + rep) % 3;
            let start = Instant::now();
            let inserted = match who {
                0 => raw_insert(&raw, &raw_rows)?,
                1 => sync.insert_many(&*courses)?.len(),
                _ => {
                    // As a task on a worker thread, where a server's views run.
                    let (db, courses) = (db.clone(), Arc::clone(&courses));
                    runtime
                        .block_on(runtime.spawn(async move { db.insert_many(&*courses).await }))??
                        .len()
                }
            };
            took[who] = start.elapsed();
            anyhow::ensure!(
                inserted == ROWS as usize,
                "contender {who} inserted {inserted}"
            );
            // Back to an empty table for the next rep (not timed).
            match who {
                0 => raw.execute("DELETE FROM course", []).map(drop)?,
                1 => sync.delete(Course::seats.ge(0)).map(drop)?,
                _ => db.blocking().delete(Course::seats.ge(0)).map(drop)?,
            }
        }
        if rep > 0 {
            for (i, d) in took.into_iter().enumerate() {
                samples[i].push(d.as_secs_f64() * 1e3);
            }
        }
    }
    Ok(Bulk {
        raw_ms: median(&samples[0]),
        sync_ms: median(&samples[1]),
        async_ms: median(&samples[2]),
        sync_ratio: paired_ratio(&samples[1], &samples[0]),
        async_ratio: paired_ratio(&samples[2], &samples[0]),
    })
}

/// Prints the section.
pub fn print(bulk: &Bulk) {
    println!();
    println!(
        "bulk insert, {ROWS} rows in 1 transaction (median ms): rusqlite loop {:.2}, fx sync insert_many {:.2} ({:.2}x), fx async insert_many {:.2} ({:.2}x)",
        bulk.raw_ms, bulk.sync_ms, bulk.sync_ratio, bulk.async_ms, bulk.async_ratio
    );
}
