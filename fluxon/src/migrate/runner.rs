//! Applying migrations with refinery, one transaction per migration holding its SQL and its row
//! in the history table, on either backend.
//!
//! On SQLite, foreign-key enforcement is switched off around each migration's transaction
//! (`PRAGMA foreign_keys` is a no-op inside one) and every foreign key is checked before the
//! transaction commits: a table rebuild never fires `ON DELETE CASCADE` on child rows, and never
//! leaves a dangling reference. On PostgreSQL, DDL is transactional and fluxon's foreign keys are
//! deferred to the commit, which checks them.
//!
//! refinery hands the runner every pending migration at once (its "grouped" mode); the runner
//! still commits them one by one, so a failing migration leaves the ones before it applied.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use refinery_core::traits::sync::{Migrate, Query, Transaction};
use refinery_core::{Migration, Runner, Target};

use crate::db::postgres::PgConnection;
use crate::db::{Conn, DbError, Dialect, Location};

use super::files::MigrationFile;
use super::MigrateError;

/// refinery's history table.
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// The PostgreSQL advisory lock `migrate` holds while it runs (a constant of its own).
const MIGRATION_LOCK: i64 = 0x666c_7578_6d69_6772;

/// Why one migration's transaction was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StepError {
    /// The database refused a statement.
    #[error(transparent)]
    Db(#[from] DbError),
    /// `PRAGMA foreign_key_check` found rows pointing nowhere.
    #[error("foreign key check failed after the migration: {0}")]
    ForeignKeys(String),
    /// The history table holds something refinery did not write.
    #[error("bad {0} in the history table")]
    History(String),
    /// A migration failed (what failed inside it is the source).
    #[error("{migration} failed: {source}")]
    In {
        /// The migration.
        migration: String,
        /// Why.
        source: Box<StepError>,
    },
}

/// A database migrations are applied to: a SQLite file or a PostgreSQL server.
pub(crate) enum Store {
    Sqlite(rusqlite::Connection),
    Postgres(Box<RefCell<PgConnection>>),
}

impl Store {
    /// Opens the database at `database` (a path, or a `postgres://` URL).
    pub(crate) fn open(database: &Path) -> Result<Store, MigrateError> {
        Ok(match Location::of(database) {
            Location::Postgres(url) => {
                Store::Postgres(Box::new(RefCell::new(PgConnection::connect(&url)?)))
            }
            Location::Sqlite(path) => Store::Sqlite(crate::db::open_connection(&path, false)?),
        })
    }

    pub(crate) fn conn(&self) -> Conn<'_> {
        match self {
            Store::Sqlite(conn) => Conn::sqlite(conn),
            Store::Postgres(conn) => Conn::postgres(conn),
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        self.conn().dialect()
    }

    /// Runs `body` in a transaction of its own, checking every foreign key before committing.
    fn in_transaction(
        &self,
        body: impl FnOnce(Conn<'_>) -> Result<(), StepError>,
    ) -> Result<(), StepError> {
        let conn = self.conn();
        let sqlite = matches!(self, Store::Sqlite(_));
        if sqlite {
            // Outside any transaction, where this pragma takes effect.
            conn.batch("PRAGMA foreign_keys = OFF")?;
        }
        let result = (|| {
            conn.batch(if sqlite { "BEGIN IMMEDIATE" } else { "BEGIN" })?;
            body(conn)?;
            if sqlite {
                foreign_key_check(conn)?;
            }
            conn.batch("COMMIT")?;
            Ok(())
        })();
        if result.is_err() {
            let _ = conn.batch("ROLLBACK");
        }
        if sqlite {
            conn.batch("PRAGMA foreign_keys = ON")?;
        }
        result
    }
}

fn foreign_key_check(conn: Conn<'_>) -> Result<(), StepError> {
    let problems = conn.rows(
        "SELECT \"table\", rowid, parent FROM pragma_foreign_key_check LIMIT 5",
        [],
        |row| {
            let text = |i| -> Result<String, DbError> {
                Ok(row.get_ref(i)?.as_str().unwrap_or("?").to_owned())
            };
            let rowid = row.get_ref(1)?.as_i64().unwrap_or(-1);
            Ok(format!(
                "{} row {rowid} refers to a missing {}",
                text(0)?,
                text(2)?
            ))
        },
    )?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(StepError::ForeignKeys(problems.join("; ")))
    }
}

/// refinery's view of a store: the migrations' file texts (what refinery checksums) stand for
/// the SQL each runs on this backend.
struct Migrating<'s> {
    store: &'s Store,
    /// File text -> (name, this backend's SQL).
    rendered: HashMap<&'s str, (String, String)>,
}

impl Transaction for Migrating<'_> {
    type Error = StepError;

    fn execute<'a, T: Iterator<Item = &'a str>>(&mut self, queries: T) -> Result<usize, StepError> {
        let mut queries = queries.peekable();
        let mut count = 0;
        while let Some(query) = queries.next() {
            match self.rendered.get(query) {
                Some((name, sql)) => {
                    // The history row refinery writes next goes in the same transaction.
                    let record = queries.next_if(|q| !self.rendered.contains_key(q));
                    self.store
                        .in_transaction(|conn| {
                            conn.batch(sql)?;
                            if let Some(record) = record {
                                conn.batch(record)?;
                            }
                            Ok(())
                        })
                        .map_err(|source| StepError::In {
                            migration: name.clone(),
                            source: Box::new(source),
                        })?;
                    count += 1 + usize::from(record.is_some());
                }
                None => {
                    self.store.in_transaction(|conn| Ok(conn.batch(query)?))?;
                    count += 1;
                }
            }
        }
        Ok(count)
    }
}

impl Query<Vec<Migration>> for Migrating<'_> {
    fn query(&mut self, query: &str) -> Result<Vec<Migration>, StepError> {
        let rows = self.store.conn().rows(query, [], |row| {
            let text = |i| -> Result<String, DbError> {
                Ok(row.get_ref(i)?.as_str().unwrap_or_default().to_owned())
            };
            Ok((row.integer(0, "version")?, text(1)?, text(2)?, text(3)?))
        })?;
        let mut applied = Vec::new();
        for (version, name, applied_on, checksum) in rows {
            let version = i32::try_from(version)
                .map_err(|_| StepError::History(format!("version {version}")))?;
            let applied_on = time::OffsetDateTime::parse(
                &applied_on,
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|e| StepError::History(format!("date ({e})")))?;
            let checksum = checksum
                .parse::<u64>()
                .map_err(|e| StepError::History(format!("checksum ({e})")))?;
            applied.push(Migration::applied(version, name, applied_on, checksum));
        }
        Ok(applied)
    }
}

impl Migrate for Migrating<'_> {}

/// Applies the pending migrations (up to `to`, if given) to the database at `database` (a path,
/// or a `postgres://` URL); returns the versions and names applied, in order. A migration that
/// differs from the one applied under the same version, or a missing one, is refused.
pub fn migrate(
    database: &Path,
    files: &[MigrationFile],
    to: Option<u32>,
) -> Result<Vec<(u32, String)>, MigrateError> {
    let store = Store::open(database)?;
    let dialect = store.dialect();
    if dialect == Dialect::Postgres {
        // Two nodes deploying at once: the second waits for the first, then finds nothing left
        // to apply. (SQLite's BEGIN IMMEDIATE already puts migrations one after the other.)
        // Released when the connection closes, at the end of this call.
        store
            .conn()
            .batch(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    }
    let done = applied_on(&store)?;
    let mut rendered = HashMap::new();
    let mut migrations = Vec::new();
    // A pending migration with no SQL for this backend: the ones before it are applied, then
    // its error is returned.
    let mut refused = None;
    for (index, file) in files.iter().enumerate() {
        // refinery checksums the file's whole text, whichever backend runs it.
        migrations.push(
            Migration::unapplied(&file.file_stem(), &file.sql)
                .map_err(|e| MigrateError::Refinery(e.to_string()))?,
        );
        let pending = !done.contains(&file.version) && to.is_none_or(|to| file.version <= to);
        if pending && refused.is_none() {
            match super::backends::sql_for(files, index, dialect) {
                Ok(sql) => {
                    rendered.insert(file.sql.as_str(), (file.file_stem(), sql));
                }
                Err(err) => refused = Some((file.version, err)),
            }
        }
    }
    let to = match &refused {
        Some((version, _)) => Some(to.map_or(version - 1, |to| to.min(version - 1))),
        None => to,
    };
    let runner = Runner::new(&migrations)
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .set_grouped(true);
    let mut runner = match to {
        Some(version) => runner.set_target(Target::Version(version as _)),
        None => runner,
    };
    runner.set_migration_table_name(HISTORY_TABLE);
    let report = runner
        .run(&mut Migrating {
            store: &store,
            rendered,
        })
        .map_err(|e| MigrateError::Refinery(explain(&e)))?;
    if let Some((_, err)) = refused {
        return Err(err);
    }
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

/// The versions applied to the database at `database` (empty when it has no history table).
pub fn applied(database: &Path) -> Result<Vec<u32>, MigrateError> {
    applied_on(&Store::open(database)?)
}

fn applied_on(store: &Store) -> Result<Vec<u32>, MigrateError> {
    let conn = store.conn();
    let exists = match store {
        Store::Sqlite(_) => conn.first(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            [crate::db::Value::from(HISTORY_TABLE)],
            |r| r.integer(0, "count"),
        )?,
        Store::Postgres(_) => conn.first(
            "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = ?",
            [crate::db::Value::from(HISTORY_TABLE)],
            |r| r.integer(0, "count"),
        )?,
    };
    if exists.unwrap_or(0) == 0 {
        return Ok(Vec::new());
    }
    let versions = conn.rows(
        &format!("SELECT version FROM {HISTORY_TABLE} ORDER BY version"),
        [],
        |r| r.integer(0, "version"),
    )?;
    Ok(versions
        .into_iter()
        .filter_map(|v| u32::try_from(v).ok())
        .collect())
}
