//! PostgreSQL benchmark: fluxon's `Database` and `AsyncDatabase` on a `postgres://` URL against
//! raw tokio-postgres (statements prepared once) and sqlx (a bare connection, and a `PgPool` as
//! a server shares one: fluxon's `AsyncDatabase` is a pool too), in one run, each in its own database
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

/// Contenders, in the table's order.
const NAMES: [&str; 5] = ["tokio-pg", "sqlx conn", "sqlx pool", "fx sync", "fx async"];

/// Ratios shown: (fluxon contender, peer) by their indexes in [`NAMES`].
const RATIOS: [(usize, usize); 6] = [(4, 0), (3, 0), (4, 1), (3, 1), (4, 2), (3, 2)];

/// One row of the table: the operation, each contender's median, the ratios of [`RATIOS`].
type Line = (Op, [f64; 5], [f64; 6]);

/// The contenders, each with its own database on the one server.
struct Contenders {
    runtime: tokio::runtime::Runtime,
    raw: Option<Raw>,
    sqlx: Option<Sqlx>,
    sqlx_pool: Option<Sqlx>,
    sync: fluxon_bench::db::fluxon_side::Sync,
    asynchronous: Option<fluxon_bench::db::fluxon_side::Async>,
}

/// Every operation, `reps` reps (plus a warm-up), contenders taking turns.
fn measure(c: &mut Contenders, reps: usize) -> anyhow::Result<Vec<Line>> {
    let mut table = Vec::new();
    for op in Op::ALL {
        let n = batch(op);
        let mut samples: [Vec<f64>; 5] = Default::default();
        for rep in 0..=reps {
            let mut took = [Duration::ZERO; 5];
            for turn in 0..5 {
                let who = (turn + rep) % 5;
                took[who] = match who {
                    0 => time_task(&c.runtime, &mut c.raw, n, op)?,
                    1 => time_task(&c.runtime, &mut c.sqlx, n, op)?,
                    2 => time_task(&c.runtime, &mut c.sqlx_pool, n, op)?,
                    3 => time(n, expected(op), || c.sync.run(op))?,
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
        let ratios = RATIOS.map(|(fx, peer)| paired_ratio(&samples[fx], &samples[peer]));
        table.push((op, samples.map(|s| median(&s)), ratios));
    }
    Ok(table)
}

fn print(title: &str, table: &[Line]) {
    println!();
    println!("{title}");
    print!("{:<32}", "operation (median, us)");
    for name in NAMES {
        print!(" {name:>9}");
    }
    for (fx, peer) in RATIOS {
        print!(" {:>16}", format!("{}/{}", &NAMES[fx][3..], NAMES[peer]));
    }
    println!();
    for (op, medians, ratios) in table {
        print!("{:<32}", op.label());
        for m in medians {
            print!(" {m:>9.2}");
        }
        for r in ratios {
            print!(" {:>16}", format!("{r:.2}x"));
        }
        println!();
    }
    println!("targets (issue #14):");
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    for (op, _, [ar, sr, aq, sq, ap, sp]) in table {
        println!(
            "  {}: within 1.1x of tokio-postgres: async {ar:.2}x {}, sync {sr:.2}x {}; \
             ahead of sqlx conn: async {aq:.2}x {}, sync {sq:.2}x {}; \
             ahead of sqlx pool: async {ap:.2}x {}, sync {sp:.2}x {}",
            op.label(),
            verdict(*ar <= 1.1),
            verdict(*sr <= 1.1),
            verdict(*aq <= 1.0),
            verdict(*sq <= 1.0),
            verdict(*ap <= 1.0),
            verdict(*sp <= 1.0),
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
    // fluxon opens up to 8 connections (`AsyncDatabase::open`): a pool of the same size.
    let sqlx_pool = Some(runtime.block_on(Sqlx::pool(&seeded_by_hand()?, 8))?);
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
        sqlx_pool,
        sync,
        asynchronous,
    };

    println!("fluxon PostgreSQL benchmark: {reps} reps, medians of per-operation times, one server, a database each");
    println!("  tokio-pg, sqlx conn, sqlx pool, fx async: one task on a worker awaiting each operation in turn;");
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
