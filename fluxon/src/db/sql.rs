//! fluxon's own SQL values and rows: what a custom field type ([`SqlType`](super::SqlType)), a
//! model's `from_row` and raw SQL ([`Raw`](super::Raw)) speak. The database backend converts
//! to and from its driver's types, so code written against these does not change with it.

use rusqlite::types::{ToSql, ToSqlOutput};

use super::DbError;

/// An owned SQL value: what a field becomes to be stored, and what raw SQL binds.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// UTF-8 text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
    /// An exact decimal, at the scale of its column: SQLite stores it as the integer count of
    /// its smallest unit (`12.34` in a column of 2 places is 1234), PostgreSQL as NUMERIC.
    Decimal(rust_decimal::Decimal),
}

impl Value {
    /// What kind of value this is, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "a blob",
            Value::Decimal(_) => "a decimal",
        }
    }
}

/// A borrowed SQL value, as read from a row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// NULL.
    Null,
    /// A 64-bit integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// Text, as stored (UTF-8 unless something else wrote it: [`as_str`](Self::as_str) checks).
    Text(&'a [u8]),
    /// Bytes.
    Blob(&'a [u8]),
}

/// Why a stored value is not of the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found}")]
pub struct WrongType {
    /// What was asked for.
    pub expected: &'static str,
    /// What the value is.
    pub found: &'static str,
}

impl<'a> ValueRef<'a> {
    fn kind(&self) -> &'static str {
        match self {
            ValueRef::Null => "NULL",
            ValueRef::Integer(_) => "an integer",
            ValueRef::Real(_) => "a real",
            ValueRef::Text(_) => "text",
            ValueRef::Blob(_) => "a blob",
        }
    }

    fn wrong(&self, expected: &'static str) -> WrongType {
        WrongType {
            expected,
            found: self.kind(),
        }
    }

    /// The integer, if this is one.
    #[inline]
    pub fn as_i64(&self) -> Result<i64, WrongType> {
        match *self {
            ValueRef::Integer(n) => Ok(n),
            _ => Err(self.wrong("an integer")),
        }
    }

    /// The number, if this is a real (or an integer, widened, or text that reads as a number:
    /// PostgreSQL's NUMERIC, as an average of integers is).
    #[inline]
    pub fn as_f64(&self) -> Result<f64, WrongType> {
        match *self {
            ValueRef::Real(x) => Ok(x),
            ValueRef::Integer(n) => Ok(n as f64),
            ValueRef::Text(text) => std::str::from_utf8(text)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or(self.wrong("a real")),
            _ => Err(self.wrong("a real")),
        }
    }

    /// The text, if this is text in UTF-8.
    #[inline]
    pub fn as_str(&self) -> Result<&'a str, WrongType> {
        match *self {
            ValueRef::Text(bytes) => std::str::from_utf8(bytes).map_err(|_| WrongType {
                expected: "UTF-8 text",
                found: "text that is not UTF-8",
            }),
            _ => Err(self.wrong("text")),
        }
    }

    /// The bytes, if this is a blob (or text, as its bytes).
    #[inline]
    pub fn as_bytes(&self) -> Result<&'a [u8], WrongType> {
        match *self {
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(bytes),
            _ => Err(self.wrong("a blob")),
        }
    }

    /// Whether this is NULL.
    #[inline]
    pub fn is_null(&self) -> bool {
        matches!(self, ValueRef::Null)
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Value {
        match *self {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => Value::Integer(n),
            ValueRef::Real(x) => Value::Real(x),
            ValueRef::Text(bytes) => Value::Text(String::from_utf8_lossy(bytes).into_owned()),
            ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
        }
    }
}

impl<'a> ValueRef<'a> {
    /// The SQLite driver's form of this value.
    #[inline]
    pub(crate) fn to_driver(self) -> rusqlite::types::ValueRef<'a> {
        use rusqlite::types::ValueRef as R;
        match self {
            ValueRef::Null => R::Null,
            ValueRef::Integer(n) => R::Integer(n),
            ValueRef::Real(x) => R::Real(x),
            ValueRef::Text(bytes) => R::Text(bytes),
            ValueRef::Blob(bytes) => R::Blob(bytes),
        }
    }
}

impl<'a> From<rusqlite::types::ValueRef<'a>> for ValueRef<'a> {
    #[inline]
    fn from(value: rusqlite::types::ValueRef<'a>) -> Self {
        use rusqlite::types::ValueRef as R;
        match value {
            R::Null => ValueRef::Null,
            R::Integer(n) => ValueRef::Integer(n),
            R::Real(x) => ValueRef::Real(x),
            R::Text(bytes) => ValueRef::Text(bytes),
            R::Blob(bytes) => ValueRef::Blob(bytes),
        }
    }
}

impl From<rusqlite::types::Value> for Value {
    fn from(value: rusqlite::types::Value) -> Self {
        use rusqlite::types::Value as R;
        match value {
            R::Null => Value::Null,
            R::Integer(n) => Value::Integer(n),
            R::Real(x) => Value::Real(x),
            R::Text(text) => Value::Text(text),
            R::Blob(bytes) => Value::Blob(bytes),
        }
    }
}

/// Binds a value (the SQLite backend's side of the conversion).
impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::ValueRef as R;
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => R::Null,
            Value::Integer(n) => R::Integer(*n),
            Value::Real(x) => R::Real(*x),
            Value::Text(text) => R::Text(text.as_bytes()),
            Value::Blob(bytes) => R::Blob(bytes),
            Value::Decimal(d) => match i64::try_from(d.mantissa()) {
                Ok(units) => R::Integer(units),
                Err(_) => {
                    return Err(rusqlite::Error::ToSqlConversionFailure(
                        format!("{d} does not fit SQLite's 64-bit integer").into(),
                    ))
                }
            },
        }))
    }
}

/// One row of a result, read by column position.
pub struct SqlRow<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    /// A row of the driver's.
    Driver(&'a rusqlite::Row<'a>),
    /// Values gathered from one (a raw query's columns found by name).
    Values(&'a [ValueRef<'a>]),
    /// Values read from a PostgreSQL row, with its columns (for their names).
    Postgres(&'a [ValueRef<'a>], &'a [tokio_postgres::Column]),
}

impl<'a> SqlRow<'a> {
    #[inline]
    pub(crate) fn new(row: &'a rusqlite::Row<'a>) -> Self {
        SqlRow {
            inner: Inner::Driver(row),
        }
    }

    pub(crate) fn from_values(values: &'a [ValueRef<'a>]) -> Self {
        SqlRow {
            inner: Inner::Values(values),
        }
    }

    pub(crate) fn from_postgres(
        values: &'a [ValueRef<'a>],
        columns: &'a [tokio_postgres::Column],
    ) -> Self {
        SqlRow {
            inner: Inner::Postgres(values, columns),
        }
    }

    /// The value of column `index` (from 0).
    #[inline]
    pub fn get_ref(&self, index: usize) -> Result<ValueRef<'a>, DbError> {
        match self.inner {
            Inner::Driver(row) => Ok(row.get_ref(index)?.into()),
            Inner::Values(values) | Inner::Postgres(values, _) => values
                .get(index)
                .copied()
                .ok_or_else(|| DbError::Sqlite(rusqlite::Error::InvalidColumnIndex(index))),
        }
    }

    /// The integer in column `index` (a count, a key), or a decode error naming `what`.
    #[inline]
    pub(crate) fn integer(&self, index: usize, what: &'static str) -> Result<i64, DbError> {
        self.get_ref(index)?
            .as_i64()
            .map_err(|wrong| DbError::Decode {
                column: what,
                expected: "i64",
                reason: wrong.to_string(),
            })
    }

    /// The name of column `index`, as the statement gave it.
    pub fn column_name(&self, index: usize) -> Option<&str> {
        match self.inner {
            Inner::Driver(row) => row.as_ref().column_name(index).ok(),
            Inner::Values(_) => None,
            Inner::Postgres(_, columns) => columns.get(index).map(tokio_postgres::Column::name),
        }
    }

    /// How many columns the row has.
    pub fn len(&self) -> usize {
        match self.inner {
            Inner::Driver(row) => row.as_ref().column_count(),
            Inner::Values(values) | Inner::Postgres(values, _) => values.len(),
        }
    }

    /// Whether the row has no columns.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
