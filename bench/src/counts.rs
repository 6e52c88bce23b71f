//! Machine-independent costs of a fixed piece of work: user-space instructions (valgrind's
//! callgrind) and system calls (strace), counted for a child process that does the work `n` times
//! and again `2n` times, so that start-up and shutdown cancel out: cost per unit =
//! (count(2n) - count(n)) / n. Both counts repeat from run to run whatever else the machine does,
//! where times do not.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::Context;

/// What one unit of work cost.
#[derive(Debug, Clone, Default)]
pub struct PerUnit {
    /// User-space instructions (every thread of the process).
    pub instructions: f64,
    /// System calls (every thread), in all.
    pub syscalls: f64,
    /// System calls by name, the most frequent first.
    pub by_syscall: Vec<(String, f64)>,
}

/// Whether `tool --version` runs: valgrind and strace are Debian packages the README's set-up
/// installs; without them the counts are left out with a message saying so.
pub fn available(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}

/// Instructions of `command(n)` under callgrind, as a total over every thread.
fn instructions(command: &dyn Fn(u64) -> Command, n: u64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let inner = command(n);
    let out = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!(
            "--callgrind-out-file={}",
            dir.path().join("callgrind.out").display()
        ))
        .arg(inner.get_program())
        .args(inner.get_args())
        .output()
        .context("running valgrind")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    anyhow::ensure!(
        out.status.success(),
        "under callgrind the child failed: {stderr}"
    );
    // "==123== Collected : 456789"
    let line = stderr
        .lines()
        .find_map(|line| line.split_once("Collected :").map(|(_, n)| n.trim()))
        .with_context(|| format!("no instruction total in callgrind's output: {stderr}"))?;
    Ok(line.parse()?)
}

/// System calls of `command(n)` under `strace -f -c`, by name.
fn syscalls(command: &dyn Fn(u64) -> Command, n: u64) -> anyhow::Result<BTreeMap<String, f64>> {
    let dir = tempfile::tempdir()?;
    let summary = dir.path().join("strace.txt");
    let inner = command(n);
    let out = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(&summary)
        .arg(inner.get_program())
        .args(inner.get_args())
        .output()
        .context("running strace")?;
    anyhow::ensure!(
        out.status.success(),
        "under strace the child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // % time  seconds  usecs/call  calls  [errors]  syscall; a line of dashes, then the total.
    let text = std::fs::read_to_string(&summary)?;
    let mut by_name = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(name) = fields.last() else { continue };
        if fields.len() < 5 || *name == "total" || fields[0].parse::<f64>().is_err() {
            continue;
        }
        let calls: f64 = fields[3]
            .parse()
            .with_context(|| format!("strace line {line:?}"))?;
        by_name.insert((*name).to_owned(), calls);
    }
    anyhow::ensure!(!by_name.is_empty(), "strace counted nothing: {text}");
    Ok(by_name)
}

/// The cost of one unit of the work `command(n)` does `n` times.
pub fn per_unit(command: &dyn Fn(u64) -> Command, n: u64) -> anyhow::Result<PerUnit> {
    anyhow::ensure!(n > 0, "n must be positive");
    let per = |small: f64, large: f64| ((large - small) / n as f64).max(0.0);
    let instructions = per(instructions(command, n)?, instructions(command, 2 * n)?);
    let (small, large) = (syscalls(command, n)?, syscalls(command, 2 * n)?);
    let mut by_syscall: Vec<(String, f64)> = large
        .iter()
        .map(|(name, calls)| {
            (
                name.clone(),
                per(small.get(name).copied().unwrap_or(0.0), *calls),
            )
        })
        .filter(|(_, calls)| *calls >= 0.005)
        .collect();
    by_syscall.sort_by(|a, b| b.1.total_cmp(&a.1));
    let syscalls = per(small.values().sum(), large.values().sum());
    Ok(PerUnit {
        instructions,
        syscalls,
        by_syscall,
    })
}
