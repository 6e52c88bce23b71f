//! RPC benchmark: fluxon against tarpc and a raw tokio length-delimited echo, in one run.
//!
//! `cargo run --release -p fluxon-bench --bin rpc [-- --reps N --window-ms MS --samples N --counts N]`
//!
//! Prints sequential round-trip latency (p50, p99) and throughput with 1, 16 and 64 concurrent
//! callers on one connection and spread over 16 connections, with the ratios against each peer.
//! Then two counts that do not depend on the machine, for sequential calls and 64 callers on one
//! connection: user-space instructions per call (valgrind's callgrind) and system calls per call
//! (strace), each from a child doing N and 2N calls (the difference over N; `--counts 0` leaves
//! them out).
//!
//! Each measurement runs in a fresh child process (this binary with `--child`), server and client
//! on one tokio runtime with a worker per core, so no contender inherits another's heap or sockets.
//! Repetitions are interleaved (raw, tarpc, fluxon, then tarpc, fluxon, raw, ...: the order
//! rotates every rep) so machine noise falls on all alike; the table shows medians over
//! repetitions, and each ratio is the median of the ratios within a rep (the samples of one rep
//! are taken seconds apart, so a drift of the machine cancels out of them).

use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use fluxon_bench::counts::{self, PerUnit};
use fluxon_bench::rpc::{fluxon_side, raw_side, tarpc_side, Load};
use fluxon_bench::stats::{median, paired_ratio, percentile_us};

const CONTENDERS: [&str; 3] = ["raw", "tarpc", "fluxon"];
const LOADS: [(usize, usize); 5] = [(1, 1), (16, 1), (64, 1), (16, 16), (64, 16)];
/// The loads whose instructions and system calls per call are counted.
const COUNTED: [(usize, usize); 2] = [(1, 1), (64, 1)];

struct Options {
    reps: usize,
    window: Duration,
    samples: usize,
    /// Calls per counted child (and twice as many in the second); 0: no counts.
    counts: u64,
    /// Run only these contenders (for profiling): raw, tarpc, fluxon, comma-separated.
    only: Option<String>,
    /// In a child: the contender and what to measure (`latency` or `CALLERSxCONNECTIONS`).
    child: Option<(String, String)>,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        reps: 5,
        window: Duration::from_millis(1000),
        samples: 20_000,
        counts: 10_000,
        only: None,
        child: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--reps" => options.reps = value.parse()?,
            "--window-ms" => options.window = Duration::from_millis(value.parse()?),
            "--samples" => options.samples = value.parse()?,
            "--counts" => options.counts = value.parse()?,
            "--only" => options.only = Some(value),
            "--child" => {
                let measure = args
                    .next()
                    .context("--child takes a contender and a measure")?;
                options.child = Some((value, measure));
            }
            other => {
                anyhow::bail!(
                    "unknown option {other}; use --reps, --window-ms, --samples, --counts, --only"
                )
            }
        }
    }
    anyhow::ensure!(
        options.reps > 0 && options.samples > 0,
        "--reps and --samples must be positive"
    );
    Ok(options)
}

fn main() -> anyhow::Result<()> {
    let options = options()?;
    match &options.child {
        Some((contender, measure)) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let line = runtime.block_on(child(contender, measure, &options))?;
            println!("{line}");
            Ok(())
        }
        None => parent(&options),
    }
}

/// One measurement of one contender; prints `p50 p99` (µs) for latency, calls/s for a load.
async fn child(contender: &str, measure: &str, options: &Options) -> anyhow::Result<String> {
    let (warmup, samples) = (options.samples / 10, options.samples);
    if measure == "latency" {
        // Measured from a runtime worker, like every caller in the throughput runs.
        let mut samples = match contender {
            "raw" => {
                let addr = raw_side::start().await?;
                tokio::spawn(raw_side::latency(addr, warmup, samples)).await??
            }
            "tarpc" => {
                let addr = tarpc_side::start().await?;
                tokio::spawn(tarpc_side::latency(addr, warmup, samples)).await??
            }
            "fluxon" => {
                let server = fluxon_side::start().await?;
                let addr = server.local_addr();
                let samples = tokio::spawn(fluxon_side::latency(addr, warmup, samples)).await??;
                server.shutdown().await;
                samples
            }
            other => anyhow::bail!("unknown contender {other}"),
        };
        let p50 = percentile_us(&mut samples, 50.0);
        let p99 = percentile_us(&mut samples, 99.0);
        return Ok(format!("{p50} {p99}"));
    }
    if let Some(count) = measure.strip_prefix("count:") {
        // count:CALLERSxCONNECTIONS:N — exactly N calls, for the counts.
        let (load, n) = count.split_once(':').context("count:LOAD:N")?;
        let (load, n) = (parse_load(load, options)?, n.parse()?);
        match contender {
            "raw" => raw_side::calls(raw_side::start().await?, load, n).await?,
            "tarpc" => tarpc_side::calls(tarpc_side::start().await?, load, n).await?,
            "fluxon" => {
                let server = fluxon_side::start().await?;
                fluxon_side::calls(&server, load, n).await?;
                server.shutdown().await;
            }
            other => anyhow::bail!("unknown contender {other}"),
        }
        return Ok(String::new());
    }
    let load = parse_load(measure, options)?;
    let rate = match contender {
        "raw" => raw_side::throughput(raw_side::start().await?, load).await?,
        "tarpc" => tarpc_side::throughput(tarpc_side::start().await?, load).await?,
        "fluxon" => {
            let server = fluxon_side::start().await?;
            let rate = fluxon_side::throughput(&server, load).await?;
            server.shutdown().await;
            rate
        }
        other => anyhow::bail!("unknown contender {other}"),
    };
    Ok(format!("{rate}"))
}

fn parse_load(load: &str, options: &Options) -> anyhow::Result<Load> {
    let (callers, connections) = load
        .split_once('x')
        .context("a load is CALLERSxCONNECTIONS")?;
    Ok(Load {
        callers: callers.parse()?,
        connections: connections.parse()?,
        warmup: options.window / 5,
        window: options.window,
    })
}

/// Instructions and system calls per call of each contender at each counted load.
fn count(options: &Options, runs: &dyn Fn(&str) -> bool) -> anyhow::Result<Vec<[PerUnit; 3]>> {
    for tool in ["valgrind", "strace"] {
        anyhow::ensure!(
            counts::available(tool),
            "{tool} is not installed: `apt-get install -y valgrind strace` (or --counts 0 to \
             leave the counts out)"
        );
    }
    let exe = std::env::current_exe()?;
    let mut all = Vec::new();
    for (callers, connections) in COUNTED {
        let mut row: [PerUnit; 3] = Default::default();
        for (i, contender) in CONTENDERS.iter().enumerate().filter(|(_, c)| runs(c)) {
            let command = |n: u64| {
                let mut command = Command::new(&exe);
                command.args([
                    "--child",
                    contender,
                    &format!("count:{callers}x{connections}:{n}"),
                ]);
                command
            };
            row[i] = counts::per_unit(&command, options.counts)?;
        }
        all.push(row);
    }
    Ok(all)
}

/// Runs one child measurement and returns the numbers it printed.
fn measure(contender: &str, what: &str, options: &Options) -> anyhow::Result<Vec<f64>> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--child", contender, what])
        .args(["--window-ms", &options.window.as_millis().to_string()])
        .args(["--samples", &options.samples.to_string()])
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{contender} {what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    text.split_whitespace()
        .map(|n| {
            n.parse::<f64>()
                .with_context(|| format!("bad number {n:?}"))
        })
        .collect()
}

fn parent(options: &Options) -> anyhow::Result<()> {
    println!(
        "fluxon rpc benchmark: {} reps, {:?} windows, {} latency samples, {} cores; each measurement in a fresh process",
        options.reps,
        options.window,
        options.samples,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let runs = |name: &str| {
        options
            .only
            .as_deref()
            .is_none_or(|o| o.split(',').any(|o| o == name))
    };
    // [contender] -> samples over reps
    let mut p50: [Vec<f64>; 3] = Default::default();
    let mut p99: [Vec<f64>; 3] = Default::default();
    let mut rates: Vec<[Vec<f64>; 3]> = vec![Default::default(); LOADS.len()];
    // The contenders in the order they take turns in `rep`.
    let turns = |rep: usize| {
        (0..CONTENDERS.len())
            .map(move |k| (k + rep) % CONTENDERS.len())
            .map(|i| (i, CONTENDERS[i]))
            .filter(|(_, c)| runs(c))
    };
    for rep in 0..options.reps {
        for (i, contender) in turns(rep) {
            let numbers = measure(contender, "latency", options)?;
            anyhow::ensure!(numbers.len() == 2, "latency child printed {numbers:?}");
            p50[i].push(numbers[0]);
            p99[i].push(numbers[1]);
        }
        for (row, (callers, connections)) in LOADS.iter().enumerate() {
            for (i, contender) in turns(rep) {
                let numbers = measure(contender, &format!("{callers}x{connections}"), options)?;
                anyhow::ensure!(numbers.len() == 1, "load child printed {numbers:?}");
                rates[row][i].push(numbers[0]);
            }
        }
    }

    /// A measure's medians, and its paired ratios fluxon/tarpc, fluxon/raw and raw/tarpc.
    struct Measured {
        medians: [f64; 3],
        vs_tarpc: f64,
        vs_raw: f64,
        raw_vs_tarpc: f64,
    }
    let measured = |v: &[Vec<f64>; 3]| Measured {
        medians: [median(&v[0]), median(&v[1]), median(&v[2])],
        vs_tarpc: paired_ratio(&v[2], &v[1]),
        vs_raw: paired_ratio(&v[2], &v[0]),
        raw_vs_tarpc: paired_ratio(&v[0], &v[1]),
    };
    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>12} {:>13} {:>11}",
        "measure (median; ratios paired)",
        "raw echo",
        "tarpc",
        "fluxon",
        "fluxon/tarpc",
        "fluxon/raw"
    );
    let row = |name: &str, values: [f64; 3], vs_tarpc: f64, vs_raw: f64| {
        println!(
            "{name:<34} {:>12.1} {:>12.1} {:>12.1} {:>12.2}x {:>10.2}x",
            values[0], values[1], values[2], vs_tarpc, vs_raw
        );
    };
    let lat50 = measured(&p50);
    row(
        "sequential p50 latency (us)",
        lat50.medians,
        lat50.vs_tarpc,
        lat50.vs_raw,
    );
    let lat99 = measured(&p99);
    row(
        "sequential p99 latency (us)",
        lat99.medians,
        lat99.vs_tarpc,
        lat99.vs_raw,
    );
    let mut throughput = Vec::new();
    for (i, (callers, connections)) in LOADS.iter().enumerate() {
        let m = measured(&rates[i]);
        let name = format!(
            "{callers} caller{} / {connections} conn{} (calls/s)",
            if *callers == 1 { "" } else { "s" },
            if *connections == 1 { "" } else { "s" }
        );
        row(&name, m.medians, m.vs_tarpc, m.vs_raw);
        throughput.push((name, m));
    }

    let counted = if options.counts > 0 {
        Some(count(options, &runs)?)
    } else {
        None
    };
    if let Some(counted) = &counted {
        println!();
        println!(
            "{:<34} {:>12} {:>12} {:>12} {:>13} {:>11}",
            "per call (N and 2N calls)",
            "raw echo",
            "tarpc",
            "fluxon",
            "fluxon/tarpc",
            "fluxon/raw"
        );
        for ((callers, connections), per) in COUNTED.iter().zip(counted) {
            let load = if *callers == 1 {
                "sequential".to_owned()
            } else {
                format!("{callers} callers / {connections} conn")
            };
            for (what, values) in [
                ("instructions", [0, 1, 2].map(|i| per[i].instructions)),
                ("syscalls", [0, 1, 2].map(|i| per[i].syscalls)),
            ] {
                row(
                    &format!("{what}, {load}"),
                    values,
                    values[2] / values[1],
                    values[2] / values[0],
                );
            }
            for (i, contender) in CONTENDERS.iter().enumerate() {
                let top: Vec<String> = per[i]
                    .by_syscall
                    .iter()
                    .take(6)
                    .map(|(name, n)| format!("{name} {n:.2}"))
                    .collect();
                println!("    {contender:<7} {}", top.join(", "));
            }
        }
        println!(
            "  (callgrind: user-space instructions of client and server together; strace slows \
             every syscall, so under load it batches differently than at full speed)"
        );
    }

    println!();
    println!("targets (issue #12):");
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    let lat_ratio = lat50.vs_raw;
    println!(
        "  sequential p50 within 1.2x of raw: {lat_ratio:.2}x {}",
        verdict(lat_ratio <= 1.2)
    );
    if let Some(counted) = &counted {
        let ratio = counted[0][2].instructions / counted[0][0].instructions;
        println!(
            "  instructions per sequential call within 1.5x of raw: {ratio:.2}x {}",
            verdict(ratio <= 1.5)
        );
    }
    for (name, m) in &throughput {
        let (vs_tarpc, vs_raw, raw_vs_tarpc) = (m.vs_tarpc, m.vs_raw, m.raw_vs_tarpc);
        let tarpc_bar = if raw_vs_tarpc > 2.5 {
            format!(
                "; raw is {raw_vs_tarpc:.1}x tarpc, so >= 2x tarpc: {vs_tarpc:.2}x {}",
                verdict(vs_tarpc >= 2.0)
            )
        } else {
            String::new()
        };
        println!(
            "  {name}: >= 0.8x raw: {vs_raw:.2}x {}{tarpc_bar}",
            verdict(vs_raw >= 0.8)
        );
    }
    Ok(())
}
