//! Migrations: snapshots of the models' schema kept in each migration file, the autodetector that
//! diffs the history against the models, SQL for every change on each backend (SQLite table
//! rebuilds that keep every row, PostgreSQL ALTERs), a refinery runner that applies them safely,
//! and the drift check.
//!
//! One history serves both backends: each file holds a section of SQL per backend, and
//! [`apply`], [`status`] and [`check_drift`] take a SQLite path or a `postgres://` URL
//! ([`Location`](crate::db::Location) tells which). How files written before sections existed
//! reach PostgreSQL is in `backends`' docs: their operations are made again from their schema
//! lines.
//!
//! ```no_run
//! # use fluxon::db::{Model, TableSchema};
//! # fn models() -> Vec<TableSchema> { vec![] }
//! use fluxon::migrate::{self, NoQuestions};
//!
//! let dir = std::path::Path::new("migrations");
//! // makemigrations: write the next V{n}__{name}.sql if the models changed
//! let written = migrate::make_migrations(dir, &models(), None, &mut NoQuestions)?;
//! // migrate: apply what is pending
//! let applied = migrate::apply(std::path::Path::new("app.sqlite3"), dir, None)?;
//! # Ok::<(), fluxon::migrate::MigrateError>(())
//! ```
//!
//! What this module does not own: the models and their schema (`db`), the commands (`cli`).

mod alter;
mod backends;
mod diff;
mod drift;
mod drift_postgres;
mod files;
mod runner;
mod snapshot;
mod sql;

use std::path::{Path, PathBuf};

pub use diff::{diff, NoQuestions, Operation, Questioner, Source};
pub use files::{backend_name, history_schema, list, MigrationFile};
pub use runner::HISTORY_TABLE;

use crate::db::{Dialect, TableSchema};

/// What went wrong with migrations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// A file or folder could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Two migration files share a version.
    #[error("two migration files have version {0}")]
    DuplicateVersion(u32),
    /// A migration file lacks the schema line makemigrations writes.
    #[error("{0} has no `-- fluxon-schema:` line (was it written by hand? makemigrations --empty writes one)")]
    NoSnapshot(PathBuf),
    /// The schema line does not parse.
    #[error("bad schema line: {0}")]
    Snapshot(String),
    /// The autodetector needs an answer it cannot get.
    #[error("makemigrations needs an answer: {0}")]
    Ambiguous(String),
    /// The models changed and no migration records it (`makemigrations --check`).
    #[error(
        "the models have changes no migration records:\n{0}\nrun `cargo run -- makemigrations`"
    )]
    Pending(String),
    /// A migration has no SQL for the backend it is to run on.
    #[error("{migration} cannot run on {backend}: {reason}")]
    NoSqlFor {
        /// The migration (`V{n}__{name}`).
        migration: String,
        /// The backend (`sqlite`, `postgres`).
        backend: &'static str,
        /// Why, and what to do.
        reason: String,
    },
    /// The database does not match the models.
    #[error("the database {path} does not match the models:\n  {}\nrun `cargo run -- migrate` (and `cargo run -- makemigrations` first if the models changed)", .differences.join("\n  "))]
    Drift {
        /// The database file (or URL, its password left out).
        path: PathBuf,
        /// What differs.
        differences: Vec<String>,
    },
    /// refinery refused: a divergent or missing migration, or a failing one.
    #[error("migrate: {0}")]
    Refinery(String),
    /// The database could not be opened or read.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

/// The operations from the migration history in `dir` to `models`.
pub fn changes(
    dir: &Path,
    models: &[TableSchema],
    questions: &mut dyn Questioner,
) -> Result<Vec<Operation>, MigrateError> {
    let history = files::list(dir)?;
    diff(&files::history_schema(&history)?, models, questions)
}

/// A migration that was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// Its file.
    pub path: PathBuf,
    /// Its operations, described.
    pub operations: Vec<String>,
}

/// Writes the next migration into `dir` if the models differ from the history (or always, empty,
/// with `empty_name`); `None` when there is nothing to write.
pub fn make_migrations(
    dir: &Path,
    models: &[TableSchema],
    name: Option<&str>,
    questions: &mut dyn Questioner,
) -> Result<Option<Written>, MigrateError> {
    make(dir, models, name, questions, false)
}

/// Writes an empty migration (for SQL of your own) carrying the current schema.
pub fn make_empty_migration(
    dir: &Path,
    models: &[TableSchema],
    name: Option<&str>,
) -> Result<Written, MigrateError> {
    make(dir, models, name, &mut NoQuestions, true)?
        .ok_or_else(|| MigrateError::Snapshot("nothing written".to_owned()))
}

fn make(
    dir: &Path,
    models: &[TableSchema],
    name: Option<&str>,
    questions: &mut dyn Questioner,
    empty: bool,
) -> Result<Option<Written>, MigrateError> {
    let history = files::list(dir)?;
    let previous = files::history_schema(&history)?;
    let operations = if empty {
        Vec::new()
    } else {
        diff(&previous, models, questions)?
    };
    if operations.is_empty() && !empty {
        return Ok(None);
    }
    let descriptions: Vec<String> = operations.iter().map(Operation::describe).collect();
    let sections: Vec<(Dialect, Vec<String>)> = [Dialect::Sqlite, Dialect::Postgres]
        .into_iter()
        .map(|dialect| {
            let statements = operations
                .iter()
                .flat_map(|o| sql::statements(o, dialect))
                .collect();
            (dialect, statements)
        })
        .collect();
    let version = history.last().map_or(1, |m| m.version + 1);
    let name = match name {
        Some(name) => sanitize(name),
        None if empty => "custom".to_owned(),
        None => files::suggest_name(history.is_empty(), &descriptions),
    };
    // An empty migration keeps the history's schema: the models may have moved on without it.
    let schema = if empty { previous.as_slice() } else { models };
    let text = files::render(version, &name, &descriptions, &sections, schema)?;
    std::fs::create_dir_all(dir).map_err(|e| MigrateError::Io(dir.to_owned(), e))?;
    let path = dir.join(format!("V{version}__{name}.sql"));
    std::fs::write(&path, text).map_err(|e| MigrateError::Io(path.clone(), e))?;
    Ok(Some(Written {
        path,
        operations: descriptions,
    }))
}

fn sanitize(name: &str) -> String {
    let cleaned = files::slug(name);
    if cleaned.is_empty() {
        "migration".to_owned()
    } else {
        cleaned
    }
}

/// `makemigrations --check`: an error listing the changes if the models differ from the history.
pub fn check(dir: &Path, models: &[TableSchema]) -> Result<(), MigrateError> {
    // Renames count as changes too: no questions asked, every candidate is reported.
    struct Report;
    impl Questioner for Report {
        fn is_rename(&mut self, _: &str) -> Result<bool, MigrateError> {
            Ok(true)
        }
        fn default_for(&mut self, _: &str, _: &str) -> Result<String, MigrateError> {
            Ok("NULL".to_owned())
        }
    }
    let operations = changes(dir, models, &mut Report)?;
    if operations.is_empty() {
        Ok(())
    } else {
        let lines: Vec<String> = operations
            .iter()
            .map(|o| format!("  {}", o.describe()))
            .collect();
        Err(MigrateError::Pending(lines.join("\n")))
    }
}

/// Applies the pending migrations in `dir` to the database at `database` (a SQLite file, or a
/// `postgres://` URL), up to version `to`.
pub fn apply(
    database: &Path,
    dir: &Path,
    to: Option<u32>,
) -> Result<Vec<(u32, String)>, MigrateError> {
    let history = files::list(dir)?;
    off_runtime(|| runner::migrate(database, &history, to))
}

/// Every migration in `dir`, with whether it is applied to the database at `database`.
pub fn status(database: &Path, dir: &Path) -> Result<Vec<(MigrationFile, bool)>, MigrateError> {
    let applied = off_runtime(|| runner::applied(database))?;
    Ok(files::list(dir)?
        .into_iter()
        .map(|m| {
            let done = applied.contains(&m.version);
            (m, done)
        })
        .collect())
}

/// The SQL migration `version` in `dir` runs on the backend of `dialect` (`sqlmigrate`).
pub fn sql_of(dir: &Path, version: u32, dialect: Dialect) -> Result<String, MigrateError> {
    let history = files::list(dir)?;
    let index = history
        .iter()
        .position(|m| m.version == version)
        .ok_or_else(|| {
            MigrateError::Refinery(format!(
                "no migration with version {version} in {}",
                dir.display()
            ))
        })?;
    backends::sql_for(&history, index, dialect)
}

/// Refuses a database (a SQLite file, or a `postgres://` URL) whose tables do not match the
/// models (run before serving).
pub fn check_drift(database: &Path, models: &[TableSchema]) -> Result<(), MigrateError> {
    let differences = off_runtime(|| {
        let store = runner::Store::open(database)?;
        drift::differences(&store, models)
    })?;
    if differences.is_empty() {
        Ok(())
    } else {
        let shown = match crate::db::Location::of(database) {
            crate::db::Location::Postgres(url) => PathBuf::from(crate::db::postgres::redact(&url)),
            _ => database.to_owned(),
        };
        Err(MigrateError::Drift {
            path: shown,
            differences,
        })
    }
}

/// Runs `work` where a blocking database client may run: here, or on a thread of its own when
/// called from inside a tokio runtime (PostgreSQL's blocking client refuses to run inside one).
fn off_runtime<T: Send>(
    work: impl FnOnce() -> Result<T, MigrateError> + Send,
) -> Result<T, MigrateError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|scope| {
        scope.spawn(work).join().unwrap_or_else(|_| {
            Err(MigrateError::Refinery(
                "the migration thread panicked".to_owned(),
            ))
        })
    })
}
