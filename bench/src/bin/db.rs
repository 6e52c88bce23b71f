//! Database benchmark: fluxon's `Database` and `AsyncDatabase` against raw rusqlite and Diesel, in
//! one run, each on its own SQLite file with the same settings.
//!
//! `cargo run --release -p fluxon-bench --bin db [-- --reps N]`
//!
//! Five operations (insert 1 row; insert 100 rows in a transaction; select by id; load 1,000 rows;
//! a foreign-key join of 1,000 rows). Each timing sample is a batch of the operation, divided by
//! the batch size; contenders take turns batch by batch; the table shows the median per operation.

use std::time::{Duration, Instant};

use anyhow::Context;
use fluxon_bench::db::{diesel_side, fluxon_side, rusqlite_side, Op};
use fluxon_bench::stats::median;

fn batch(op: Op) -> usize {
    match op {
        Op::InsertOne => 300,
        Op::Insert100 => 10,
        Op::SelectById => 3000,
        Op::Load1000 | Op::Join1000 => 20,
    }
}

/// Runs `op` `n` times with `run`, checking every answer; time per operation.
fn time(
    n: usize,
    expect: i64,
    mut run: impl FnMut() -> anyhow::Result<i64>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        let got = run()?;
        anyhow::ensure!(
            expect < 0 || got == expect,
            "unexpected answer {got}, wanted {expect}"
        );
    }
    Ok(start.elapsed() / n as u32)
}

fn main() -> anyhow::Result<()> {
    let mut reps = 7usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--reps" => reps = args.next().context("--reps needs a value")?.parse()?,
            other => anyhow::bail!("unknown option {other}; use --reps N"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let mut raw = rusqlite_side::Raw::open(&dir.path().join("raw.sqlite3"))?;
    let mut diesel = diesel_side::Diesel::open(&dir.path().join("diesel.sqlite3"))?;
    let shared =
        runtime.block_on(async { fluxon_side::open(&dir.path().join("fluxon.sqlite3")) })?;
    let mut sync = fluxon_side::Sync::new(&shared);
    let mut asynchronous = Some(fluxon_side::Async::new(shared));

    println!("fluxon db benchmark: {reps} reps, medians of per-operation times, same SQLite settings for all");
    let mut table = Vec::new();
    for op in Op::ALL {
        let n = batch(op);
        // What every contender must answer (inserts return ids that differ: not checked).
        let expect = match op {
            Op::SelectById => 500,
            Op::Load1000 | Op::Join1000 => 1000,
            _ => -1,
        };
        let mut samples: [Vec<f64>; 4] = Default::default();
        for rep in 0..=reps {
            let r = time(n, expect, || raw.run(op))?;
            let d = time(n, if op == Op::InsertOne { 1 } else { expect }, || {
                diesel.run(op)
            })?;
            let s = time(n, expect, || sync.run(op))?;
            let mut contender = asynchronous.take().context("async contender")?;
            // One task awaiting its queries one after another (on the runtime's entry thread, so
            // the measurement is not mixed with work-stealing between idle workers).
            let (a, back) = runtime.block_on(async move {
                let start = Instant::now();
                for _ in 0..n {
                    let got = contender.run(op).await?;
                    anyhow::ensure!(expect < 0 || got == expect, "async answered {got}");
                }
                Ok::<_, anyhow::Error>((start.elapsed() / n as u32, contender))
            })?;
            asynchronous = Some(back);
            if rep == 0 {
                continue; // warm-up
            }
            for (i, d) in [r, d, s, a].into_iter().enumerate() {
                samples[i].push(d.as_secs_f64() * 1e6);
            }
        }
        table.push((op, samples.map(|s| median(&s))));
    }

    println!();
    println!(
        "{:<32} {:>10} {:>10} {:>12} {:>12} {:>10} {:>12} {:>12}",
        "operation (median, us)",
        "rusqlite",
        "diesel",
        "fluxon sync",
        "fluxon async",
        "sync/raw",
        "sync/diesel",
        "async-sync"
    );
    for (op, [r, d, s, a]) in &table {
        println!(
            "{:<32} {r:>10.2} {d:>10.2} {s:>12.2} {a:>12.2} {:>9.2}x {:>11.2}x {:>10.2}us",
            op.label(),
            s / r,
            s / d,
            a - s
        );
    }
    println!();
    println!("targets (issue #3):");
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    for (op, [r, d, s, a]) in &table {
        println!(
            "  {}: sync within 1.1x of rusqlite: {:.2}x {}; sync no slower than diesel: {:.2}x {}; async at most 10 us above sync: {:+.2} us {}",
            op.label(),
            s / r,
            verdict(s / r <= 1.1),
            s / d,
            verdict(s / d <= 1.0),
            a - s,
            verdict(a - s <= 10.0)
        );
    }
    Ok(())
}
