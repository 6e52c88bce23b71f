//! Drift on PostgreSQL: the live tables (in the connection's current schema) are read from
//! `pg_catalog`, and so are the tables the models describe, made as temporary tables inside a
//! transaction that is then rolled back. Both sides come out of the same catalog queries, so no
//! type name or default expression is spelled out by hand to match PostgreSQL's own. Columns are
//! compared by name, not position: PostgreSQL adds a column at the end of its table.

use crate::db::{Conn, DbError, Dialect, TableSchema, Value};

use super::drift::{compare, Shape};
use super::MigrateError;

/// The namespace of the live tables, and of the temporary ones.
const LIVE: &str = "(SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = current_schema())";
const SCRATCH: &str = "pg_catalog.pg_my_temp_schema()";

/// The differences between the database on `conn` and `models`, one line each.
pub(crate) fn differences(
    conn: Conn<'_>,
    models: &[TableSchema],
) -> Result<Vec<String>, MigrateError> {
    let models = crate::db::in_reference_order(models)?;
    let mut live = Vec::new();
    for table in &models {
        live.push(shape(conn, LIVE, table.name)?);
    }
    conn.begin()?;
    let expected = scratch_shapes(conn, &models);
    conn.end(false)?;
    let expected = expected?;
    let mut out = Vec::new();
    for ((table, expected), actual) in models.iter().zip(expected).zip(live) {
        compare(table.name, expected, actual, &mut out);
    }
    Ok(out)
}

/// The models' tables, made as temporary tables, as the catalog sees them.
fn scratch_shapes(conn: Conn<'_>, models: &[TableSchema]) -> Result<Vec<Option<Shape>>, DbError> {
    for table in models {
        for statement in Dialect::Postgres.create_table(table) {
            // Unqualified names resolve to temporary tables first, so the indexes and foreign
            // keys of these land on them too.
            let statement =
                statement.replacen("CREATE TABLE IF NOT EXISTS", "CREATE TEMP TABLE", 1);
            conn.batch(&statement)?;
        }
    }
    models
        .iter()
        .map(|table| shape(conn, SCRATCH, table.name))
        .collect()
}

/// Every value of a query's one text column.
fn texts(conn: Conn<'_>, sql: &str) -> Result<Vec<String>, DbError> {
    conn.rows(sql, [], |row| {
        Ok(row.get_ref(0)?.as_str().unwrap_or_default().to_owned())
    })
}

/// What the catalog says about `table` in `namespace` (`None`: no such table).
fn shape(conn: Conn<'_>, namespace: &str, table: &str) -> Result<Option<Shape>, DbError> {
    let oid = conn.first(
        &format!(
            "SELECT c.oid::bigint FROM pg_catalog.pg_class c \
             WHERE c.relname::text = ? AND c.relkind IN ('r', 'p') AND c.relnamespace = {namespace}"
        ),
        [Value::from(table)],
        |row| row.integer(0, "oid"),
    )?;
    let Some(oid) = oid else {
        return Ok(None);
    };
    let columns = conn.rows(
        &format!(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
             || ' not null ' || a.attnotnull::text \
             || ' default ' || coalesce(pg_get_expr(d.adbin, d.adrelid), 'none') \
             || ' identity ' || a.attidentity::text \
             FROM pg_catalog.pg_attribute a \
             LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = {oid} AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1"
        ),
        [],
        |row| {
            let text = |i| -> Result<String, DbError> {
                Ok(row.get_ref(i)?.as_str().unwrap_or_default().to_owned())
            };
            Ok((text(0)?, text(1)?))
        },
    )?;
    let foreign_keys = texts(
        conn,
        &format!(
            "SELECT a.attname::text || ' -> ' || r.relname::text || '.' || ra.attname::text \
             || ' on delete ' || c.confdeltype::text \
             || ' deferrable ' || c.condeferrable::text || ' deferred ' || c.condeferred::text \
             FROM pg_catalog.pg_constraint c \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
             JOIN pg_catalog.pg_class r ON r.oid = c.confrelid \
             JOIN pg_catalog.pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = c.confkey[1] \
             WHERE c.conrelid = {oid} AND c.contype = 'f' ORDER BY 1"
        ),
    )?;
    let indexes = texts(
        conn,
        &format!(
            "SELECT CASE WHEN i.indisprimary THEN 'key ' WHEN i.indisunique THEN 'unique ' ELSE '' END \
             || (SELECT string_agg(a.attname::text, ', ' ORDER BY k.o) \
                 FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(n, o) \
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n) \
             FROM pg_catalog.pg_index i WHERE i.indrelid = {oid} ORDER BY 1"
        ),
    )?;
    let checks = texts(
        conn,
        &format!(
            "SELECT pg_get_constraintdef(c.oid) FROM pg_catalog.pg_constraint c \
             WHERE c.conrelid = {oid} AND c.contype = 'c' ORDER BY 1"
        ),
    )?;
    Ok(Some(Shape {
        columns,
        foreign_keys,
        indexes,
        checks,
    }))
}
