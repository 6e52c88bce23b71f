//! A throwaway Redis server per test: `redis-server` (found on PATH) on a free loopback port, its
//! files in a temp dir, stopped when the returned [`Redis`] is dropped (and by the kernel if the
//! test process dies first). Included with `#[path = "../support/redis.rs"] mod redis;`.
//!
//! Nothing here skips: on a machine without `redis-server` the first test that needs it fails
//! saying what to install (`./scripts/test` installs it).

#![allow(dead_code)] // each binary uses a part

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to start or to stop.
const PATIENCE: Duration = Duration::from_secs(20);

/// A running `redis-server`, stopped on drop.
pub struct Redis {
    child: Option<Child>,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a server on a free loopback port. Panics with what to install when `redis-server`
    /// is missing, or with why it did not start.
    pub fn start() -> Redis {
        let dir = tempfile::Builder::new()
            .prefix("fluxon-redis-")
            .tempdir()
            .expect("temp dir");
        let mut redis = Redis {
            child: None,
            port: 0,
            dir,
        };
        redis.run(free_port());
        redis
    }

    /// The URL a node is given.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (no goodbye, no save), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, with an empty data set (nothing is saved).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        self.run(port);
    }

    fn run(&mut self, port: u16) {
        let log = self.dir.path().join("redis.log");
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe; it asks the kernel to stop the
        // server when the thread that started it ends, however the test process ends.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|err| {
            panic!(
                "cannot run redis-server ({err}): the cluster tests need it. Install Debian's \
                 `redis-server` package (`apt-get install -y redis-server`), or run \
                 ./scripts/test, which installs it"
            )
        });
        self.child = Some(child);
        self.port = port;
        let start = Instant::now();
        while start.elapsed() < PATIENCE {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("redis-server did not answer on 127.0.0.1:{port} within {PATIENCE:?}:\n{log}");
    }

    /// Whether the server answers PING now.
    pub fn ping(&self) -> bool {
        self.command(&["PING"])
            .is_some_and(|reply| reply == "+PONG")
    }

    /// Runs one command (RESP2, a fresh connection): the reply's first line, `None` when the
    /// server cannot be reached. For tests to look at what the nodes stored.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") {
            if stream.read(&mut byte).ok()? == 0 {
                return None;
            }
            reply.push(byte[0]);
        }
        reply.truncate(reply.len() - 2);
        Some(String::from_utf8_lossy(&reply).into_owned())
    }

    /// The keys stored now (`KEYS *`, fine for a test's few).
    pub fn keys(&self) -> Vec<String> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return Vec::new();
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.write_all(b"*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n");
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        // The reply is small; read until it parses whole.
        let start = Instant::now();
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&all);
            let lines: Vec<&str> = text.split("\r\n").collect();
            let count: usize = lines[0].trim_start_matches('*').parse().unwrap_or(0);
            if lines.len() > 2 * count || start.elapsed() > PATIENCE {
                return (0..count)
                    .filter_map(|i| lines.get(2 + 2 * i).map(|s| (*s).to_owned()))
                    .collect();
            }
        }
        Vec::new()
    }

    /// The server's data dir.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port free now on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
