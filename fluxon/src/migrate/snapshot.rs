//! A schema as text: the models' tables written into each migration file, so the history's schema
//! is read back from the files alone (no live database needed).
//!
//! Tables read back are leaked to `'static` so they are ordinary [`TableSchema`] values: the
//! command-line tools read a handful of small schemas once per run.

use serde::{Deserialize, Serialize};

use crate::db::{ColumnSchema, FieldKind, OnDelete, Reference, TableSchema};

use super::MigrateError;

#[derive(Serialize, Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Rule {
    Cascade,
    Protect,
    SetNull,
    SetDefault,
    NoAction,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Kind {
    Char {
        max_length: u32,
    },
    Text,
    Integer,
    BigInteger,
    PositiveInteger,
    Float,
    Decimal {
        max_digits: u32,
        decimal_places: u32,
    },
    Boolean,
    Auto,
    Date,
    Time,
    DateTime,
    ForeignKey {
        table: String,
        column: String,
        on_delete: Rule,
    },
    OneToOne {
        table: String,
        column: String,
        on_delete: Rule,
    },
    Password,
    Json,
}

#[derive(Serialize, Deserialize)]
struct Column {
    name: String,
    #[serde(flatten)]
    kind: Kind,
    #[serde(default, skip_serializing_if = "is_false")]
    nullable: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    unique: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    primary_key: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    auto_now: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    auto_now_add: bool,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    in_struct: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    index: bool,
}

#[derive(Serialize, Deserialize)]
struct Table {
    name: String,
    #[serde(default, skip_serializing_if = "is_false")]
    authorized_user: bool,
    columns: Vec<Column>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unique: Vec<Vec<String>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

fn leak(s: String) -> &'static str {
    s.leak()
}

impl From<OnDelete> for Rule {
    fn from(rule: OnDelete) -> Self {
        match rule {
            OnDelete::Cascade => Rule::Cascade,
            OnDelete::Protect => Rule::Protect,
            OnDelete::SetNull => Rule::SetNull,
            OnDelete::SetDefault => Rule::SetDefault,
            OnDelete::NoAction => Rule::NoAction,
        }
    }
}

impl From<Rule> for OnDelete {
    fn from(rule: Rule) -> Self {
        match rule {
            Rule::Cascade => OnDelete::Cascade,
            Rule::Protect => OnDelete::Protect,
            Rule::SetNull => OnDelete::SetNull,
            Rule::SetDefault => OnDelete::SetDefault,
            Rule::NoAction => OnDelete::NoAction,
        }
    }
}

fn kind_out(kind: &FieldKind) -> Kind {
    match *kind {
        FieldKind::Char { max_length } => Kind::Char { max_length },
        FieldKind::Text => Kind::Text,
        FieldKind::Integer => Kind::Integer,
        FieldKind::BigInteger => Kind::BigInteger,
        FieldKind::PositiveInteger => Kind::PositiveInteger,
        FieldKind::Float => Kind::Float,
        FieldKind::Decimal {
            max_digits,
            decimal_places,
        } => Kind::Decimal {
            max_digits,
            decimal_places,
        },
        FieldKind::Boolean => Kind::Boolean,
        FieldKind::Auto => Kind::Auto,
        FieldKind::Date => Kind::Date,
        FieldKind::Time => Kind::Time,
        FieldKind::DateTime => Kind::DateTime,
        FieldKind::ForeignKey(r) => Kind::ForeignKey {
            table: r.table.to_owned(),
            column: r.column.to_owned(),
            on_delete: r.on_delete.into(),
        },
        FieldKind::OneToOne(r) => Kind::OneToOne {
            table: r.table.to_owned(),
            column: r.column.to_owned(),
            on_delete: r.on_delete.into(),
        },
        FieldKind::Password => Kind::Password,
        FieldKind::Json => Kind::Json,
    }
}

fn kind_in(kind: Kind) -> FieldKind {
    let reference = |table: String, column: String, on_delete: Rule| Reference {
        table: leak(table),
        column: leak(column),
        on_delete: on_delete.into(),
    };
    match kind {
        Kind::Char { max_length } => FieldKind::Char { max_length },
        Kind::Text => FieldKind::Text,
        Kind::Integer => FieldKind::Integer,
        Kind::BigInteger => FieldKind::BigInteger,
        Kind::PositiveInteger => FieldKind::PositiveInteger,
        Kind::Float => FieldKind::Float,
        Kind::Decimal {
            max_digits,
            decimal_places,
        } => FieldKind::Decimal {
            max_digits,
            decimal_places,
        },
        Kind::Boolean => FieldKind::Boolean,
        Kind::Auto => FieldKind::Auto,
        Kind::Date => FieldKind::Date,
        Kind::Time => FieldKind::Time,
        Kind::DateTime => FieldKind::DateTime,
        Kind::ForeignKey {
            table,
            column,
            on_delete,
        } => FieldKind::ForeignKey(reference(table, column, on_delete)),
        Kind::OneToOne {
            table,
            column,
            on_delete,
        } => FieldKind::OneToOne(reference(table, column, on_delete)),
        Kind::Password => FieldKind::Password,
        Kind::Json => FieldKind::Json,
    }
}

/// The schema as one line of JSON.
pub fn write(tables: &[TableSchema]) -> Result<String, MigrateError> {
    let tables: Vec<Table> = tables
        .iter()
        .map(|t| Table {
            name: t.name.to_owned(),
            authorized_user: t.authorized_user,
            columns: t
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.to_owned(),
                    kind: kind_out(&c.kind),
                    nullable: c.nullable,
                    unique: c.unique,
                    primary_key: c.primary_key,
                    default: c.default.map(str::to_owned),
                    auto_now: c.auto_now,
                    auto_now_add: c.auto_now_add,
                    in_struct: c.in_struct,
                    index: c.index,
                })
                .collect(),
            unique: t
                .unique_together
                .iter()
                .map(|set| set.iter().map(|c| (*c).to_owned()).collect())
                .collect(),
        })
        .collect();
    serde_json::to_string(&tables).map_err(|e| MigrateError::Snapshot(e.to_string()))
}

/// A schema from its JSON.
pub fn read(json: &str) -> Result<Vec<TableSchema>, MigrateError> {
    let tables: Vec<Table> =
        serde_json::from_str(json).map_err(|e| MigrateError::Snapshot(e.to_string()))?;
    Ok(tables
        .into_iter()
        .map(|t| {
            let name = leak(t.name);
            let columns: Vec<ColumnSchema> = t
                .columns
                .into_iter()
                .map(|c| {
                    let column_name = leak(c.name);
                    ColumnSchema {
                        nullable: c.nullable,
                        unique: c.unique,
                        primary_key: c.primary_key,
                        default: c.default.map(leak),
                        auto_now: c.auto_now,
                        auto_now_add: c.auto_now_add,
                        in_struct: c.in_struct,
                        index: c.index,
                        qualified: leak(format!(
                            "{}.{}",
                            crate::db::schema::quote_ident(name),
                            crate::db::schema::quote_ident(column_name)
                        )),
                        ..ColumnSchema::new(column_name, kind_in(c.kind))
                    }
                })
                .collect();
            TableSchema {
                name,
                columns: columns.leak(),
                authorized_user: t.authorized_user,
                quoted_name: leak(crate::db::schema::quote_ident(name)),
                select_list: "",
                insert_sql: "",
                renamed_from: None,
                unique_together: t
                    .unique
                    .into_iter()
                    .map(|set| &*set.into_iter().map(leak).collect::<Vec<_>>().leak())
                    .collect::<Vec<_>>()
                    .leak(),
            }
        })
        .collect())
}
