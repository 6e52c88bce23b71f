//! PostgreSQL's SQL for each operation. What SQLite rebuilds, PostgreSQL changes in place with
//! `ALTER TABLE`: columns are dropped, renamed, added and retyped (`USING` converts the values a
//! column holds), and constraints are swapped one by one. PostgreSQL has transactional DDL, so a
//! migration's statements all take effect or none do.
//!
//! Constraints PostgreSQL named itself (an inline CHECK, UNIQUE or REFERENCES gets a name such as
//! `book_title_check`, which a table rename does not change) are found by what they are, not by
//! name: a short `DO` block drops the constraints of one kind on one column, whatever they are
//! called.

use crate::db::schema::quote_ident;
use crate::db::{ColumnSchema, Dialect, FieldKind, TableSchema};

use super::diff::{Operation, Source};
use super::sql;

const PG: Dialect = Dialect::Postgres;

/// The statements of one operation on PostgreSQL.
pub fn statements(operation: &Operation) -> Vec<String> {
    match operation {
        Operation::CreateTable(table) => PG.create_table(table),
        // CASCADE drops the foreign keys other tables still hold to it (tables the models keep
        // cannot point at a model that is gone; tables dropped in the same migration may).
        Operation::DropTable(name) => vec![format!("DROP TABLE {} CASCADE", quote_ident(name))],
        Operation::AddColumn { table, column } => add_column(table.name, column, None),
        Operation::RenameTable { from, to, was } => {
            let mut out = vec![format!(
                "ALTER TABLE {} RENAME TO {}",
                quote_ident(from),
                quote_ident(to)
            )];
            let indexes = was.columns.iter().filter(|c| c.indexed()).map(|c| {
                (
                    format!("{from}_{}_idx", c.name),
                    format!("{to}_{}_idx", c.name),
                )
            });
            let unique = was.unique_together.iter().map(|columns| {
                (
                    crate::db::schema::unique_index_name(from, columns),
                    crate::db::schema::unique_index_name(to, columns),
                )
            });
            for (old, new) in indexes.chain(unique) {
                out.push(format!(
                    "ALTER INDEX IF EXISTS {} RENAME TO {}",
                    quote_ident(&old),
                    quote_ident(&new)
                ));
            }
            out
        }
        Operation::Rebuild {
            from,
            table,
            sources,
            ..
        } => alter(from, table, sources),
        // Indexes and unique sets are the same SQL on both backends.
        other => sql::sqlite(other),
    }
}

/// The ALTERs that take `old` to `new`, each column of `new` filled from its `source`.
fn alter(old: &TableSchema, new: &TableSchema, sources: &[Source]) -> Vec<String> {
    let table = quote_ident(new.name);
    let mut out = Vec::new();
    let kept: Vec<&str> = sources
        .iter()
        .filter_map(|s| match s {
            Source::Column(name) => Some(*name),
            _ => None,
        })
        .collect();
    // Unique sets first: one may hold a column about to be dropped or renamed.
    for columns in old.unique_together {
        if !new.unique_together.contains(columns) {
            out.push(format!(
                "DROP INDEX IF EXISTS {}",
                quote_ident(&crate::db::schema::unique_index_name(old.name, columns))
            ));
        }
    }
    for column in old.columns.iter().filter(|c| !kept.contains(&c.name)) {
        out.push(format!(
            "ALTER TABLE {table} DROP COLUMN {}",
            quote_ident(column.name)
        ));
    }
    let mut added = Vec::new();
    for (column, source) in new.columns.iter().zip(sources) {
        match source {
            Source::Column(name) => {
                let Some(before) = old.columns.iter().find(|c| c.name == *name) else {
                    continue;
                };
                if before.name != column.name {
                    out.push(format!(
                        "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                        quote_ident(before.name),
                        quote_ident(column.name)
                    ));
                    if before.indexed() {
                        out.push(format!(
                            "ALTER INDEX IF EXISTS {} RENAME TO {}",
                            quote_ident(&format!("{}_{}_idx", new.name, before.name)),
                            quote_ident(&format!("{}_{}_idx", new.name, column.name))
                        ));
                    }
                }
                alter_column(new.name, before, column, &mut out);
            }
            Source::Default => added.extend(add_column(new.name, column, None)),
            Source::Literal(value) => added.extend(add_column(new.name, column, Some(value))),
        }
    }
    out.append(&mut added);
    for columns in new.unique_together {
        if !old.unique_together.contains(columns) {
            out.push(crate::db::schema::unique_index_sql(new.name, columns));
        }
    }
    out
}

/// A new column; a NOT NULL one without a default is added empty, filled with `value` (a SQL
/// literal), then made NOT NULL.
fn add_column(table: &str, column: &ColumnSchema, value: Option<&String>) -> Vec<String> {
    let quoted = quote_ident(table);
    let name = quote_ident(column.name);
    let mut out = Vec::new();
    match value {
        None => out.push(format!(
            "ALTER TABLE {quoted} ADD COLUMN {}",
            PG.column_definition(column)
        )),
        Some(value) => {
            let empty = ColumnSchema {
                nullable: true,
                ..*column
            };
            out.push(format!(
                "ALTER TABLE {quoted} ADD COLUMN {}",
                PG.column_definition(&empty)
            ));
            out.push(format!(
                "UPDATE {quoted} SET {name} = CAST({value} AS {})",
                PG.column_type(column)
            ));
            out.push(format!(
                "ALTER TABLE {quoted} ALTER COLUMN {name} SET NOT NULL"
            ));
        }
    }
    if column.indexed() {
        out.push(column.index_sql(table));
    }
    out
}

/// Whether a column may hold NULL, as the database sees it (a key never does).
fn not_null(column: &ColumnSchema) -> bool {
    !column.nullable || column.primary_key
}

fn is_unique(column: &ColumnSchema) -> bool {
    column.unique || matches!(column.kind, FieldKind::OneToOne(_))
}

/// The ALTERs that take column `before` (already under its new name) to `after`.
fn alter_column(table: &str, before: &ColumnSchema, after: &ColumnSchema, out: &mut Vec<String>) {
    let quoted = quote_ident(table);
    let name = quote_ident(after.name);
    let column = format!("ALTER TABLE {quoted} ALTER COLUMN {name}");
    let retyped = PG.column_type(before) != PG.column_type(after);
    let checks_changed = retyped || PG.checks(before) != PG.checks(after);
    let default_changed = retyped || PG.default_sql(before) != PG.default_sql(after);
    let reference_changed = PG.reference_clause(before) != PG.reference_clause(after);
    let identity_changed =
        (before.is_auto() && before.primary_key) != (after.is_auto() && after.primary_key);

    // Take off what the new type or definition would trip on, change the type, put back.
    if checks_changed {
        out.push(drop_constraints(table, after.name, 'c'));
    }
    if reference_changed {
        out.push(drop_constraints(table, after.name, 'f'));
    }
    if is_unique(before) && !is_unique(after) {
        out.push(drop_constraints(table, after.name, 'u'));
    }
    if before.primary_key && !after.primary_key {
        out.push(drop_constraints(table, after.name, 'p'));
    }
    if identity_changed && before.is_auto() {
        out.push(format!("{column} DROP IDENTITY IF EXISTS"));
    }
    if default_changed && before.default.is_some() {
        out.push(format!("{column} DROP DEFAULT"));
    }
    if retyped {
        out.push(format!(
            "{column} TYPE {} USING {}",
            PG.column_type(after),
            conversion(&name, before.kind, after.kind)
        ));
    }
    if not_null(before) != not_null(after) {
        let change = if not_null(after) { "SET" } else { "DROP" };
        out.push(format!("{column} {change} NOT NULL"));
    }
    if default_changed {
        if let Some(default) = PG.default_sql(after) {
            out.push(format!("{column} SET DEFAULT {default}"));
        }
    }
    if identity_changed && after.is_auto() {
        out.push(format!("{column} ADD GENERATED BY DEFAULT AS IDENTITY"));
    }
    if after.primary_key && !before.primary_key {
        out.push(format!("ALTER TABLE {quoted} ADD PRIMARY KEY ({name})"));
    }
    if is_unique(after) && !is_unique(before) {
        out.push(format!("ALTER TABLE {quoted} ADD UNIQUE ({name})"));
    }
    if checks_changed {
        for check in PG.checks(after) {
            out.push(format!("ALTER TABLE {quoted} ADD CHECK ({check})"));
        }
    }
    if reference_changed {
        if let Some(reference) = PG.reference_clause(after) {
            out.push(format!(
                "ALTER TABLE {quoted} ADD FOREIGN KEY ({name}) {reference}"
            ));
        }
    }
    if before.indexed() != after.indexed() {
        out.push(if after.indexed() {
            after.index_sql(table)
        } else {
            format!(
                "DROP INDEX IF EXISTS {}",
                quote_ident(&format!("{table}_{}_idx", after.name))
            )
        });
    }
}

/// The `USING` expression that converts a column's values from one kind to another: a cast,
/// except where PostgreSQL has none (integers and booleans).
fn conversion(name: &str, from: FieldKind, to: FieldKind) -> String {
    let integer = |kind: FieldKind| {
        matches!(
            kind,
            FieldKind::Integer
                | FieldKind::BigInteger
                | FieldKind::PositiveInteger
                | FieldKind::Auto
                | FieldKind::ForeignKey(_)
                | FieldKind::OneToOne(_)
        )
    };
    let target = PG.column_type(&ColumnSchema::new("", to));
    match (from, to) {
        (from, FieldKind::Boolean) if integer(from) => format!("{name} <> 0"),
        (FieldKind::Boolean, to) if integer(to) => format!("{name}::INTEGER::{target}"),
        _ => format!("{name}::{target}"),
    }
}

/// A `DO` block that drops every single-column constraint of `kind` (`c` CHECK, `f` foreign key,
/// `u` UNIQUE, `p` primary key) on `column` of `table`, whatever its name.
fn drop_constraints(table: &str, column: &str, kind: char) -> String {
    let regclass = literal(&quote_ident(table));
    format!(
        "DO $fluxon$ DECLARE r record; BEGIN \
         FOR r IN SELECT c.conname FROM pg_constraint c \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
         WHERE c.conrelid = {regclass}::regclass AND c.contype = '{kind}' \
         AND cardinality(c.conkey) = 1 AND a.attname = {column} \
         LOOP EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', {regclass}, r.conname); \
         END LOOP; END $fluxon$",
        column = literal(column),
    )
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
