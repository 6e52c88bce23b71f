//! Applying migrations with refinery, on a connection whose foreign-key enforcement is switched off
//! around each migration's transaction (`PRAGMA foreign_keys` is a no-op inside one) and whose
//! foreign keys are all checked before the transaction commits: a table rebuild never fires
//! `ON DELETE CASCADE` on child rows, and never leaves a dangling reference.

use std::path::Path;

use refinery_core::traits::sync::{Migrate, Query, Transaction};
use refinery_core::{Migration, Runner, Target};
use rusqlite::Connection;

use super::files::MigrationFile;
use super::MigrateError;

/// refinery's history table.
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// Why one migration's transaction was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// SQLite refused a statement.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// `PRAGMA foreign_key_check` found rows pointing nowhere.
    #[error("foreign key check failed after the migration: {0}")]
    ForeignKeys(String),
}

/// A connection that refinery drives through our transaction handling.
struct Migrating<'c>(&'c mut Connection);

impl Migrating<'_> {
    fn in_transaction<T>(
        &mut self,
        body: impl FnOnce(&Connection) -> Result<T, StepError>,
    ) -> Result<T, StepError> {
        let conn = &*self.0;
        // Outside any transaction, where this pragma takes effect.
        conn.execute_batch("PRAGMA foreign_keys = OFF")?;
        let result = (|| {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            let value = body(conn)?;
            foreign_key_check(conn)?;
            conn.execute_batch("COMMIT")?;
            Ok(value)
        })();
        if result.is_err() && !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        conn.execute_batch("PRAGMA foreign_keys = ON")?;
        result
    }
}

fn foreign_key_check(conn: &Connection) -> Result<(), StepError> {
    let mut statement = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = statement.query([])?;
    let mut problems = Vec::new();
    while let Some(row) = rows.next()? {
        let table: String = row.get(0)?;
        let rowid: Option<i64> = row.get(1)?;
        let parent: String = row.get(2)?;
        problems.push(format!(
            "{table} row {} refers to a missing {parent}",
            rowid.unwrap_or(-1)
        ));
        if problems.len() == 5 {
            break;
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StepError::ForeignKeys(problems.join("; ")))
    }
}

impl Transaction for Migrating<'_> {
    type Error = StepError;

    fn execute<'a, T: Iterator<Item = &'a str>>(&mut self, queries: T) -> Result<usize, StepError> {
        self.in_transaction(|conn| {
            let mut count = 0;
            for query in queries {
                conn.execute_batch(query)?;
                count += 1;
            }
            Ok(count)
        })
    }
}

impl Query<Vec<Migration>> for Migrating<'_> {
    fn query(&mut self, query: &str) -> Result<Vec<Migration>, StepError> {
        let mut statement = self.0.prepare(query)?;
        let mut rows = statement.query([])?;
        let mut applied = Vec::new();
        while let Some(row) = rows.next()? {
            let version: i32 = row.get(0)?;
            let name: String = row.get(1)?;
            let applied_on: String = row.get(2)?;
            let checksum: String = row.get(3)?;
            let applied_on = time::OffsetDateTime::parse(
                &applied_on,
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|e| StepError::ForeignKeys(format!("bad date in the history table: {e}")))?;
            let checksum = checksum.parse::<u64>().map_err(|e| {
                StepError::ForeignKeys(format!("bad checksum in the history table: {e}"))
            })?;
            applied.push(Migration::applied(version, name, applied_on, checksum));
        }
        Ok(applied)
    }
}

impl Migrate for Migrating<'_> {}

fn refinery_migrations(files: &[MigrationFile]) -> Result<Vec<Migration>, MigrateError> {
    files
        .iter()
        .map(|f| {
            Migration::unapplied(&f.file_stem(), &f.sql)
                .map_err(|e| MigrateError::Refinery(e.to_string()))
        })
        .collect()
}

/// Applies the pending migrations (up to `to`, if given) to the database at `path`; returns the
/// versions and names applied, in order. A migration that differs from the one applied under the
/// same version, or a missing one, is refused.
pub fn migrate(
    path: &Path,
    files: &[MigrationFile],
    to: Option<u32>,
) -> Result<Vec<(u32, String)>, MigrateError> {
    let mut conn = crate::db::open_connection(path, false)?;
    let migrations = refinery_migrations(files)?;
    let runner = Runner::new(&migrations)
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .set_grouped(false);
    let mut runner = match to {
        Some(version) => runner.set_target(Target::Version(version as _)),
        None => runner,
    };
    runner.set_migration_table_name(HISTORY_TABLE);
    let report = runner
        .run(&mut Migrating(&mut conn))
        .map_err(|e| MigrateError::Refinery(explain(&e)))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| (u32::try_from(m.version()).unwrap_or(0), m.name().to_owned()))
        .collect())
}

fn explain(error: &refinery_core::Error) -> String {
    use refinery_core::error::Kind;
    match error.kind() {
        Kind::DivergentVersion(applied, file) => format!(
            "migration V{}__{} was applied, but the file with that version is now V{}__{} (or its text changed): migrations that ran must not be edited; add a new one instead",
            applied.version(),
            applied.name(),
            file.version(),
            file.name()
        ),
        Kind::MissingVersion(applied) => format!(
            "migration V{}__{} was applied to this database but its file is missing from the migrations folder",
            applied.version(),
            applied.name()
        ),
        _ => error.to_string(),
    }
}

/// The versions applied to the database at `path` (empty when it has no history table).
pub fn applied(path: &Path) -> Result<Vec<u32>, MigrateError> {
    let conn = crate::db::open_connection(path, false)?;
    let exists: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [HISTORY_TABLE],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(crate::db::DbError::from)?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut statement = conn
        .prepare(&format!(
            "SELECT version FROM {HISTORY_TABLE} ORDER BY version"
        ))
        .map_err(crate::db::DbError::from)?;
    let versions = statement
        .query_map([], |r| r.get::<_, u32>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(crate::db::DbError::from)?;
    Ok(versions)
}
