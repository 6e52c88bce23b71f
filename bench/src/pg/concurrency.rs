//! Many tasks at once on PostgreSQL: 64 tokio tasks on a multi-threaded runtime each selecting one
//! row by id over and over, through 8 connections per contender: raw tokio-postgres (8 clients,
//! their connections as spawned tasks, 8 tasks pipelining on each), sqlx (a `PgPool` of 8) and
//! fluxon's `AsyncDatabase` (8 connections for reads). Throughput in selects per second.

use std::time::Instant;

use fluxon::db::{AsyncDatabase, Executor};
use sqlx::Row as _;

use super::sql;
use crate::db::fluxon_side::Course;
use crate::stats::{median, paired_ratio};

/// Tasks issuing selects at once.
pub const TASKS: usize = 64;
/// Connections each contender has.
pub const CONNECTIONS: usize = 8;
/// Selects each task makes per sample.
const PER_TASK: usize = 200;

/// The contenders, each on its own seeded database.
pub struct Contenders {
    raw: Vec<std::sync::Arc<tokio_postgres::Client>>,
    raw_select: Vec<tokio_postgres::Statement>,
    sqlx: sqlx::PgPool,
    fluxon: AsyncDatabase,
}

impl Contenders {
    /// Connects to the three seeded databases.
    pub async fn connect(raw_url: &str, sqlx_url: &str, fluxon_url: &str) -> anyhow::Result<Self> {
        let mut raw = Vec::new();
        let mut raw_select = Vec::new();
        for _ in 0..CONNECTIONS {
            let (client, connection) =
                tokio_postgres::connect(raw_url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            raw_select.push(client.prepare(sql::BY_ID).await?);
            raw.push(std::sync::Arc::new(client));
        }
        let sqlx = sqlx::postgres::PgPoolOptions::new()
            .max_connections(CONNECTIONS as u32)
            .test_before_acquire(false) // fluxon pings no connection before a statement
            .connect(sqlx_url)
            .await?;
        let fluxon = AsyncDatabase::open_with_readers(fluxon_url, CONNECTIONS)?;
        Ok(Contenders {
            raw,
            raw_select,
            sqlx,
            fluxon,
        })
    }
}

/// Selects per second of each contender (raw, sqlx, fluxon): medians over `reps` samples, and
/// fluxon's ratios to raw and to sqlx (medians of each rep's ratio).
pub struct Measured {
    /// Medians, selects per second: raw, sqlx, fluxon.
    pub throughput: [f64; 3],
    /// fluxon / raw, fluxon / sqlx.
    pub ratios: [f64; 2],
}

/// Runs `reps` samples (after a warm-up), contenders taking turns in an order that rotates.
pub async fn measure(c: &Contenders, reps: usize) -> anyhow::Result<Measured> {
    let mut samples: [Vec<f64>; 3] = Default::default();
    for rep in 0..=reps {
        let mut took = [0.0; 3];
        for turn in 0..3 {
            let who = (turn + rep) % 3;
            took[who] = sample(c, who).await?;
        }
        if rep > 0 {
            for (i, t) in took.into_iter().enumerate() {
                samples[i].push(t);
            }
        }
    }
    Ok(Measured {
        throughput: [0, 1, 2].map(|i| median(&samples[i])),
        ratios: [
            paired_ratio(&samples[2], &samples[0]),
            paired_ratio(&samples[2], &samples[1]),
        ],
    })
}

/// One sample of contender `who`: selects per second with every task going.
async fn sample(c: &Contenders, who: usize) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let slot = task % CONNECTIONS;
        let raw = (c.raw[slot].clone(), c.raw_select[slot].clone());
        let sqlx = c.sqlx.clone();
        let fluxon = c.fluxon.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..PER_TASK {
                let seats = match who {
                    0 => raw.0.query_one(&raw.1, &[&500i64]).await?.get::<_, i64>(3),
                    1 => sqlx::query(sql::BY_ID)
                        .bind(500i64)
                        .fetch_one(&sqlx)
                        .await?
                        .get::<i64, _>(3),
                    _ => fluxon
                        .check(Course::id.eq(500))
                        .first()
                        .await?
                        .map_or(0, |c| i64::from(c.seats)),
                };
                anyhow::ensure!(seats == 30, "answered {seats} seats");
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok((TASKS * PER_TASK) as f64 / start.elapsed().as_secs_f64())
}

/// Prints the section.
pub fn print(m: &Measured) {
    let [raw, sqlx, fluxon] = m.throughput;
    let [to_raw, to_sqlx] = m.ratios;
    println!();
    println!(
        "{TASKS} tasks at once, select by id, {CONNECTIONS} connections each (selects/s, medians; ratios: medians of each rep's):"
    );
    println!(
        "{:<32} {:>10} {:>9} {:>9} {:>10} {:>10}",
        "", "tokio-pg", "sqlx", "fx async", "fx/raw", "fx/sqlx"
    );
    println!(
        "{:<32} {raw:>10.0} {sqlx:>9.0} {fluxon:>9.0} {to_raw:>9.2}x {to_sqlx:>9.2}x",
        "select by id"
    );
}
