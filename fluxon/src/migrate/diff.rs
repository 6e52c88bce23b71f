//! The autodetector: the operations that take the history's schema to the models' schema.

use std::collections::BTreeMap;

use crate::db::{ColumnSchema, TableSchema};

use super::MigrateError;

/// Answers the questions the autodetector cannot settle alone. The command line asks at a prompt;
/// a non-interactive run (CI) refuses instead of guessing.
pub trait Questioner {
    /// Is `what` (a column or table that disappeared and one that appeared, alike but for the
    /// name) a rename?
    fn is_rename(&mut self, what: &str) -> Result<bool, MigrateError>;
    /// A value (an SQL literal) for the existing rows of a new NOT NULL column without a default.
    fn default_for(&mut self, table: &str, column: &str) -> Result<String, MigrateError>;
}

/// Never asks: an ambiguous change is an error that says how to settle it.
#[derive(Debug, Default)]
pub struct NoQuestions;

impl Questioner for NoQuestions {
    fn is_rename(&mut self, what: &str) -> Result<bool, MigrateError> {
        Err(MigrateError::Ambiguous(format!(
            "{what}? Declare it with renamed_from = \"...\" (#[field] or #[model]), or run makemigrations in a terminal to answer"
        )))
    }
    fn default_for(&mut self, table: &str, column: &str) -> Result<String, MigrateError> {
        Err(MigrateError::Ambiguous(format!(
            "{table}.{column} is NOT NULL and has no default, and {table} may have rows: give it #[field(default = ...)], make it an Option, or run makemigrations in a terminal to give a value for existing rows"
        )))
    }
}

/// Where a column of a rebuilt table takes its values from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// The old table's column of this name.
    Column(&'static str),
    /// This SQL literal, for every existing row.
    Literal(String),
    /// The column's own default (or NULL).
    Default,
}

/// One change, as the migration file's header lists it and as its SQL does it.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// A new table.
    CreateTable(TableSchema),
    /// A table that is gone.
    DropTable(&'static str),
    /// A table with a new name (its indexes follow: fluxon names them after their table).
    RenameTable {
        /// Old name.
        from: &'static str,
        /// New name.
        to: &'static str,
        /// The table as it was (its indexes, under the old name).
        was: TableSchema,
    },
    /// A column SQLite can add in place.
    AddColumn {
        /// The table (as it will be).
        table: TableSchema,
        /// The column.
        column: ColumnSchema,
    },
    /// A new index on a column.
    AddIndex {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
    },
    /// An index no longer wanted.
    DropIndex {
        /// The table.
        table: &'static str,
        /// The column.
        column: &'static str,
    },
    /// A new set of columns no two rows may share.
    AddUnique {
        /// The table.
        table: &'static str,
        /// The columns.
        columns: &'static [&'static str],
    },
    /// A set of columns no longer unique together.
    DropUnique {
        /// The table.
        table: &'static str,
        /// The columns.
        columns: &'static [&'static str],
    },
    /// Column changes SQLite cannot do in place: the table is rebuilt with its rows kept
    /// (PostgreSQL ALTERs it instead).
    Rebuild {
        /// The table as it was (under its new name, if it was renamed too).
        from: TableSchema,
        /// The table as it will be.
        table: TableSchema,
        /// Where each of its columns comes from, in order.
        sources: Vec<Source>,
        /// What changed, for the header.
        changes: Vec<String>,
    },
}

impl Operation {
    /// A line for the migration's header.
    pub fn describe(&self) -> String {
        match self {
            Operation::CreateTable(t) => format!("create table {}", t.name),
            Operation::DropTable(name) => format!("drop table {name}"),
            Operation::RenameTable { from, to, .. } => format!("rename table {from} to {to}"),
            Operation::AddColumn { table, column } => {
                format!("add column {}.{}", table.name, column.name)
            }
            Operation::AddIndex { table, column } => format!("add index on {table}.{column}"),
            Operation::DropIndex { table, column } => format!("drop index on {table}.{column}"),
            Operation::AddUnique { table, columns } => {
                format!("add unique ({}) on {table}", columns.join(", "))
            }
            Operation::DropUnique { table, columns } => {
                format!("drop unique ({}) on {table}", columns.join(", "))
            }
            Operation::Rebuild { table, changes, .. } => {
                format!(
                    "rebuild table {} (rows kept): {}",
                    table.name,
                    changes.join("; ")
                )
            }
        }
    }
}

/// Two columns that differ only in name (a rename candidate).
fn alike_but_name(a: &ColumnSchema, b: &ColumnSchema) -> bool {
    ColumnSchema {
        name: b.name,
        qualified: b.qualified,
        renamed_from: b.renamed_from,
        ..*a
    } == *b
}

/// Two columns with the same definition (names, qualified names and rename hints aside).
fn same_definition(a: &ColumnSchema, b: &ColumnSchema) -> bool {
    alike_but_name(a, b) && a.name == b.name
}

/// Two tables alike but for their name.
fn tables_alike(a: &TableSchema, b: &TableSchema) -> bool {
    a.columns.len() == b.columns.len()
        && a.columns
            .iter()
            .zip(b.columns)
            .all(|(x, y)| same_definition(x, y))
}

/// Whether SQLite can `ALTER TABLE ADD COLUMN` this column (else the table is rebuilt).
fn addable_in_place(column: &ColumnSchema) -> bool {
    let null_or_default = column.nullable || column.default.is_some();
    let reference_ok =
        column.reference().is_none() || (column.nullable && column.default.is_none());
    !column.primary_key
        && !column.unique
        && null_or_default
        && reference_ok
        && column.kind != crate::db::FieldKind::Auto
        && !matches!(column.kind, crate::db::FieldKind::OneToOne(_))
}

/// The operations from `old` (the history) to `new` (the models).
pub fn diff(
    old: &[TableSchema],
    new: &[TableSchema],
    questions: &mut dyn Questioner,
) -> Result<Vec<Operation>, MigrateError> {
    // Whatever order the app listed its models in: referenced tables first.
    let new = &crate::db::in_reference_order(new)?;
    let olds: BTreeMap<&str, &TableSchema> = old.iter().map(|t| (t.name, t)).collect();
    let mut remaining: BTreeMap<&str, &TableSchema> = olds.clone();
    let mut operations = Vec::new();
    let mut creates = Vec::new();

    for table in new {
        if let Some(previous) = remaining.remove(table.name) {
            table_changes(previous, table, questions, &mut operations)?;
            continue;
        }
        // Renamed? Declared, or alike and confirmed.
        let declared = table
            .renamed_from
            .and_then(|from| remaining.get(from).copied());
        let candidate = match declared {
            Some(previous) => Some(previous),
            None => {
                let alike: Vec<&TableSchema> = remaining
                    .values()
                    .copied()
                    .filter(|t| !new.iter().any(|n| n.name == t.name) && tables_alike(t, table))
                    .collect();
                match alike.first() {
                    Some(previous)
                        if questions.is_rename(&format!(
                            "was table {} renamed to {}",
                            previous.name, table.name
                        ))? =>
                    {
                        Some(*previous)
                    }
                    _ => None,
                }
            }
        };
        match candidate {
            Some(previous) => {
                remaining.remove(previous.name);
                operations.push(Operation::RenameTable {
                    from: previous.name,
                    to: table.name,
                    was: *previous,
                });
                let renamed = TableSchema {
                    name: table.name,
                    ..*previous
                };
                table_changes(&renamed, table, questions, &mut operations)?;
            }
            None => creates.push(Operation::CreateTable(*table)),
        }
    }
    // New tables first (in model order, so references resolve), drops last.
    let mut ordered = creates;
    ordered.append(&mut operations);
    ordered.extend(
        remaining
            .keys()
            .map(|name| Operation::DropTable(olds[name].name)),
    );
    Ok(ordered)
}

fn table_changes(
    old: &TableSchema,
    new: &TableSchema,
    questions: &mut dyn Questioner,
    operations: &mut Vec<Operation>,
) -> Result<(), MigrateError> {
    let find_old = |name: &str| old.columns.iter().find(|c| c.name == name);
    let mut used: Vec<&str> = Vec::new();
    let mut sources = Vec::new();
    let mut changes = Vec::new();
    let mut added = Vec::new();
    let mut indexes = Vec::new();
    let mut in_place_only = true;

    // First pass: columns present under the same name, or declared as renamed.
    let mut unmatched = Vec::new();
    for column in new.columns {
        if let Some(previous) = find_old(column.name) {
            used.push(previous.name);
            let reindexed = ColumnSchema {
                index: column.index,
                ..*previous
            };
            if !same_definition(&reindexed, column) {
                changes.push(format!("alter column {}", column.name));
                in_place_only = false;
            } else if previous.indexed() != column.indexed() {
                // Only the index changed: no rebuild.
                changes.push(format!("index {}", column.name));
                indexes.push(if column.indexed() {
                    Operation::AddIndex {
                        table: new.name,
                        column: column.name,
                    }
                } else {
                    Operation::DropIndex {
                        table: new.name,
                        column: column.name,
                    }
                });
            }
            sources.push(Some(Source::Column(previous.name)));
        } else if let Some(previous) = column.renamed_from.and_then(find_old) {
            used.push(previous.name);
            changes.push(format!(
                "rename column {} to {}",
                previous.name, column.name
            ));
            if !alike_but_name(previous, column) {
                changes.push(format!("alter column {}", column.name));
            }
            in_place_only = false;
            sources.push(Some(Source::Column(previous.name)));
        } else {
            unmatched.push(sources.len());
            sources.push(None);
        }
    }
    // Second pass: a new column alike an old one that went away may be a rename.
    for index in unmatched {
        let column = &new.columns[index];
        let candidate = old
            .columns
            .iter()
            .filter(|c| !used.contains(&c.name) && !new.columns.iter().any(|n| n.name == c.name))
            .find(|c| alike_but_name(c, column));
        let renamed = match candidate {
            Some(previous) => questions
                .is_rename(&format!(
                    "was {}.{} renamed to {}",
                    new.name, previous.name, column.name
                ))?
                .then_some(previous),
            None => None,
        };
        match renamed {
            Some(previous) => {
                used.push(previous.name);
                changes.push(format!(
                    "rename column {} to {}",
                    previous.name, column.name
                ));
                in_place_only = false;
                sources[index] = Some(Source::Column(previous.name));
            }
            None => {
                changes.push(format!("add column {}", column.name));
                let source = if column.nullable || column.default.is_some() || column.is_auto() {
                    Source::Default
                } else {
                    Source::Literal(questions.default_for(new.name, column.name)?)
                };
                if !addable_in_place(column) || matches!(source, Source::Literal(_)) {
                    in_place_only = false;
                }
                added.push(*column);
                sources[index] = Some(source);
            }
        }
    }
    for column in old.columns.iter().filter(|c| !used.contains(&c.name)) {
        changes.push(format!("drop column {}", column.name));
        in_place_only = false;
    }
    for columns in old.unique_together.iter().chain(new.unique_together) {
        let kept = old.unique_together.contains(columns) && new.unique_together.contains(columns);
        if !kept {
            changes.push(format!("unique ({})", columns.join(", ")));
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    if in_place_only {
        operations.extend(added.into_iter().map(|column| Operation::AddColumn {
            table: *new,
            column,
        }));
        operations.extend(indexes);
        // Unique sets are indexes of their own: added and dropped in place (a rebuild makes the
        // new table's from scratch).
        for columns in old.unique_together {
            if !new.unique_together.contains(columns) {
                operations.push(Operation::DropUnique {
                    table: new.name,
                    columns,
                });
            }
        }
        for columns in new.unique_together {
            if !old.unique_together.contains(columns) {
                operations.push(Operation::AddUnique {
                    table: new.name,
                    columns,
                });
            }
        }
    } else {
        operations.push(Operation::Rebuild {
            from: *old,
            table: *new,
            sources: sources
                .into_iter()
                .map(|s| s.unwrap_or(Source::Default))
                .collect(),
            changes,
        });
    }
    Ok(())
}
