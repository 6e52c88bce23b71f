//! What a migration runs on each backend. One history serves both: a developer makes migrations
//! on SQLite and deploys on PostgreSQL with the same `migrations/` folder.
//!
//! - A file `makemigrations` writes now holds one section of SQL per backend, both rendered from
//!   the same operations when it is made (the answers to its questions included); each backend
//!   runs its own section. An `--empty` migration's sections are the developer's to fill: a
//!   backend whose section holds no statement refuses the migration, with a message.
//! - A file written before sections existed holds SQLite's SQL alone. SQLite runs it as it is
//!   (its text, and so its checksum, never changes). PostgreSQL runs its operations rendered again
//!   from the schema lines: the one before it and its own, with the renames its header lists. If
//!   that does not give back the operations its header lists (a value typed at a prompt for
//!   existing rows, say), or if it is an `--empty` one with SQL written by hand, PostgreSQL refuses
//!   it and says so: such a history is regenerated for a new PostgreSQL database.

use crate::db::{ColumnSchema, Dialect, TableSchema};

use super::diff::{diff, Questioner};
use super::files::{backend_name, has_statements, MigrationFile, OLD_EMPTY_MARK};
use super::{sql, MigrateError};

/// The SQL the migration at `index` of `history` runs on the backend of `dialect`.
pub fn sql_for(
    history: &[MigrationFile],
    index: usize,
    dialect: Dialect,
) -> Result<String, MigrateError> {
    let file = history.get(index).ok_or_else(|| {
        MigrateError::Refinery(format!("no migration at position {index} of the history"))
    })?;
    let refused = |reason: &str| MigrateError::NoSqlFor {
        migration: file.file_stem(),
        backend: backend_name(dialect),
        reason: reason.to_owned(),
    };
    match file.sections()? {
        Some(sections) => match sections.into_iter().find(|(d, _)| *d == dialect) {
            Some((_, sql)) if has_statements(&sql) => Ok(sql),
            _ => Err(refused(&format!(
                "its `-- fluxon-backend: {}` section holds no statement; write that backend's SQL there",
                backend_name(dialect)
            ))),
        },
        None if dialect == Dialect::Sqlite => Ok(file.sql.clone()),
        None if file.sql.contains(OLD_EMPTY_MARK) => {
            if has_statements(&file.sql) {
                Err(refused(
                    "it was written before migrations had a section per backend, and its SQL is SQLite's, written by hand",
                ))
            } else {
                Ok(String::new())
            }
        }
        None => translate(history, index, dialect).map_err(|why| refused(&why)),
    }
}

/// The operations of a file from before sections, rendered for `dialect` from the schema lines.
fn translate(history: &[MigrationFile], index: usize, dialect: Dialect) -> Result<String, String> {
    let file = &history[index];
    let before = match index.checked_sub(1) {
        Some(previous) => history[previous].schema().map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    let header: Vec<&str> = file
        .sql
        .lines()
        .filter_map(|line| line.strip_prefix("-- * "))
        .collect();
    let after = with_renames(file.schema().map_err(|e| e.to_string())?, &header);
    let mut questions = FromHeader(&header);
    let operations = diff(&before, &after, &mut questions).map_err(|e| e.to_string())?;
    let described: Vec<String> = operations.iter().map(|o| o.describe()).collect();
    if described != header {
        return Err(format!(
            "it was written before migrations had a section per backend, and its operations cannot be made again from its schema line (made again: {described:?}; its header: {header:?})"
        ));
    }
    let mut out = String::new();
    for statement in operations.iter().flat_map(|o| sql::statements(o, dialect)) {
        out.push_str(&statement);
        out.push_str(";\n");
    }
    Ok(out)
}

/// `tables` with the renames the header lists declared (`renamed_from`), as the models declared
/// them when the migration was made: schema lines do not keep them.
fn with_renames(tables: Vec<TableSchema>, header: &[&str]) -> Vec<TableSchema> {
    let renamed_table = |name: &str| {
        header.iter().find_map(|line| {
            let (from, to) = line.strip_prefix("rename table ")?.split_once(" to ")?;
            (to == name).then(|| leak(from))
        })
    };
    let renamed_column = |table: &str, name: &str| {
        header.iter().find_map(|line| {
            let changes = line
                .strip_prefix(&format!("rebuild table {table} (rows kept): "))
                .map(str::to_owned)?;
            changes.split("; ").find_map(|change| {
                let (from, to) = change.strip_prefix("rename column ")?.split_once(" to ")?;
                (to == name).then(|| leak(from))
            })
        })
    };
    tables
        .into_iter()
        .map(|table| {
            let columns: Vec<ColumnSchema> = table
                .columns
                .iter()
                .map(|c| ColumnSchema {
                    renamed_from: renamed_column(table.name, c.name),
                    ..*c
                })
                .collect();
            TableSchema {
                renamed_from: renamed_table(table.name),
                columns: Vec::leak(columns),
                ..table
            }
        })
        .collect()
}

fn leak(text: &str) -> &'static str {
    String::leak(text.to_owned())
}

/// Answers the autodetector from a migration's header: a rename is one the header lists; a
/// value for existing rows was typed at a prompt and is not in the file.
struct FromHeader<'h>(&'h [&'h str]);

impl Questioner for FromHeader<'_> {
    fn is_rename(&mut self, what: &str) -> Result<bool, MigrateError> {
        // "was table a renamed to b" / "was t.a renamed to b"
        let listed = |line: &&str| {
            let Some(rest) = what.strip_prefix("was ") else {
                return false;
            };
            let Some((from, to)) = rest.split_once(" renamed to ") else {
                return false;
            };
            let from = from.rsplit('.').next().unwrap_or(from);
            line.contains(&format!(
                "rename table {} to {to}",
                from.trim_start_matches("table ")
            )) || line.contains(&format!("rename column {from} to {to}"))
        };
        Ok(self.0.iter().any(listed))
    }

    fn default_for(&mut self, table: &str, column: &str) -> Result<String, MigrateError> {
        Err(MigrateError::Ambiguous(format!(
            "the value given at a prompt for existing rows of {table}.{column} is not kept in the file"
        )))
    }
}
