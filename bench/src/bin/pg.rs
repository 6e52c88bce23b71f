//! PostgreSQL benchmark: fluxon's `Database` and `AsyncDatabase` on a `postgres://` URL against
//! raw tokio-postgres (statements prepared once) and sqlx, in one run, each in its own database
//! on one throwaway server this program starts (initdb in a temp dir, a free loopback port;
//! PostgreSQL's server must be installed: ./scripts/test installs it).
//!
//! `cargo run --release -p fluxon-bench --bin pg [-- --reps N]` (15 reps unless told)
//!
//! The SQLite benchmark's five operations. Each timing sample is a batch of the operation,
//! divided by the batch size; contenders take turns batch by batch, in an order that rotates
//! every rep. The async contenders run as tasks on the runtime's workers (where views run);
//! fluxon's `Database` runs on the main thread. The table shows the median per operation and
//! the medians of each rep's ratios.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use fluxon_bench::db::{time, Op};
use fluxon_bench::pg::{
    concurrency, fluxon_side, raw_side::Raw, seed_sql, sqlx_side::Sqlx, SCHEMA,
};
use fluxon_bench::postgres::{connect, fresh_database};
use fluxon_bench::stats::{median, paired_ratio};

/// Operations per timing sample: a few milliseconds each.
fn batch(op: Op) -> usize {
    match op {
        Op::InsertOne => 100,
        Op::Insert100 => 4,
        Op::SelectById => 400,
        Op::Load1000 | Op::Join1000 => 16,
    }
}

/// The answer every contender must give (inserts answer ids, which differ: not checked).
fn expected(op: Op) -> i64 {
    match op {
        Op::SelectById => 500,
        Op::Load1000 | Op::Join1000 => 1000,
        _ => -1,
    }
}

/// A contender that runs as a task: it is moved into the task and back.
trait AsyncContender: Send + 'static {
    fn run_op(&mut self, op: Op) -> impl Future<Output = anyhow::Result<i64>> + Send;
}

impl AsyncContender for Raw {
    fn run_op(&mut self, op: Op) -> impl Future<Output = anyhow::Result<i64>> + Send {
        self.run(op)
    }
}

impl AsyncContender for Sqlx {
    fn run_op(&mut self, op: Op) -> impl Future<Output = anyhow::Result<i64>> + Send {
        self.run(op)
    }
}

impl AsyncContender for fluxon_bench::db::fluxon_side::Async {
    fn run_op(&mut self, op: Op) -> impl Future<Output = anyhow::Result<i64>> + Send {
        self.run(op)
    }
}

/// Times `n` operations of `contender` as a task on a worker; gives the contender back.
fn time_task<C: AsyncContender>(
    runtime: &tokio::runtime::Runtime,
    contender: &mut Option<C>,
    n: usize,
    op: Op,
) -> anyhow::Result<Duration> {
    let mut moved = contender.take().context("contender")?;
    let task = runtime.spawn(async move {
        let start = Instant::now();
        for _ in 0..n {
            let got = moved.run_op(op).await?;
            anyhow::ensure!(expected(op) < 0 || got == expected(op), "answered {got}");
        }
        Ok::<_, anyhow::Error>((start.elapsed() / n as u32, moved))
    });
    let (took, back) = runtime.block_on(task)??;
    *contender = Some(back);
    Ok(took)
}

/// A fresh database made and seeded by hand (for the hand-written contenders).
fn seeded_by_hand() -> anyhow::Result<String> {
    let url = fresh_database();
    let mut client = connect(&url);
    client.batch_execute(SCHEMA)?;
    client.batch_execute(&seed_sql())?;
    Ok(url)
}

/// One row of the table: the operation, each contender's median, the four ratios.
type Line = (Op, [f64; 4], [f64; 4]);

/// The contenders, each with its own database on the one server.
struct Contenders {
    runtime: tokio::runtime::Runtime,
    raw: Option<Raw>,
    sqlx: Option<Sqlx>,
    sync: fluxon_bench::db::fluxon_side::Sync,
    asynchronous: Option<fluxon_bench::db::fluxon_side::Async>,
}

/// Every operation, `reps` reps (plus a warm-up), contenders taking turns.
fn measure(c: &mut Contenders, reps: usize) -> anyhow::Result<Vec<Line>> {
    let mut table = Vec::new();
    for op in Op::ALL {
        let n = batch(op);
        let mut samples: [Vec<f64>; 4] = Default::default();
        for rep in 0..=reps {
            let mut took = [Duration::ZERO; 4];
            for turn in 0..4 {
                let who = (turn + rep) % 4;
                took[who] = match who {
                    0 => time_task(&c.runtime, &mut c.raw, n, op)?,
                    1 => time_task(&c.runtime, &mut c.sqlx, n, op)?,
                    2 => time(n, expected(op), || c.sync.run(op))?,
                    _ => time_task(&c.runtime, &mut c.asynchronous, n, op)?,
                };
            }
            if rep == 0 {
                continue; // warm-up
            }
            for (i, d) in took.into_iter().enumerate() {
                samples[i].push(d.as_secs_f64() * 1e6);
            }
        }
        let ratios = [
            paired_ratio(&samples[3], &samples[0]),
            paired_ratio(&samples[2], &samples[0]),
            paired_ratio(&samples[3], &samples[1]),
            paired_ratio(&samples[2], &samples[1]),
        ];
        table.push((op, samples.map(|s| median(&s)), ratios));
    }
    Ok(table)
}

fn print(title: &str, table: &[Line]) {
    println!();
    println!("{title}");
    println!(
        "{:<32} {:>10} {:>9} {:>9} {:>9} {:>10} {:>9} {:>10} {:>10}",
        "operation (median, us)",
        "tokio-pg",
        "sqlx",
        "fx sync",
        "fx async",
        "async/raw",
        "sync/raw",
        "async/sqlx",
        "sync/sqlx"
    );
    for (op, [r, q, s, a], [ar, sr, aq, sq]) in table {
        println!(
            "{:<32} {r:>10.2} {q:>9.2} {s:>9.2} {a:>9.2} {ar:>9.2}x {sr:>8.2}x {aq:>9.2}x {sq:>9.2}x",
            op.label()
        );
    }
    println!("targets (issue #14):");
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    for (op, _, [ar, sr, aq, sq]) in table {
        println!(
            "  {}: within 1.1x of tokio-postgres: async {ar:.2}x {}, sync {sr:.2}x {}; ahead of sqlx: async {aq:.2}x {}, sync {sq:.2}x {}",
            op.label(),
            verdict(*ar <= 1.1),
            verdict(*sr <= 1.1),
            verdict(*aq <= 1.0),
            verdict(*sq <= 1.0),
        );
    }
}

fn main() -> anyhow::Result<()> {
    let mut reps = 15usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--reps" => reps = args.next().context("--reps needs a value")?.parse()?,
            other => anyhow::bail!("unknown option {other}; use --reps N"),
        }
    }
    // The server writes no statement to its log: logging costs the server more for longer SQL.
    fluxon_bench::postgres::log_no_statements();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (raw_url, sqlx_url, fluxon_url) = (seeded_by_hand()?, seeded_by_hand()?, fresh_database());
    let raw = Some(runtime.block_on(Raw::connect(&raw_url))?);
    let sqlx = Some(runtime.block_on(Sqlx::connect(&sqlx_url))?);
    let shared = fluxon_side::open(&fluxon_url)?;
    let many = runtime.block_on(concurrency::Contenders::connect(
        &raw_url,
        &sqlx_url,
        &fluxon_url,
    ))?;
    let sync = fluxon_side::sync(&shared);
    let asynchronous = Some(fluxon_side::asynchronous(shared));
    let mut contenders = Contenders {
        runtime,
        raw,
        sqlx,
        sync,
        asynchronous,
    };

    println!("fluxon PostgreSQL benchmark: {reps} reps, medians of per-operation times, one server, a database each");
    println!("  tokio-pg, sqlx, fx async: one task on a worker awaiting each operation in turn;");
    println!("  fx sync: `Database` on the main thread. Ratios: medians of each rep's ratio.");
    let idle = measure(&mut contenders, reps)?;
    // On a virtual machine a CPU that went idle takes tens of microseconds to wake (measured
    // here: a loopback round trip of ~85 us, ~17 us with a CPU kept busy). Whether a contender's
    // waits find the CPUs idle depends on its threads' timing more than on its own code, so the
    // single-row figures flip between runs. The second table keeps one CPU busy with a spinning
    // thread, the same for every contender: what is left is the contenders' own cost.
    let stop = Arc::new(AtomicBool::new(false));
    let spinner = std::thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            while !stop.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        }
    });
    let awake = measure(&mut contenders, reps);
    stop.store(true, Ordering::Relaxed);
    let _ = spinner.join();
    let awake = awake?;
    print("CPUs left to idle between round trips:", &idle);
    print(
        "one CPU kept busy by a spinning thread (no idle-CPU wake-ups in the round trips):",
        &awake,
    );
    let measured = contenders
        .runtime
        .block_on(concurrency::measure(&many, reps.min(7)))?;
    concurrency::print(&measured);
    Ok(())
}
