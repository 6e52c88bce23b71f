//! The SQL of each operation on each backend. SQLite's rebuilds follow its documented procedure
//! (create the new table, copy the rows, drop the old one, rename); the runner switches
//! foreign-key enforcement off around the migration's transaction and checks every foreign key
//! before committing. PostgreSQL's ALTERs are in `alter`.

use crate::db::schema::quote_ident;
use crate::db::{Dialect, TableSchema};

use super::diff::{Operation, Source};

/// The statements of one operation on the backend of `dialect`.
pub fn statements(operation: &Operation, dialect: Dialect) -> Vec<String> {
    match dialect {
        Dialect::Postgres => super::alter::statements(operation),
        _ => sqlite(operation),
    }
}

/// The statements of one operation on SQLite (indexes and unique sets are the same SQL on
/// PostgreSQL).
pub fn sqlite(operation: &Operation) -> Vec<String> {
    match operation {
        Operation::CreateTable(table) => table.create_sql(),
        Operation::DropTable(name) => vec![format!("DROP TABLE {}", quote_ident(name))],
        Operation::AddColumn { table, column } => {
            let mut out = vec![format!(
                "ALTER TABLE {} ADD COLUMN {}",
                quote_ident(table.name),
                column.definition()
            )];
            if column.indexed() {
                out.push(column.index_sql(table.name));
            }
            out
        }
        Operation::RenameTable { from, to, was } => {
            let mut out = vec![format!(
                "ALTER TABLE {} RENAME TO {}",
                quote_ident(from),
                quote_ident(to)
            )];
            // SQLite cannot rename an index: each is made again under the table's new name.
            for column in was.columns.iter().filter(|c| c.indexed()) {
                out.push(format!(
                    "DROP INDEX IF EXISTS {}",
                    quote_ident(&format!("{from}_{}_idx", column.name))
                ));
                out.push(column.index_sql(to));
            }
            for columns in was.unique_together {
                out.push(format!(
                    "DROP INDEX IF EXISTS {}",
                    quote_ident(&crate::db::schema::unique_index_name(from, columns))
                ));
                out.push(crate::db::schema::unique_index_sql(to, columns));
            }
            out
        }
        Operation::AddIndex { table, column } => vec![format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
            quote_ident(&format!("{table}_{column}_idx")),
            quote_ident(table),
            quote_ident(column)
        )],
        Operation::DropIndex { table, column } => vec![format!(
            "DROP INDEX IF EXISTS {}",
            quote_ident(&format!("{table}_{column}_idx"))
        )],
        Operation::AddUnique { table, columns } => {
            vec![crate::db::schema::unique_index_sql(table, columns)]
        }
        Operation::DropUnique { table, columns } => vec![format!(
            "DROP INDEX IF EXISTS {}",
            quote_ident(&crate::db::schema::unique_index_name(table, columns))
        )],
        Operation::Rebuild { table, sources, .. } => rebuild(table, sources),
    }
}

fn rebuild(table: &TableSchema, sources: &[Source]) -> Vec<String> {
    let temporary = format!("__fluxon_new_{}", table.name);
    let staged = TableSchema {
        name: temporary.clone().leak(),
        ..*table
    };
    let mut create = staged.create_sql();
    // Indexes are made once the table has its real name.
    create.truncate(1);
    let create = create
        .remove(0)
        .replacen("CREATE TABLE IF NOT EXISTS", "CREATE TABLE", 1);
    let (names, values): (Vec<String>, Vec<String>) = table
        .columns
        .iter()
        .zip(sources)
        .filter_map(|(column, source)| match source {
            Source::Column(old) => Some((quote_ident(column.name), quote_ident(old))),
            Source::Literal(sql) => Some((quote_ident(column.name), sql.clone())),
            Source::Default => None,
        })
        .unzip();
    let mut out = vec![create];
    if !names.is_empty() {
        out.push(format!(
            "INSERT INTO {} ({}) SELECT {} FROM {}",
            quote_ident(&temporary),
            names.join(", "),
            values.join(", "),
            quote_ident(table.name)
        ));
    }
    out.push(format!("DROP TABLE {}", quote_ident(table.name)));
    out.push(format!(
        "ALTER TABLE {} RENAME TO {}",
        quote_ident(&temporary),
        quote_ident(table.name)
    ));
    out.extend(
        table
            .columns
            .iter()
            .filter(|c| c.indexed())
            .map(|c| c.index_sql(table.name)),
    );
    out.extend(
        table
            .unique_together
            .iter()
            .map(|columns| crate::db::schema::unique_index_sql(table.name, columns)),
    );
    out
}
