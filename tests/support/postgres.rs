//! A throwaway PostgreSQL server for the tests of one test binary, and a fresh database per test.
//! Included with `#[path = "../support/postgres.rs"] mod postgres;`.
//!
//! The first test that asks starts the server: `initdb` into a new temp dir, then `postgres` on a
//! free loopback port (and a Unix socket in that dir), both as an unprivileged user (as root, the
//! machines' usual user, that is Debian's `postgres`: PostgreSQL refuses to run as root). The
//! server is a child of a thread that lives as long as the test binary and asks the kernel to
//! stop it (SIGINT: a fast shutdown) when that thread's process ends, however it ends; its temp
//! dir is removed by the next run that finds it dead. Each test gets a database of its own.
//!
//! Nothing here skips: on a machine without PostgreSQL's server the first test that needs it fails
//! saying what to install (`./scripts/test` installs it).

#![allow(dead_code)] // each binary uses a part

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long the server may take to start.
const START_PATIENCE: Duration = Duration::from_secs(60);
/// The superuser `initdb` makes (trust authentication on loopback: the tests' own server).
pub const SUPERUSER: &str = "fluxon";

/// A running test server.
pub struct Server {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its data directory (the Unix socket is there too).
    pub dir: PathBuf,
}

impl Server {
    /// The certificate the server presents over TLS (self-signed, for the name `localhost`
    /// only, so a check of the name fails when `127.0.0.1` is dialled), as a PEM file: a
    /// client's `sslrootcert`.
    pub fn certificate(&self) -> PathBuf {
        self.dir.join("root.crt")
    }
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

/// The backends every database test runs on ([`backends!`](crate::backends)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temp dir.
    Sqlite,
    /// A fresh database on the test binary's own PostgreSQL server.
    Postgres,
}

/// Where a test's database is: a SQLite file in a fresh temp dir (the dir lives as long as the
/// returned guard), or a fresh database on the test server.
pub fn place(backend: Backend) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let place = match backend {
        Backend::Sqlite => dir.path().join("test.sqlite3").display().to_string(),
        Backend::Postgres => fresh_database(),
    };
    (place, dir)
}

/// One test per backend for each function named: `backends!(sync: a, b; async: c)` makes
/// `sqlite::a` and `postgres::a` calling `a(Backend::Sqlite)` and `a(Backend::Postgres)` (the
/// async ones as `#[tokio::test]`s on a multi-threaded runtime).
#[macro_export]
macro_rules! backends {
    (sync: $($sync:ident),* $(,)? ; async: $($async:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $sync() {
                super::$sync($crate::postgres::Backend::Sqlite)
            })*
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $async() {
                super::$async($crate::postgres::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[test]
            fn $sync() {
                super::$sync($crate::postgres::Backend::Postgres)
            })*
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $async() {
                super::$async($crate::postgres::Backend::Postgres).await
            })*
        }
    };
    (sync: $($sync:ident),* $(,)?) => {
        $crate::backends!(sync: $($sync),*; async:);
    };
}
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// Whether the server logs every statement (for [`statements_run`]); see [`log_no_statements`].
static LOG_STATEMENTS: AtomicBool = AtomicBool::new(true);

/// For a benchmark: the server, when it starts after this, logs no statements. Logging one costs
/// the server a write per statement, more for longer SQL, which would weigh on the contender
/// whose SQL is longest ([`statements_run`] then counts nothing).
pub fn log_no_statements() {
    LOG_STATEMENTS.store(false, Ordering::Relaxed);
}

/// The binary's server, started on first use. Panics with what to install when PostgreSQL's
/// server is missing, or with why it did not start.
pub fn server() -> &'static Server {
    match SERVER.get_or_init(start) {
        Ok(server) => server,
        Err(why) => panic!("{why}"),
    }
}

/// A new, empty database on the binary's server: its URL
/// (`postgres://fluxon@127.0.0.1:<port>/<name>`).
pub fn fresh_database() -> String {
    // The client blocks on a runtime of its own, which tokio refuses inside an async test's.
    std::thread::scope(|scope| {
        scope
            .spawn(make_database)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn make_database() -> String {
    let server = server();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        DATABASES.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = server.connect("postgres");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .unwrap_or_else(|err| panic!("cannot create database {name}: {err}"));
    // Clear text for the tests at large (the server offers TLS: the TLS tests ask for it).
    format!(
        "postgres://{SUPERUSER}@127.0.0.1:{}/{name}?sslmode=disable",
        server.port
    )
}

impl Server {
    /// A plain client (the `postgres` crate's) to `database`, for checking what fluxon did.
    pub fn connect(&self, database: &str) -> postgres::Client {
        let url = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname={database} connect_timeout=10",
            self.port
        );
        postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|err| panic!("cannot connect to the test server: {err}"))
    }
}

/// How many statements the database named by a [`fresh_database`] URL has run so far (from the
/// server's log: each statement executed, however it was sent).
pub fn statements_run(url: &str) -> usize {
    use std::io::BufRead;
    let prefix = format!("{}|LOG:  ", database_name(url));
    // Line by line: the log holds every statement of every test, a big file to read whole.
    let Ok(log) = std::fs::File::open(server().dir.join("server.log")) else {
        return 0;
    };
    std::io::BufReader::new(log)
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| line.strip_prefix(&prefix).map(str::to_owned))
        .filter(|rest| rest.starts_with("execute ") || rest.starts_with("statement: "))
        .count()
}

/// A plain client to the database a [`fresh_database`] URL names.
pub fn connect(url: &str) -> postgres::Client {
    server().connect(database_name(url))
}

/// The database a [`fresh_database`] URL names.
pub fn database_name(url: &str) -> &str {
    let database = url.rsplit('/').next().unwrap_or("postgres");
    database.split('?').next().unwrap_or(database)
}

/// PostgreSQL's server binaries: `pg_config --bindir`, else Debian's /usr/lib/postgresql/*/bin
/// (the newest), else PATH.
fn bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    debian.sort_by_key(|dir| {
        let version = dir
            .parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str());
        version.and_then(|v| v.parse::<u32>().ok()).unwrap_or(0)
    });
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    from_pg_config
        .into_iter()
        .chain(debian.into_iter().rev())
        .chain(on_path)
        .find(|dir| has_server(dir))
}

/// The user the server runs as: Debian's `postgres` when this process is root, else this user.
fn server_user() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .map_err(|err| format!("cannot run `id`: {err}"))?;
        String::from_utf8_lossy(&out.stdout).trim().parse().map_err(|_| {
            "the tests run as root, which PostgreSQL refuses, and there is no `postgres` user to \
             run it as: install Debian's postgresql package (./scripts/test does)"
                .to_owned()
        })
    };
    Ok(Some((id("-u")?, id("-g")?)))
}

/// Removes the data dirs of earlier runs whose server is gone.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|name| name.starts_with("fluxon-pg-"));
        if !is_ours {
            continue;
        }
        let alive = std::fs::read_to_string(path.join("data/postmaster.pid"))
            .ok()
            .and_then(|pid| pid.lines().next().map(str::to_owned))
            .is_some_and(|pid| Path::new("/proc").join(pid.trim()).exists());
        let young = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() < Duration::from_secs(120));
        if !alive && !young {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn start() -> Result<Server, String> {
    let bin = bin_dir().ok_or(
        "PostgreSQL's server (initdb, postgres) is not installed: the PostgreSQL tests need it. \
         Install Debian's `postgresql` package (`apt-get install -y postgresql`), or run \
         ./scripts/test, which installs it",
    )?;
    let user = server_user()?;
    let parent = std::env::temp_dir();
    sweep_stale(&parent);
    let dir = tempfile::Builder::new()
        .prefix("fluxon-pg-")
        .tempdir_in(&parent)
        .map_err(|err| format!("cannot make a temp dir: {err}"))?
        .keep();
    let data = dir.join("data");
    std::fs::create_dir(&data).map_err(|err| format!("cannot make {}: {err}", data.display()))?;
    if let Some((uid, gid)) = user {
        for path in [&dir, &data] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|err| format!("cannot give {} to postgres: {err}", path.display()))?;
        }
    }
    let as_user = |command: &mut Command| {
        if let Some((uid, gid)) = user {
            command.uid(uid).gid(gid);
        }
        command.env_remove("PGDATA").current_dir(&dir);
    };

    let mut initdb = Command::new(bin.join("initdb"));
    initdb.arg("-D").arg(&data).args([
        "-U",
        SUPERUSER,
        "--auth=trust",
        "--no-sync",
        "-E",
        "UTF8",
        "--locale=C",
    ]);
    as_user(&mut initdb);
    let out = initdb
        .output()
        .map_err(|err| format!("cannot run initdb: {err}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }

    // A certificate for TLS: `localhost` only (see [`Server::certificate`]).
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .map_err(|err| format!("cannot make the server's certificate: {err}"))?;
    let (crt, key) = (data.join("server.crt"), data.join("server.key"));
    std::fs::write(&crt, made.cert.pem()).map_err(|err| err.to_string())?;
    std::fs::write(&key, made.key_pair.serialize_pem()).map_err(|err| err.to_string())?;
    std::fs::write(dir.join("root.crt"), made.cert.pem()).map_err(|err| err.to_string())?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
            .map_err(|err| err.to_string())?;
    }
    if let Some((uid, gid)) = user {
        for path in [&crt, &key] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|err| format!("cannot give {} to postgres: {err}", path.display()))?;
        }
    }

    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|err| format!("cannot find a free port: {err}"))?
        .port();
    let log = std::fs::File::create(dir.join("server.log"))
        .map_err(|err| format!("cannot make the server's log: {err}"))?;
    let mut postgres = Command::new(bin.join("postgres"));
    postgres
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args(["-c", "listen_addresses=127.0.0.1"])
        .args([
            "-c",
            "ssl=on",
            "-c",
            "ssl_cert_file=server.crt",
            "-c",
            "ssl_key_file=server.key",
        ])
        // A throwaway server: durability off, room for the concurrency tests.
        .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
        .args(["-c", "full_page_writes=off", "-c", "max_connections=300"])
        // Every statement a test's database runs, in the log, for counting them
        // ([`statements_run`]); their parameters left out.
        .args(["-c", "log_line_prefix=%d|", "-c"])
        .arg(if LOG_STATEMENTS.load(Ordering::Relaxed) {
            "log_statement=all"
        } else {
            "log_statement=none"
        })
        .args(["-c", "log_parameter_max_length=0"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|err| err.to_string())?)
        .stderr(log);
    as_user(&mut postgres);
    // SAFETY: prctl is async-signal-safe; it only asks for a signal when the parent thread ends.
    unsafe {
        postgres.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // The parent-death signal follows the thread that forked, so fork from one that never ends.
    let (started, result) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("postgres-keeper".into())
        .spawn(move || {
            let child = postgres.spawn();
            let failed = child.as_ref().err().map(ToString::to_string);
            let _ = started.send(failed);
            let _keep = child;
            loop {
                std::thread::park();
            }
        })
        .map_err(|err| format!("cannot start a thread: {err}"))?;
    if let Ok(Some(err)) = result.recv() {
        return Err(format!("cannot start postgres: {err}"));
    }

    let server = Server { port, dir };
    let deadline = Instant::now() + START_PATIENCE;
    loop {
        let url = format!(
            "host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres connect_timeout=5"
        );
        match postgres::Client::connect(&url, postgres::NoTls) {
            Ok(_) => return Ok(server),
            Err(err) if Instant::now() > deadline => {
                let log =
                    std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
                return Err(format!(
                    "the test PostgreSQL did not start within {START_PATIENCE:?}: {err}\n{log}"
                ));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
