//! Drift: does the live database have the tables the models describe? Both sides are read the
//! same way, with SQLite's own PRAGMAs: the live file, and a scratch in-memory database made from
//! the models.

use rusqlite::Connection;

use crate::db::TableSchema;

use super::MigrateError;

/// What SQLite says about one table: columns (name, type, not null, default, primary key),
/// foreign keys (column, table, column, on delete) and the column lists of its indexes.
#[derive(Debug, PartialEq)]
struct Shape {
    columns: Vec<(String, String, bool, Option<String>, i64)>,
    foreign_keys: Vec<(String, String, String, String)>,
    indexes: Vec<Vec<String>>,
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
        columns.push((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
        ));
    }
    let mut foreign_keys = Vec::new();
    let mut statement = conn.prepare(
        "SELECT \"from\", \"table\", \"to\", on_delete FROM pragma_foreign_key_list(?1)",
    )?;
    let mut rows = statement.query([table])?;
    while let Some(row) = rows.next()? {
        foreign_keys.push((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?));
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
        indexes.push(columns);
    }
    indexes.sort();
    Ok(Some(Shape {
        columns,
        foreign_keys,
        indexes,
    }))
}

/// The differences between the database on `conn` and `models`, one line each (empty: no drift).
pub fn differences(conn: &Connection, models: &[TableSchema]) -> Result<Vec<String>, MigrateError> {
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
        match (expected, actual) {
            (_, None) => out.push(format!("table {} is missing", table.name)),
            (Some(expected), Some(actual)) if expected != actual => {
                for column in &expected.columns {
                    match actual.columns.iter().find(|c| c.0 == column.0) {
                        None => out.push(format!("column {}.{} is missing", table.name, column.0)),
                        Some(found) if found != column => {
                            out.push(format!("column {}.{} differs", table.name, column.0))
                        }
                        Some(_) => {}
                    }
                }
                for column in &actual.columns {
                    if !expected.columns.iter().any(|c| c.0 == column.0) {
                        out.push(format!(
                            "column {}.{} is not in the models",
                            table.name, column.0
                        ));
                    }
                }
                if expected.foreign_keys != actual.foreign_keys {
                    out.push(format!("foreign keys of {} differ", table.name));
                }
                if expected.indexes != actual.indexes {
                    out.push(format!(
                        "indexes or unique constraints of {} differ",
                        table.name
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(out)
}
