//! RPC benchmark: fluxon against tarpc and a raw tokio length-delimited echo, in one run.
//!
//! `cargo run --release -p fluxon-bench --bin rpc [-- --reps N --window-ms MS --samples N]`
//!
//! Prints sequential round-trip latency (p50, p99) and throughput with 1, 16 and 64 concurrent
//! callers on one connection and spread over 16 connections, with the ratios against each peer.
//! Every contender runs in this process on the same runtime; repetitions are interleaved
//! (raw, tarpc, fluxon, raw, ...) so machine noise falls on all of them alike; figures are medians.

use std::time::Duration;

use anyhow::Context;
use fluxon_bench::rpc::{fluxon_side, raw_side, tarpc_side, Load};
use fluxon_bench::stats::{median, percentile_us};

struct Options {
    reps: usize,
    window: Duration,
    samples: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        reps: 5,
        window: Duration::from_millis(1000),
        samples: 20_000,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--reps" => options.reps = value.parse()?,
            "--window-ms" => options.window = Duration::from_millis(value.parse()?),
            "--samples" => options.samples = value.parse()?,
            other => anyhow::bail!("unknown option {other}; use --reps, --window-ms, --samples"),
        }
    }
    anyhow::ensure!(options.reps > 0 && options.samples > 0, "--reps and --samples must be positive");
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let fluxon = fluxon_side::start().await?;
    let tarpc = tarpc_side::start().await?;
    let raw = raw_side::start().await?;
    println!(
        "fluxon rpc benchmark: {} reps, {:?} windows, {} latency samples, {} worker threads",
        options.reps,
        options.window,
        options.samples,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Latency: per rep, p50 and p99 of `samples` sequential calls; the table shows medians over reps.
    let warmup = options.samples / 10;
    let mut p50 = [vec![], vec![], vec![]];
    let mut p99 = [vec![], vec![], vec![]];
    for _ in 0..options.reps {
        let mut runs = [
            raw_side::latency(raw, warmup, options.samples).await?,
            tarpc_side::latency(tarpc, warmup, options.samples).await?,
            fluxon_side::latency(&fluxon, warmup, options.samples).await?,
        ];
        for (i, samples) in runs.iter_mut().enumerate() {
            p50[i].push(percentile_us(samples, 50.0));
            p99[i].push(percentile_us(samples, 99.0));
        }
    }

    let loads = [(1, 1), (16, 1), (64, 1), (16, 16), (64, 16)];
    let mut rates = vec![[vec![], vec![], vec![]]; loads.len()];
    for _ in 0..options.reps {
        for (row, &(callers, connections)) in loads.iter().enumerate() {
            let load = Load {
                callers,
                connections,
                warmup: options.window / 5,
                window: options.window,
            };
            rates[row][0].push(raw_side::throughput(raw, load).await?);
            rates[row][1].push(tarpc_side::throughput(tarpc, load).await?);
            rates[row][2].push(fluxon_side::throughput(&fluxon, load).await?);
        }
    }
    fluxon.shutdown().await;

    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>13} {:>11}",
        "measure (median)", "raw echo", "tarpc", "fluxon", "fluxon/tarpc", "fluxon/raw"
    );
    let row = |name: &str, values: [f64; 3], lower_is_better: bool| {
        let (vs_tarpc, vs_raw) = if lower_is_better {
            (values[2] / values[1], values[2] / values[0])
        } else {
            (values[2] / values[1], values[2] / values[0])
        };
        println!(
            "{name:<34} {:>12.1} {:>12.1} {:>12.1} {:>12.2}x {:>10.2}x",
            values[0], values[1], values[2], vs_tarpc, vs_raw
        );
    };
    let med = |v: &[Vec<f64>; 3]| [median(&v[0]), median(&v[1]), median(&v[2])];
    let lat50 = med(&p50);
    let lat99 = med(&p99);
    row("sequential p50 latency (us)", lat50, true);
    row("sequential p99 latency (us)", lat99, true);
    let mut thr = Vec::new();
    for (i, &(callers, connections)) in loads.iter().enumerate() {
        let values = med(&rates[i]);
        let name = format!(
            "{callers} caller{} / {connections} conn{} (calls/s)",
            if callers == 1 { "" } else { "s" },
            if connections == 1 { "" } else { "s" }
        );
        row(&name, values, false);
        thr.push((name, values));
    }

    println!();
    println!("targets:");
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    for (name, values) in &thr {
        let vs_tarpc = values[2] / values[1];
        let vs_raw = values[2] / values[0];
        println!(
            "  {name}: >= tarpc ({vs_tarpc:.2}x) {}; >= 60% of raw ({:.0}%) {}",
            verdict(vs_tarpc >= 1.0),
            vs_raw * 100.0,
            verdict(vs_raw >= 0.6)
        );
    }
    let lat_ratio = lat50[2] / lat50[0];
    println!(
        "  sequential p50 within 1.2x of raw: {lat_ratio:.2}x {}",
        verdict(lat_ratio <= 1.2)
    );
    Ok(())
}
