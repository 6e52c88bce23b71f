//! Drift: does the live database have the tables the models describe? Both sides are read the
//! same way, from the database's own catalog: on SQLite with its PRAGMAs, the live file and a
//! scratch in-memory database made from the models; on PostgreSQL (`drift_postgres`) from
//! `pg_catalog`, the live tables and temporary ones made from the models in a transaction that
//! is rolled back.

use rusqlite::Connection;

use crate::db::TableSchema;

use super::runner::Store;
use super::MigrateError;

/// What the catalog says about one table, each part as text the two sides compare: columns
/// (name, then type, not null, default, key), foreign keys, indexes (with their columns) and,
/// where the catalog tells them, CHECK constraints.
#[derive(Debug, PartialEq)]
pub(crate) struct Shape {
    pub(crate) columns: Vec<(String, String)>,
    pub(crate) foreign_keys: Vec<String>,
    pub(crate) indexes: Vec<String>,
    pub(crate) checks: Vec<String>,
}

/// The differences between the database in `store` and `models`, one line each (empty: no
/// drift).
pub(crate) fn differences(
    store: &Store,
    models: &[TableSchema],
) -> Result<Vec<String>, MigrateError> {
    match store {
        Store::Sqlite(conn) => sqlite_differences(conn, models),
        Store::Postgres(_) => super::drift_postgres::differences(store.conn(), models),
    }
}

fn shape(conn: &Connection, table: &str) -> Result<Option<Shape>, rusqlite::Error> {
    let exists: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    if exists == 0 {
        return Ok(None);
    }
    let mut columns = Vec::new();
    let mut statement =
        conn.prepare("SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1)")?;
    let mut rows = statement.query([table])?;
    while let Some(row) = rows.next()? {
        let kind: String = row.get(1)?;
        let not_null: bool = row.get(2)?;
        let default: Option<String> = row.get(3)?;
        let key: i64 = row.get(4)?;
        columns.push((
            row.get(0)?,
            format!("{kind} not null {not_null} default {default:?} key {key}"),
        ));
    }
    let mut foreign_keys = Vec::new();
    let mut statement = conn.prepare(
        "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list(?1)",
    )?;
    let mut rows = statement.query([table])?;
    while let Some(row) = rows.next()? {
        let (from, table, to, on_delete): (String, String, String, String) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        foreign_keys.push(format!("{from} -> {table}.{to} on delete {on_delete}"));
    }
    foreign_keys.sort();
    let mut indexes = Vec::new();
    let mut statement = conn.prepare("SELECT name FROM pragma_index_list(?1)")?;
    let names: Vec<String> = statement
        .query_map([table], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for index in names {
        let mut statement =
            conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")?;
        let columns: Vec<String> = statement
            .query_map([&index], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        indexes.push(columns.join(", "));
    }
    indexes.sort();
    Ok(Some(Shape {
        columns,
        foreign_keys,
        indexes,
        checks: Vec::new(),
    }))
}

fn sqlite_differences(
    conn: &Connection,
    models: &[TableSchema],
) -> Result<Vec<String>, MigrateError> {
    let scratch = Connection::open_in_memory().map_err(crate::db::DbError::from)?;
    for table in models {
        for statement in table.create_sql() {
            scratch
                .execute_batch(&statement)
                .map_err(crate::db::DbError::from)?;
        }
    }
    let mut out = Vec::new();
    for table in models {
        let expected = shape(&scratch, table.name).map_err(crate::db::DbError::from)?;
        let actual = shape(conn, table.name).map_err(crate::db::DbError::from)?;
        compare(table.name, expected, actual, &mut out);
    }
    Ok(out)
}

/// Adds a line to `out` for each way `actual` (the live table, if it exists) differs from
/// `expected` (the models').
pub(crate) fn compare(
    table: &str,
    expected: Option<Shape>,
    actual: Option<Shape>,
    out: &mut Vec<String>,
) {
    let (expected, actual) = match (expected, actual) {
        (Some(expected), Some(actual)) => (expected, actual),
        (Some(_), None) => return out.push(format!("table {table} is missing")),
        (None, _) => return,
    };
    if expected == actual {
        return;
    }
    for column in &expected.columns {
        match actual.columns.iter().find(|c| c.0 == column.0) {
            None => out.push(format!("column {table}.{} is missing", column.0)),
            Some(found) if found != column => out.push(format!(
                "column {table}.{} differs (the models: {}; the database: {})",
                column.0, column.1, found.1
            )),
            Some(_) => {}
        }
    }
    for column in &actual.columns {
        if !expected.columns.iter().any(|c| c.0 == column.0) {
            out.push(format!("column {table}.{} is not in the models", column.0));
        }
    }
    if expected.foreign_keys != actual.foreign_keys {
        out.push(format!("foreign keys of {table} differ"));
    }
    if expected.indexes != actual.indexes {
        out.push(format!("indexes or unique constraints of {table} differ"));
    }
    if expected.checks != actual.checks {
        out.push(format!("CHECK constraints of {table} differ"));
    }
}
