//! Raw SQL, the escape hatch: your statement, its values still bound (never spliced), its rows
//! read into a model's [`Row`] (by column name) or a tuple (by position), all in fluxon's own
//! value types ([`Value`], [`SqlRow`]).
//!
//! ```
//! use fluxon::db::{Database, Executor, Model, Raw, Row};
//!
//! #[derive(Model)]
//! struct Course {
//!     title: String,
//!     seats: u32,
//! }
//!
//! # fn main() -> Result<(), fluxon::db::DbError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path().join("raw.sqlite3"))?;
//! db.create_tables(&[Course::SCHEMA])?;
//! db.insert(&Course { title: "Logic".into(), seats: 12 })?;
//! let big: Vec<Row<Course>> = db.execute(Raw::query("SELECT * FROM course WHERE seats > ?").bind(10))?;
//! assert_eq!(big[0].title, "Logic");
//! let pairs: Vec<(String, i64)> =
//!     db.execute(Raw::query("SELECT title, seats * 2 FROM course WHERE title LIKE ?").bind("L%"))?;
//! assert_eq!(pairs, [("Logic".to_owned(), 24)]);
//! let changed = db.execute(Raw::statement("UPDATE course SET seats = seats + ?").bind(1))?;
//! assert_eq!(changed, 1);
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use super::conn::Conn;
use super::dialect::Dialect;
use super::statement::{AllRows, Statement};
use rust_decimal::Decimal;

use super::model::Model;
use super::query::Query;
use super::row::Row;
use super::schema::ColumnSchema;
use super::sql::{SqlRow, Value};
use super::value::SqlType;
use super::DbError;

/// What a row of a raw query is read as.
pub trait FromSqlRow: Sized + Send + 'static {
    /// Reads one row.
    fn from_sql_row(row: &SqlRow<'_>) -> Result<Self, DbError>;
}

/// A model's row, its columns found by name (`SELECT *` works; so does any order), the key
/// column included.
impl<M: Model> FromSqlRow for Row<M> {
    fn from_sql_row(row: &SqlRow<'_>) -> Result<Self, DbError> {
        let position = |column: &'static ColumnSchema| {
            (0..row.len())
                .find(|&i| row.column_name(i) == Some(column.name))
                .ok_or_else(|| DbError::Decode {
                    column: column.name,
                    expected: "a column of the result",
                    reason: format!("the query did not select `{}`", column.name),
                })
        };
        // Gathered into the layout a model reads (key, then the struct's columns), by name.
        let key = row.get_ref(position(&M::SCHEMA.columns[0])?)?;
        let mut values = vec![key];
        for column in M::SCHEMA.struct_columns() {
            values.push(row.get_ref(position(column)?)?);
        }
        Row::read(&SqlRow::from_values(&values), 0)
    }
}

macro_rules! raw_tuple {
    ($(($t:ident, $i:tt)),+) => {
        /// A tuple, column by column in order.
        impl<$($t: SqlType),+> FromSqlRow for ($($t,)+) {
            fn from_sql_row(row: &SqlRow<'_>) -> Result<Self, DbError> {
                Ok(($(
                    $t::from_sql(row.get_ref($i)?, &ColumnSchema::new("raw", $t::KIND))?,
                )+))
            }
        }
    };
}

raw_tuple!((A, 0));
raw_tuple!((A, 0), (B, 1));
raw_tuple!((A, 0), (B, 1), (C, 2));
raw_tuple!((A, 0), (B, 1), (C, 2), (D, 3));
raw_tuple!((A, 0), (B, 1), (C, 2), (D, 3), (E, 4));
raw_tuple!((A, 0), (B, 1), (C, 2), (D, 3), (E, 4), (F, 5));

/// A raw statement and its bound values: [`Raw::query`] reads rows, [`Raw::statement`] writes.
pub struct Raw<T> {
    sql: String,
    values: Vec<Value>,
    writes: bool,
    _output: PhantomData<fn() -> T>,
}

impl<T> Raw<T> {
    /// Binds the next `?`.
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.values.push(value.into());
        self
    }
}

impl<T: FromSqlRow> Raw<Vec<T>> {
    /// A query whose rows are read as `T` (a [`Row`] of a model, or a tuple). It runs on a read
    /// connection: a statement that writes is refused there.
    pub fn query(sql: impl Into<String>) -> Self {
        Raw {
            sql: sql.into(),
            values: Vec::new(),
            writes: false,
            _output: PhantomData,
        }
    }
}

impl Raw<usize> {
    /// A statement that writes; produces how many rows it changed.
    pub fn statement(sql: impl Into<String>) -> Self {
        Raw {
            sql: sql.into(),
            values: Vec::new(),
            writes: true,
            _output: PhantomData,
        }
    }
}

impl<T: FromSqlRow> Query for Raw<Vec<T>> {
    type Output = Vec<T>;
    fn writes(&self) -> bool {
        self.writes
    }
    fn run(self, conn: &Conn<'_>) -> Result<Vec<T>, DbError> {
        conn.statement(self.rows())
    }
    fn into_statement(self, _: Dialect) -> Result<Statement<Vec<T>>, Self> {
        Ok(self.rows())
    }
}

impl<T: FromSqlRow> Raw<Vec<T>> {
    fn rows(self) -> Statement<Vec<T>> {
        let read = AllRows::new(T::from_sql_row);
        Statement::rows(self.sql, self.values, self.writes, read)
    }
}

impl Query for Raw<usize> {
    type Output = usize;
    fn writes(&self) -> bool {
        true
    }
    fn run(self, conn: &Conn<'_>) -> Result<usize, DbError> {
        conn.statement(self.changed())
    }
    fn into_statement(self, _: Dialect) -> Result<Statement<usize>, Self> {
        Ok(self.changed())
    }
}

impl Raw<usize> {
    fn changed(self) -> Statement<usize> {
        Statement::changed(self.sql, self.values, Ok)
    }
}

macro_rules! value_from {
    ($($ty:ty => $variant:ident as $as:ty),*) => {$(
        impl From<$ty> for Value {
            fn from(value: $ty) -> Value {
                Value::$variant(<$as>::from(value))
            }
        }
    )*};
}

value_from!(i64 => Integer as i64, i32 => Integer as i64, u32 => Integer as i64,
    bool => Integer as i64, f64 => Real as f64, String => Text as String, Vec<u8> => Blob as Vec<u8>);

impl From<&str> for Value {
    fn from(value: &str) -> Value {
        Value::Text(value.to_owned())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(value: Option<T>) -> Value {
        value.map_or(Value::Null, Into::into)
    }
}

/// A decimal binds as text (exact); compare it with a decimal column through the query API,
/// which knows the column's scale.
impl From<Decimal> for Value {
    fn from(value: Decimal) -> Value {
        Value::Text(value.to_string())
    }
}
