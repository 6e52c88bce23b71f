//! Reads issued concurrently: 16 tokio tasks on one `AsyncDatabase` against 16 OS threads on the
//! same database used as a `Database`, each running the same read over and over.

use std::time::Instant;

use fluxon::db::AsyncDatabase;

use super::fluxon_side::{Async, Sync};
use super::Op;
use crate::stats::{median, paired_ratio};

/// How many callers issue reads at once.
pub const CALLERS: usize = 16;

/// One operation's throughput both ways (medians over the reps, operations per second).
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The read.
    pub op: Op,
    /// 16 blocking threads on `Database`.
    pub threads: f64,
    /// 16 tasks on `AsyncDatabase`.
    pub tasks: f64,
    /// Tasks over threads: the median of each rep's ratio (the two measured side by side).
    pub ratio: f64,
}

/// Reads each caller makes per sample.
fn per_caller(op: Op) -> usize {
    match op {
        Op::SelectById => 2000,
        _ => 20,
    }
}

/// What the read must answer.
fn expected(op: Op) -> i64 {
    match op {
        Op::SelectById => 500,
        _ => 1000,
    }
}

/// Measures select by id and load 1,000 rows both ways, `reps` samples each after a warm-up.
pub fn measure(
    runtime: &tokio::runtime::Runtime,
    db: &AsyncDatabase,
    reps: usize,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for op in [Op::SelectById, Op::Load1000] {
        let n = per_caller(op);
        let total = (n * CALLERS) as f64;
        let (mut threads, mut tasks) = (Vec::new(), Vec::new());
        for rep in 0..=reps {
            // Threads first on even reps, tasks first on odd ones.
            let (on_threads, on_tasks) = if rep % 2 == 0 {
                let on_threads = on_threads(db, op, n, total)?;
                (on_threads, on_tasks(runtime, db, op, n, total)?)
            } else {
                let on_tasks = on_tasks(runtime, db, op, n, total)?;
                (on_threads(db, op, n, total)?, on_tasks)
            };
            if rep > 0 {
                threads.push(on_threads);
                tasks.push(on_tasks);
            }
        }
        rows.push(Row {
            op,
            threads: median(&threads),
            tasks: median(&tasks),
            ratio: paired_ratio(&tasks, &threads),
        });
    }
    Ok(rows)
}

/// One sample of 16 threads on `Database`, `n` reads each: reads a second.
fn on_threads(db: &AsyncDatabase, op: Op, n: usize, total: f64) -> anyhow::Result<f64> {
    let start = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let mut sync = Sync::new(db);
                scope.spawn(move || -> anyhow::Result<()> {
                    for _ in 0..n {
                        let got = sync.run(op)?;
                        anyhow::ensure!(got == expected(op), "thread read {got}");
                    }
                    Ok(())
                })
            })
            .collect();
        for caller in callers {
            caller
                .join()
                .map_err(|_| anyhow::anyhow!("a reading thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(total / start.elapsed().as_secs_f64())
}

/// One sample of 16 tasks on `AsyncDatabase`, `n` reads each: reads a second.
fn on_tasks(
    runtime: &tokio::runtime::Runtime,
    db: &AsyncDatabase,
    op: Op,
    n: usize,
    total: f64,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    runtime.block_on(async {
        let callers: Vec<_> = (0..CALLERS)
            .map(|_| {
                let mut task = Async::new(db.clone());
                tokio::spawn(async move {
                    for _ in 0..n {
                        let got = task.run(op).await?;
                        anyhow::ensure!(got == expected(op), "task read {got}");
                    }
                    Ok::<_, anyhow::Error>(())
                })
            })
            .collect();
        for caller in callers {
            caller.await??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(total / start.elapsed().as_secs_f64())
}

/// Prints the table.
pub fn print(rows: &[Row]) {
    println!();
    println!(
        "{:<32} {:>16} {:>16} {:>12}",
        "16 callers reading (median)", "threads (ops/s)", "tasks (ops/s)", "tasks/threads"
    );
    for row in rows {
        println!(
            "{:<32} {:>16.0} {:>16.0} {:>11.2}x",
            row.op.label(),
            row.threads,
            row.tasks,
            row.ratio
        );
    }
    println!("  threads: {CALLERS} OS threads on `Database`; tasks: {CALLERS} tokio tasks on `AsyncDatabase` (2 workers);");
    println!("  tasks/threads: the median of each rep's ratio (the two measured side by side, taking turns going first)");
}
