//! Migrations: snapshots of the models' schema kept in each migration file, the autodetector that
//! diffs the history against the models, SQL for every change (with SQLite table rebuilds that
//! keep every row), a refinery runner that applies them safely, and the drift check.
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

mod diff;
mod drift;
mod files;
mod runner;
mod snapshot;
mod sql;

use std::path::{Path, PathBuf};

pub use diff::{diff, NoQuestions, Operation, Questioner, Source};
pub use files::{history_schema, list, MigrationFile};
pub use runner::HISTORY_TABLE;

use crate::db::TableSchema;

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
    /// The database does not match the models.
    #[error("the database {path} does not match the models:\n  {}\nrun `cargo run -- migrate` (and `cargo run -- makemigrations` first if the models changed)", .differences.join("\n  "))]
    Drift {
        /// The database file.
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
    let statements: Vec<String> = operations.iter().flat_map(sql::statements).collect();
    let version = history.last().map_or(1, |m| m.version + 1);
    let name = match name {
        Some(name) => sanitize(name),
        None if empty => "custom".to_owned(),
        None => files::suggest_name(history.is_empty(), &descriptions),
    };
    // An empty migration keeps the history's schema: the models may have moved on without it.
    let schema = if empty { previous.as_slice() } else { models };
    let text = files::render(version, &name, &descriptions, &statements, schema)?;
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

/// Applies the pending migrations in `dir` to the database at `database` (up to version `to`).
pub fn apply(
    database: &Path,
    dir: &Path,
    to: Option<u32>,
) -> Result<Vec<(u32, String)>, MigrateError> {
    let history = files::list(dir)?;
    runner::migrate(database, &history, to)
}

/// Every migration in `dir`, with whether it is applied to the database at `database`.
pub fn status(database: &Path, dir: &Path) -> Result<Vec<(MigrationFile, bool)>, MigrateError> {
    let applied = runner::applied(database)?;
    Ok(files::list(dir)?
        .into_iter()
        .map(|m| {
            let done = applied.contains(&m.version);
            (m, done)
        })
        .collect())
}

/// The SQL of migration `version` in `dir`.
pub fn sql_of(dir: &Path, version: u32) -> Result<String, MigrateError> {
    files::list(dir)?
        .into_iter()
        .find(|m| m.version == version)
        .map(|m| m.sql)
        .ok_or_else(|| {
            MigrateError::Refinery(format!(
                "no migration with version {version} in {}",
                dir.display()
            ))
        })
}

/// Refuses a database whose tables do not match the models (run before serving).
pub fn check_drift(database: &Path, models: &[TableSchema]) -> Result<(), MigrateError> {
    let conn = crate::db::open_connection(database, false)?;
    let differences = drift::differences(&conn, models)?;
    if differences.is_empty() {
        Ok(())
    } else {
        Err(MigrateError::Drift {
            path: database.to_owned(),
            differences,
        })
    }
}
