//! Database benchmark: fluxon's `Database` and `AsyncDatabase` against raw rusqlite and Diesel, in
//! one run, each on its own SQLite file with the same settings.
//!
//! `cargo run --release -p fluxon-bench --bin db [-- --reps N] [--bulk]` (31 reps unless told;
//! `--bulk`: only the bulk insert)
//!
//! Five operations (insert 1 row; insert 100 rows in a transaction; select by id; load 1,000 rows;
//! a foreign-key join of 1,000 rows). Each timing sample is a batch of the operation, divided by
//! the batch size; contenders take turns batch by batch, in an order that rotates every rep. The
//! table shows the median per operation, and the medians of each rep's ratios (sync over the
//! others) and differences (async minus sync). Then 16 tasks reading at once on `AsyncDatabase`
//! against 16 threads on `Database`.

use std::time::{Duration, Instant};

use anyhow::Context;
use fluxon_bench::db::{bulk, concurrency, diesel_side, fluxon_side, rusqlite_side, time, Op};
use fluxon_bench::stats::{median, paired_ratio};

/// Operations per timing sample: a few milliseconds each, so that one hiccup of the machine moves
/// a sample little (with 4-8 operations a batch the differences between adjacent batches swung by
/// +-80 us on the longer operations from run to run).
fn batch(op: Op) -> usize {
    match op {
        Op::InsertOne => 200,
        Op::Insert100 => 16,
        Op::SelectById => 2000,
        Op::Load1000 | Op::Join1000 => 32,
    }
}

/// Runs `op` `n` times on the async contender, awaiting each; time per operation.
async fn time_async(
    n: usize,
    expect: i64,
    contender: &mut fluxon_side::Async,
    op: Op,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        let got = contender.run(op).await?;
        anyhow::ensure!(expect < 0 || got == expect, "async answered {got}");
    }
    Ok(start.elapsed() / n as u32)
}

fn main() -> anyhow::Result<()> {
    let mut reps = 31usize;
    let mut only_bulk = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--reps" => reps = args.next().context("--reps needs a value")?.parse()?,
            "--bulk" => only_bulk = true,
            other => anyhow::bail!("unknown option {other}; use --reps N [--bulk]"),
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
    if only_bulk {
        let bulk = bulk::measure(&runtime, dir.path(), reps)?;
        bulk::print(&bulk);
        return Ok(());
    }
    let mut sync = fluxon_side::Sync::new(&shared);
    let shared_db = shared.clone();
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
        let mut samples: [Vec<f64>; 5] = Default::default();
        // async minus sync, batch by batch (adjacent batches: the machine's drift cancels).
        let mut paired: [Vec<f64>; 2] = Default::default();
        for rep in 0..=reps {
            // The contenders take turns in an order that rotates each rep: what one leaves behind
            // (a WAL to checkpoint, a cache to refill) does not always fall on the same next one.
            let mut took = [Duration::ZERO; 5];
            for turn in 0..5 {
                let who = (turn + rep) % 5;
                took[who] = match who {
                    0 => time(n, expect, || raw.run(op))?,
                    1 => time(n, if op == Op::InsertOne { 1 } else { expect }, || {
                        diesel.run(op)
                    })?,
                    2 => time(n, expect, || sync.run(op))?,
                    // One task awaiting its queries one after another: on the runtime's entry
                    // thread (`block_on`), and as a task on a worker, where a server's views run.
                    _ => {
                        let mut contender = asynchronous.take().context("async contender")?;
                        let run = async move {
                            let took = time_async(n, expect, &mut contender, op).await?;
                            Ok::<_, anyhow::Error>((took, contender))
                        };
                        let (took, back) = if who == 3 {
                            runtime.block_on(run)?
                        } else {
                            runtime.block_on(runtime.spawn(run))??
                        };
                        asynchronous = Some(back);
                        took
                    }
                };
            }
            let [r, d, s, a, w] = took;
            if rep == 0 {
                continue; // warm-up
            }
            for (i, d) in [r, d, s, a, w].into_iter().enumerate() {
                samples[i].push(d.as_secs_f64() * 1e6);
            }
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            paired[0].push(us(a) - us(s));
            paired[1].push(us(w) - us(s));
        }
        // sync over rusqlite and over diesel: the median of each rep's ratio.
        let ratios = [
            paired_ratio(&samples[2], &samples[0]),
            paired_ratio(&samples[2], &samples[1]),
        ];
        table.push((
            op,
            samples.map(|s| median(&s)),
            paired.map(|p| median(&p)),
            ratios,
        ));
    }

    println!();
    println!(
        "{:<32} {:>9} {:>9} {:>9} {:>11} {:>11} {:>9} {:>11} {:>10} {:>10}",
        "operation (median, us)",
        "rusqlite",
        "diesel",
        "fx sync",
        "fx async",
        "async task",
        "sync/raw",
        "sync/diesel",
        "async-sync",
        "task-sync"
    );
    for (op, [r, d, s, a, w], [pa, pw], [vs_raw, vs_diesel]) in &table {
        println!(
            "{:<32} {r:>9.2} {d:>9.2} {s:>9.2} {a:>11.2} {w:>11.2} {vs_raw:>8.2}x {vs_diesel:>10.2}x {pa:>8.2}us {pw:>8.2}us",
            op.label(),
        );
    }
    println!("  fx async: one task awaiting each query in turn on the runtime's entry thread (block_on);");
    println!("  async task: the same as a task on a worker thread (tokio::spawn), where views run");
    println!("  sync/raw, sync/diesel: medians of each rep's ratio; async-sync, task-sync: medians of each");
    println!("  rep's difference (the contenders of a rep side by side, so a drift of the machine cancels)");

    let concurrent = concurrency::measure(&runtime, &shared_db, reps)?;
    concurrency::print(&concurrent);

    let bulk = bulk::measure(&runtime, dir.path(), reps.min(15))?;
    bulk::print(&bulk);

    println!();
    println!("targets (issues #3 and #12):");
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    for (op, _, [pa, pw], [vs_raw, vs_diesel]) in &table {
        println!(
            "  {}: sync within 1.1x of rusqlite: {:.2}x {}; sync no slower than diesel: {:.2}x {}; async at most 10 us above sync: {:+.2} us {}, as a task {:+.2} us {}",
            op.label(),
            vs_raw,
            verdict(*vs_raw <= 1.1),
            vs_diesel,
            verdict(*vs_diesel <= 1.0),
            pa,
            verdict(*pa <= 10.0),
            pw,
            verdict(*pw <= 10.0)
        );
    }
    for row in &concurrent {
        println!(
            "  {}: 16 tasks at least 0.9x of 16 threads: {:.2}x {}",
            row.op.label(),
            row.ratio,
            verdict(row.ratio >= 0.9)
        );
    }
    println!("targets (issue #13):");
    println!(
        "  bulk insert of {} rows within 1.1x of rusqlite's loop: sync {:.2}x {}, async {:.2}x {}",
        bulk::ROWS,
        bulk.sync_ratio,
        verdict(bulk.sync_ratio <= 1.1),
        bulk.async_ratio,
        verdict(bulk.async_ratio <= 1.1)
    );
    Ok(())
}
