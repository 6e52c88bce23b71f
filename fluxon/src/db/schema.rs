//! A model's table as data: columns, their kinds and constraints, foreign keys. `#[derive(Model)]`
//! builds it as a `const`; `create_table_sql` turns it into SQL, and the migrations layer diffs it.

/// What a column holds, in the original Fluxon's field vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `CharField(max_length)`: text with a length CHECK.
    Char {
        /// Most characters allowed.
        max_length: u32,
    },
    /// `TextField`.
    Text,
    /// `IntegerField` (i32).
    Integer,
    /// `BigIntegerField` (i64).
    BigInteger,
    /// `PositiveIntegerField` (u32, CHECK >= 0).
    PositiveInteger,
    /// `FloatField` (f64).
    Float,
    /// `DecimalField`: exact, stored as an integer count of `10^-decimal_places`.
    Decimal {
        /// Most digits in all.
        max_digits: u32,
        /// Digits after the point.
        decimal_places: u32,
    },
    /// `BooleanField`.
    Boolean,
    /// `AutoField`: an integer primary key the database assigns.
    Auto,
    /// `DateField`, stored as `YYYY-MM-DD`.
    Date,
    /// `TimeField`, stored as `HH:MM:SS.fff`.
    Time,
    /// `DateTimeField` (UTC), stored as RFC 3339 text.
    DateTime,
    /// `ForeignKey`: the key of a row of another (or the same) table.
    ForeignKey(Reference),
    /// `OneToOneField`: a foreign key that is also unique.
    OneToOne(Reference),
    /// A password, stored only as an argon2id hash (PHC string).
    Password,
    /// Any serde value as JSON text (`Json<T>`), with a CHECK that it is valid JSON.
    Json,
}

impl FieldKind {
    /// `Char { max_length }` from `Text` (the derive's `max_length`); anything else fails to
    /// compile, so `max_length` on a number is an error.
    pub const fn with_max_length(self, max_length: u32) -> FieldKind {
        match self {
            FieldKind::Text | FieldKind::Char { .. } => FieldKind::Char { max_length },
            _ => panic!("max_length applies only to String fields"),
        }
    }

    /// A decimal's digits (the derive's `max_digits`, `decimal_places`).
    pub const fn with_digits(self, max_digits: u32, decimal_places: u32) -> FieldKind {
        match self {
            FieldKind::Decimal { .. } => {
                if decimal_places > max_digits || max_digits > 18 {
                    panic!("a decimal needs decimal_places <= max_digits <= 18");
                }
                FieldKind::Decimal {
                    max_digits,
                    decimal_places,
                }
            }
            _ => panic!("max_digits and decimal_places apply only to Decimal fields"),
        }
    }

    /// The delete rule of a reference (the derive's `on_delete`).
    pub const fn with_on_delete(self, on_delete: OnDelete) -> FieldKind {
        match self {
            FieldKind::ForeignKey(r) => FieldKind::ForeignKey(Reference { on_delete, ..r }),
            FieldKind::OneToOne(r) => FieldKind::OneToOne(Reference { on_delete, ..r }),
            _ => panic!("on_delete applies only to ForeignKey and OneToOne fields"),
        }
    }

    /// An auto-assigned key (the derive's `auto`), for `i64` fields only.
    pub const fn auto(self) -> FieldKind {
        match self {
            FieldKind::BigInteger | FieldKind::Auto => FieldKind::Auto,
            _ => panic!("auto applies only to i64 fields"),
        }
    }

    /// Whether it is a date-time (for `auto_now` / `auto_now_add`).
    pub const fn is_date_time(self) -> bool {
        matches!(self, FieldKind::DateTime)
    }
}

/// Where a foreign key points and what happens when that row is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// The referenced table.
    pub table: &'static str,
    /// The referenced column (its primary key).
    pub column: &'static str,
    /// The delete rule.
    pub on_delete: OnDelete,
}

/// `on_delete` of a foreign key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDelete {
    /// Delete the referring rows too.
    #[default]
    Cascade,
    /// Refuse to delete a row that is referred to.
    Protect,
    /// Set the referring column to NULL (the field must be an `Option`).
    SetNull,
    /// Set the referring column to its default.
    SetDefault,
    /// Do nothing (the check happens at commit).
    NoAction,
}

impl OnDelete {
    /// The SQL action.
    pub fn sql(self) -> &'static str {
        match self {
            OnDelete::Cascade => "CASCADE",
            OnDelete::Protect => "RESTRICT",
            OnDelete::SetNull => "SET NULL",
            OnDelete::SetDefault => "SET DEFAULT",
            OnDelete::NoAction => "NO ACTION",
        }
    }
}

/// One column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnSchema {
    /// The column's name (the field's name).
    pub name: &'static str,
    /// What it holds.
    pub kind: FieldKind,
    /// NULL allowed (the field is an `Option`).
    pub nullable: bool,
    /// UNIQUE.
    pub unique: bool,
    /// PRIMARY KEY.
    pub primary_key: bool,
    /// A DEFAULT, as an SQL literal.
    pub default: Option<&'static str>,
    /// Set to the current time on every insert and update.
    pub auto_now: bool,
    /// Set to the current time on insert.
    pub auto_now_add: bool,
    /// Whether the struct has a field for it (the implicit `id` has none).
    pub in_struct: bool,
    /// `"table"."column"`, precomputed by the derive for the query builders.
    pub qualified: &'static str,
    /// The column's earlier name (`#[field(renamed_from = "old")]`), so a migration renames it
    /// without asking.
    pub renamed_from: Option<&'static str>,
    /// An index on the column (`#[field(index)]`; foreign keys always have one).
    pub index: bool,
}

impl ColumnSchema {
    /// A column with no constraints; the derive fills in the rest.
    pub const fn new(name: &'static str, kind: FieldKind) -> Self {
        ColumnSchema {
            name,
            kind,
            nullable: false,
            unique: false,
            primary_key: false,
            default: None,
            auto_now: false,
            auto_now_add: false,
            in_struct: true,
            qualified: "",
            renamed_from: None,
            index: false,
        }
    }

    /// Whether the column gets an index: asked for, or a foreign key.
    pub fn indexed(&self) -> bool {
        self.index || self.reference().is_some()
    }

    /// `CREATE INDEX` for this column of `table`.
    pub fn index_sql(&self, table: &str) -> String {
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {} ({})",
            quote_ident(&format!("{table}_{}_idx", self.name)),
            quote_ident(table),
            quote_ident(self.name)
        )
    }

    /// The SQLite storage type ([`Dialect::column_type`](super::Dialect::column_type) gives
    /// each backend's).
    pub fn sql_type(&self) -> &'static str {
        match super::Dialect::Sqlite.column_type(self) {
            std::borrow::Cow::Borrowed(name) => name,
            std::borrow::Cow::Owned(_) => "TEXT",
        }
    }

    /// Whether the database assigns it (skipped on insert).
    pub fn is_auto(&self) -> bool {
        matches!(self.kind, FieldKind::Auto)
    }

    /// The foreign key this column is, if any.
    pub fn reference(&self) -> Option<&Reference> {
        match &self.kind {
            FieldKind::ForeignKey(r) | FieldKind::OneToOne(r) => Some(r),
            _ => None,
        }
    }

    /// The column's definition inside SQLite's CREATE TABLE
    /// ([`Dialect::column_definition`](super::Dialect::column_definition) gives each backend's).
    pub fn definition(&self) -> String {
        super::Dialect::Sqlite.column_definition(self)
    }
}

/// A model's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSchema {
    /// The table's name.
    pub name: &'static str,
    /// Its columns, primary key first.
    pub columns: &'static [ColumnSchema],
    /// Whether this is the user model (`#[model(authorized_user)]`).
    pub authorized_user: bool,
    /// `"table"`, precomputed by the derive.
    pub quoted_name: &'static str,
    /// The key column, then the struct's columns, qualified, comma-separated: what a SELECT of a
    /// [`Row`](super::Row) reads.
    pub select_list: &'static str,
    /// `INSERT INTO "table" (every struct column but auto ones) VALUES (?, ...)`.
    pub insert_sql: &'static str,
    /// The table's earlier name (`#[model(renamed_from = "old")]`).
    pub renamed_from: Option<&'static str>,
    /// Sets of columns no two rows may share (`#[model(unique(a, b))]`), each a unique index.
    pub unique_together: &'static [&'static [&'static str]],
}

impl TableSchema {
    /// The primary key column.
    pub fn primary_key(&self) -> Option<&ColumnSchema> {
        self.columns.iter().find(|c| c.primary_key)
    }

    /// SQLite's CREATE TABLE statement, then its indexes
    /// ([`Dialect::create_table`](super::Dialect::create_table) gives each backend's).
    pub fn create_sql(&self) -> Vec<String> {
        super::Dialect::Sqlite.create_table(self)
    }

    /// The columns the struct holds, in order (what a SELECT of the model reads).
    pub fn struct_columns(&self) -> impl Iterator<Item = &'static ColumnSchema> + 'static {
        let columns: &'static [ColumnSchema] = self.columns;
        columns.iter().filter(|c| c.in_struct)
    }
}

/// The name of the unique index over `columns` of `table`.
pub fn unique_index_name(table: &str, columns: &[&str]) -> String {
    format!("{table}_{}_key", columns.join("_"))
}

/// `CREATE UNIQUE INDEX` over `columns` of `table`.
pub fn unique_index_sql(table: &str, columns: &[&str]) -> String {
    format!(
        "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})",
        quote_ident(&unique_index_name(table, columns)),
        quote_ident(table),
        columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// An identifier in double quotes (table and column names come from Rust identifiers, so they
/// never contain a quote; doubling makes that safe regardless).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEACHER: TableSchema = TableSchema {
        name: "teacher",
        columns: &[
            ColumnSchema {
                primary_key: true,
                in_struct: false,
                ..ColumnSchema::new("id", FieldKind::Auto)
            },
            ColumnSchema {
                unique: true,
                ..ColumnSchema::new("name", FieldKind::Char { max_length: 50 })
            },
            ColumnSchema {
                nullable: true,
                ..ColumnSchema::new(
                    "mentor",
                    FieldKind::ForeignKey(Reference {
                        table: "teacher",
                        column: "id",
                        on_delete: OnDelete::SetNull,
                    }),
                )
            },
            ColumnSchema {
                default: Some("0"),
                ..ColumnSchema::new("age", FieldKind::PositiveInteger)
            },
        ],
        authorized_user: false,
        quoted_name: "\"teacher\"",
        select_list: "",
        insert_sql: "",
        renamed_from: None,
        unique_together: &[],
    };

    #[test]
    fn create_table_sql_has_every_constraint() {
        let sql = TEACHER.create_sql();
        assert_eq!(
            sql[0],
            "CREATE TABLE IF NOT EXISTS \"teacher\" (\n    \
             \"id\" INTEGER PRIMARY KEY AUTOINCREMENT,\n    \
             \"name\" TEXT NOT NULL UNIQUE CHECK (length(\"name\") <= 50),\n    \
             \"mentor\" INTEGER REFERENCES \"teacher\" (\"id\") ON DELETE SET NULL DEFERRABLE INITIALLY DEFERRED,\n    \
             \"age\" INTEGER NOT NULL DEFAULT 0 CHECK (\"age\" >= 0)\n)"
        );
        assert_eq!(
            sql[1],
            "CREATE INDEX IF NOT EXISTS \"teacher_mentor_idx\" ON \"teacher\" (\"mentor\")"
        );
    }

    #[test]
    fn the_sql_is_accepted_by_sqlite() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for statement in TEACHER.create_sql() {
            conn.execute(&statement, []).unwrap();
        }
    }
}
