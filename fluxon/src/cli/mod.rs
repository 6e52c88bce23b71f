//! The command line of a fluxon app: `fluxon::cli::run(app)` in the app's `main` gives it
//! `serve` (the default), `makemigrations`, `migrate`, `showmigrations` and `sqlmigrate`, so
//! `cargo run -- makemigrations` works in the app's own project.
//!
//! ```no_run
//! use fluxon::cli::App;
//! use fluxon::db::Model;
//! use fluxon::{views, AsyncServer, Router};
//! # #[derive(Model)] struct User { name: String }
//!
//! fn main() -> std::process::ExitCode {
//!     let app = App::new("school")
//!         .models(&[User::SCHEMA])
//!         .serve_with(|db| {
//!             let router = Router::new().state(db);
//!             Ok(AsyncServer::new(8080).router(router))
//!         });
//!     fluxon::cli::run(app)
//! }
//! ```
//!
//! What this module does not own: the migrations themselves (`migrate`) and the server
//! (`server`); it wires them to commands, a terminal's questions, and a console.

mod console;
mod questions;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::db::{AsyncDatabase, Dialect, Location, TableSchema};
use crate::migrate::{self, MigrateError, NoQuestions, Questioner};
use crate::server::AsyncServer;

pub use questions::TerminalQuestions;

/// Builds the server once the database is open and checked.
type ServerBuilder =
    Box<dyn FnOnce(AsyncDatabase) -> Result<AsyncServer, Box<dyn std::error::Error + Send + Sync>>>;

/// An app as the command line sees it: its models, its database, its migrations, its server.
pub struct App {
    name: String,
    models: Vec<TableSchema>,
    database: PathBuf,
    migrations: PathBuf,
    server: Option<ServerBuilder>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("database", &self.database)
            .field("migrations", &self.migrations)
            .finish_non_exhaustive()
    }
}

/// The environment variable that names an app's database when its code does not
/// ([`App::new`]): a SQLite path or a `postgres://` URL.
pub const DATABASE_ENV: &str = "FLUXON_DATABASE_URL";

impl App {
    /// An app named `name`, with its migrations in `./migrations` and its database where
    /// [`DATABASE_ENV`] (`FLUXON_DATABASE_URL`) says, if it is set (so one build serves SQLite
    /// in development and PostgreSQL in production), else in `{name}.sqlite3`.
    /// [`database`](Self::database) overrides both.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let database = std::env::var_os(DATABASE_ENV)
            .filter(|place| !place.is_empty())
            .map_or_else(|| PathBuf::from(format!("{name}.sqlite3")), PathBuf::from);
        App {
            database,
            migrations: PathBuf::from("migrations"),
            name,
            models: Vec::new(),
            server: None,
        }
    }

    /// The app's models (their `SCHEMA`s, [`models!`](crate::models)), in any order: the
    /// commands put referenced tables first.
    pub fn models(mut self, models: &[TableSchema]) -> Self {
        self.models.extend_from_slice(models);
        self
    }

    /// The database: a SQLite file, or a PostgreSQL server's `postgres://` URL
    /// ([`Location`] tells which).
    pub fn database(mut self, path: impl Into<PathBuf>) -> Self {
        self.database = path.into();
        self
    }

    /// Where the app's database is (a SQLite path, or a `postgres://` URL).
    pub fn database_place(&self) -> &std::path::Path {
        &self.database
    }

    /// The migrations folder.
    pub fn migrations(mut self, dir: impl Into<PathBuf>) -> Self {
        self.migrations = dir.into();
        self
    }

    /// How to build the server, given the opened (and drift-checked) database.
    pub fn serve_with<F>(mut self, build: F) -> Self
    where
        F: FnOnce(AsyncDatabase) -> Result<AsyncServer, Box<dyn std::error::Error + Send + Sync>>
            + 'static,
    {
        self.server = Some(Box::new(build));
        self
    }
}

#[derive(Parser)]
#[command(about = "A fluxon app: serve it, or manage its migrations")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the app (the default): refuses a database that does not match the models.
    Serve,
    /// Write the next migration if the models changed.
    Makemigrations {
        /// The migration's name (default: made from its operations).
        #[arg(long)]
        name: Option<String>,
        /// Write nothing; fail if the models have changes no migration records.
        #[arg(long)]
        check: bool,
        /// Write an empty migration, for SQL of your own.
        #[arg(long)]
        empty: bool,
    },
    /// Apply pending migrations.
    Migrate {
        /// Stop after this version.
        #[arg(long)]
        to: Option<u32>,
    },
    /// List migrations and whether each is applied.
    Showmigrations,
    /// Print a migration's SQL.
    Sqlmigrate {
        /// Its version.
        version: u32,
        /// The backend whose SQL to print (default: the app database's).
        #[arg(long, value_enum)]
        backend: Option<Backend>,
    },
}

/// A backend, as `sqlmigrate --backend` names it.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The arguments did not parse (or help was asked for; its text is the message).
    #[error("{0}")]
    Usage(String),
    /// A migration command failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// The database could not be opened.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// The app has no server to serve.
    #[error("this app has no server: give App::serve_with a builder")]
    NoServer,
    /// The server could not be built or run.
    #[error("serve: {0}")]
    Serve(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// Runs the command on this process's arguments; prints errors; the exit code says how it went.
pub fn run(app: App) -> ExitCode {
    let mut out = std::io::stdout();
    match run_with(app, std::env::args(), &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(text)) => {
            let _ = writeln!(out, "{text}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command in `args` (the first is the program's name), writing its output to `out`.
pub fn run_with(
    app: App,
    args: impl IntoIterator<Item = String>,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let args = Args::try_parse_from(args).map_err(|e| CliError::Usage(e.to_string()))?;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdin());
    match args.command.unwrap_or(Command::Serve) {
        Command::Makemigrations { name, check, empty } => {
            if check {
                migrate::check(&app.migrations, &app.models)?;
                writeln!(out, "No changes: the migrations match the models.")?;
                return Ok(());
            }
            let written = if empty {
                Some(migrate::make_empty_migration(
                    &app.migrations,
                    &app.models,
                    name.as_deref(),
                )?)
            } else {
                let mut terminal = TerminalQuestions;
                let questions: &mut dyn Questioner = if interactive {
                    &mut terminal
                } else {
                    &mut NoQuestions
                };
                migrate::make_migrations(&app.migrations, &app.models, name.as_deref(), questions)?
            };
            match written {
                Some(written) => {
                    writeln!(out, "Wrote {}", written.path.display())?;
                    for operation in &written.operations {
                        writeln!(out, "  - {operation}")?;
                    }
                }
                None => writeln!(out, "No changes detected.")?,
            }
        }
        Command::Migrate { to } => {
            let applied = migrate::apply(&app.database, &app.migrations, to)?;
            if applied.is_empty() {
                writeln!(out, "No migrations to apply.")?;
            }
            for (version, name) in applied {
                writeln!(out, "Applied V{version}__{name}")?;
            }
        }
        Command::Showmigrations => {
            for (migration, applied) in migrate::status(&app.database, &app.migrations)? {
                let mark = if applied { "X" } else { " " };
                writeln!(out, "[{mark}] {}", migration.file_stem())?;
            }
        }
        Command::Sqlmigrate { version, backend } => {
            let dialect = match backend {
                Some(Backend::Sqlite) => Dialect::Sqlite,
                Some(Backend::Postgres) => Dialect::Postgres,
                None => Location::of(&app.database).dialect(),
            };
            write!(
                out,
                "{}",
                migrate::sql_of(&app.migrations, version, dialect)?
            )?;
        }
        Command::Serve => serve(app, interactive, out)?,
    }
    Ok(())
}

fn serve(app: App, interactive: bool, out: &mut dyn Write) -> Result<(), CliError> {
    migrate::check_drift(&app.database, &app.models)?;
    let build = app.server.ok_or(CliError::NoServer)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let db = AsyncDatabase::open(&app.database)?;
        let server = build(db).map_err(|e| CliError::Serve(e.to_string()))?;
        let running = server
            .start()
            .await
            .map_err(|e| CliError::Serve(e.to_string()))?;
        writeln!(out, "{} serving on {}", app.name, running.local_addr())?;
        let handle = running.handle();
        if interactive {
            console::spawn(console::Console {
                server: handle.clone(),
                models: app.models,
                database: app.database,
                migrations: app.migrations,
            });
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = handle.shutdown_requested() => {}
        }
        running.shutdown().await;
        Ok(())
    })
}
