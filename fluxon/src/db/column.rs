//! Typed columns (`User::username`) and what they build: filters combined with `&`, `|` and `!`,
//! orderings, and assignments. A column knows its model and its Rust type, so comparing it with
//! a value of another type, or filtering one model by another's column, does not compile.

use std::marker::PhantomData;
use std::ops::{BitAnd, BitOr, Not};

use super::sql::Value;

use super::model::{ForeignKey, Model, OneToOne};
use super::row::Row;
use super::schema::ColumnSchema;
use super::value::{ColumnType, IntoColumnValue, SqlType};
use super::DbError;

/// A column the program may set (every column but an auto field).
#[derive(Debug, Clone, Copy)]
pub struct Writable;

/// A column the database assigns (an auto primary key): readable and comparable, never set.
#[derive(Debug, Clone, Copy)]
pub struct ReadOnly;

/// A column the program may set whose values no two rows share (`unique`, or a primary key the
/// program gives): what an upsert's conflict target must be.
#[derive(Debug, Clone, Copy)]
pub struct Unique;

/// The column kinds a program may set: [`Writable`] and [`Unique`].
#[diagnostic::on_unimplemented(
    message = "this column is assigned by the database (an auto primary key): it cannot be set",
    label = "read-only column"
)]
pub trait Settable: Send + 'static {}
impl Settable for Writable {}
impl Settable for Unique {}

/// The phantom types of a column: its model, its Rust type, whether it can be set.
type ColumnTypes<M, T, W> = PhantomData<fn() -> (M, T, W)>;

/// Column `index` of model `M`, holding a `T`. The derive makes one constant per field:
/// `User::username: Column<User, String>`.
pub struct Column<M, T, W = Writable> {
    index: usize,
    _types: ColumnTypes<M, T, W>,
}

impl<M, T, W> Clone for Column<M, T, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T, W> Copy for Column<M, T, W> {}

impl<M, T, W> std::fmt::Debug for Column<M, T, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Column({})", self.index)
    }
}

impl<M: Model, T: ColumnType, W> Column<M, T, W> {
    /// The column at `index` in `M::SCHEMA.columns` (called by the derive).
    #[doc(hidden)]
    pub const fn new(index: usize) -> Self {
        Column {
            index,
            _types: PhantomData,
        }
    }

    /// The column's schema.
    pub fn schema(&self) -> &'static ColumnSchema {
        &M::SCHEMA.columns[self.index]
    }

    /// The column's name.
    pub fn name(&self) -> &'static str {
        self.schema().name
    }

    /// `"table"."column"`.
    pub(crate) fn qualified(&self) -> &'static str {
        self.schema().qualified
    }

    /// `"table"."column"` followed by `tail`, without the formatting machinery (this runs for
    /// every filter of every query).
    fn sql_with(&self, tail: &str) -> String {
        let qualified = self.qualified();
        let mut sql = String::with_capacity(qualified.len() + tail.len());
        sql.push_str(qualified);
        sql.push_str(tail);
        sql
    }

    fn compare(self, op: &str, value: T::Inner) -> Filter<M> {
        let mut filter = Filter::sql(self.sql_with(op));
        filter.bind(value.to_sql(self.schema()));
        filter
    }

    /// `column = value`.
    pub fn eq(self, value: impl IntoColumnValue<T::Inner>) -> Filter<M> {
        self.compare(" = ?", value.into_column_value())
    }

    /// `column <> value` (a NULL column matches neither `eq` nor `ne`, as in SQL).
    pub fn ne(self, value: impl IntoColumnValue<T::Inner>) -> Filter<M> {
        self.compare(" <> ?", value.into_column_value())
    }

    /// `column < value`.
    pub fn lt(self, value: impl IntoColumnValue<T::Inner>) -> Filter<M> {
        self.compare(" < ?", value.into_column_value())
    }

    /// `column <= value`.
    pub fn le(self, value: impl IntoColumnValue<T::Inner>) -> Filter<M> {
        self.compare(" <= ?", value.into_column_value())
    }

    /// `column > value`.
    pub fn gt(self, value: impl IntoColumnValue<T::Inner>) -> Filter<M> {
        self.compare(" > ?", value.into_column_value())
    }

    /// `column >= value`.
    pub fn ge(self, value: impl IntoColumnValue<T::Inner>) -> Filter<M> {
        self.compare(" >= ?", value.into_column_value())
    }

    /// `column IN (values...)`; an empty list matches nothing.
    pub fn in_list<V: IntoColumnValue<T::Inner>>(
        self,
        values: impl IntoIterator<Item = V>,
    ) -> Filter<M> {
        let values: Vec<T::Inner> = values.into_iter().map(V::into_column_value).collect();
        if values.is_empty() {
            return Filter::sql("FALSE".to_owned());
        }
        let marks = vec!["?"; values.len()].join(", ");
        let mut filter = Filter::sql(format!("{} IN ({marks})", self.qualified()));
        for value in values {
            filter.bind(value.to_sql(self.schema()));
        }
        filter
    }

    /// Ascending order.
    pub fn asc(self) -> Order<M> {
        Order::new(self.sql_with(" ASC"))
    }

    /// Descending order.
    pub fn desc(self) -> Order<M> {
        Order::new(self.sql_with(" DESC"))
    }
}

impl<M: Model, T: ColumnType, W: Settable> Column<M, T, W> {
    /// `column = value` in an update, or one column of an insert by pairs.
    pub fn set(self, value: impl IntoColumnValue<T>) -> Assignment<M> {
        let schema = self.schema();
        let value = value.into_column_value();
        let values = M::validate_column(self.index, &value)
            .map_err(DbError::Invalid)
            .and_then(|()| value.to_sql(schema))
            .map(|v| vec![v]);
        Assignment {
            column: schema,
            sql: None,
            values,
            _model: PhantomData,
        }
    }
}

/// Columns holding text.
pub trait TextColumn {}
impl TextColumn for String {}
impl TextColumn for Option<String> {}

impl<M: Model, T: ColumnType + TextColumn, W> Column<M, T, W> {
    /// `column LIKE pattern` (`%` any run of characters, `_` one character), case-insensitive
    /// on every backend: both sides are lowered first (ASCII letters on SQLite, every letter on
    /// PostgreSQL).
    pub fn like(self, pattern: impl Into<String>) -> Filter<M> {
        let mut filter = Filter::sql(format!("lower({}) LIKE lower(?)", self.sql_with("")));
        filter.bind(Ok(Value::Text(pattern.into())));
        filter
    }

    /// `column` contains `text` as it is: `%` and `_` in `text` match only themselves (ASCII
    /// case-insensitive, as `like`). What to use for a search box, where a user's `%` must not
    /// become a wildcard.
    pub fn contains(self, text: impl AsRef<str>) -> Filter<M> {
        self.like_escaped(format!("%{}%", escape_like(text.as_ref())))
    }

    /// `column` starts with `text` as it is (see [`contains`](Self::contains)).
    pub fn starts_with(self, text: impl AsRef<str>) -> Filter<M> {
        self.like_escaped(format!("{}%", escape_like(text.as_ref())))
    }

    /// `column` ends with `text` as it is (see [`contains`](Self::contains)).
    pub fn ends_with(self, text: impl AsRef<str>) -> Filter<M> {
        self.like_escaped(format!("%{}", escape_like(text.as_ref())))
    }

    fn like_escaped(self, pattern: String) -> Filter<M> {
        let mut filter = Filter::sql(format!(
            "lower({}) LIKE lower(?) ESCAPE '\\'",
            self.sql_with("")
        ));
        filter.bind(Ok(Value::Text(pattern)));
        filter
    }
}

/// `text` with LIKE's wildcards (`%`, `_`) and the escape character (`\`) escaped, so a pattern
/// made of it matches it literally (with `ESCAPE '\'`).
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl<M: Model, T: ColumnType, W> Column<M, Option<T>, W>
where
    Option<T>: ColumnType,
{
    /// `column IS NULL`.
    pub fn is_null(self) -> Filter<M> {
        Filter::sql(self.sql_with(" IS NULL"))
    }

    /// `column IS NOT NULL`.
    pub fn is_not_null(self) -> Filter<M> {
        Filter::sql(self.sql_with(" IS NOT NULL"))
    }
}

/// A WHERE condition on model `M`, with its values bound as parameters (never spliced into SQL).
pub struct Filter<M> {
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
    pub(crate) error: Option<DbError>,
    _model: PhantomData<fn() -> M>,
}

impl<M> std::fmt::Debug for Filter<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter")
            .field("sql", &self.sql)
            .field("params", &self.params)
            .finish()
    }
}

impl<M> Filter<M> {
    /// A condition with one bound value (or the error making the value gave).
    pub(crate) fn with_value(sql: String, value: Result<Value, DbError>) -> Self {
        let mut filter = Filter::sql(sql);
        filter.bind(value);
        filter
    }

    pub(crate) fn sql(sql: String) -> Self {
        Filter {
            sql,
            params: Vec::new(),
            error: None,
            _model: PhantomData,
        }
    }

    /// Every row.
    pub fn all() -> Self {
        Filter::sql("TRUE".to_owned())
    }

    /// The row whose primary key is `key`.
    pub(crate) fn key_eq(key: &M::Key) -> Self
    where
        M: Model,
    {
        let column = &M::SCHEMA.columns[0];
        let mut filter = Filter::sql(format!("{} = ?", column.qualified));
        filter.bind(key.to_sql(column));
        filter
    }

    /// The rows whose primary key is above `key`.
    pub(crate) fn key_gt(key: &M::Key) -> Self
    where
        M: Model,
    {
        let column = &M::SCHEMA.columns[0];
        Filter::with_value(format!("{} > ?", column.qualified), key.to_sql(column))
    }

    fn bind(&mut self, value: Result<Value, DbError>) {
        match value {
            Ok(value) => self.params.push(value),
            Err(err) => {
                self.error.get_or_insert(err);
            }
        }
    }

    fn join(mut self, op: &str, other: Filter<M>) -> Filter<M> {
        self.sql = format!("({}) {op} ({})", self.sql, other.sql);
        self.params.extend(other.params);
        if self.error.is_none() {
            self.error = other.error;
        }
        self
    }

    /// The SQL text (with `?` for each value), for logs and tests.
    pub fn to_sql(&self) -> &str {
        &self.sql
    }
}

impl<M> BitAnd for Filter<M> {
    type Output = Filter<M>;
    fn bitand(self, other: Filter<M>) -> Filter<M> {
        self.join("AND", other)
    }
}

impl<M> BitOr for Filter<M> {
    type Output = Filter<M>;
    fn bitor(self, other: Filter<M>) -> Filter<M> {
        self.join("OR", other)
    }
}

impl<M> Not for Filter<M> {
    type Output = Filter<M>;
    fn not(mut self) -> Filter<M> {
        self.sql = format!("NOT ({})", self.sql);
        self
    }
}

/// An ORDER BY term.
pub struct Order<M> {
    pub(crate) sql: String,
    _model: PhantomData<fn() -> M>,
}

impl<M> Order<M> {
    pub(crate) fn new(sql: String) -> Self {
        Order {
            sql,
            _model: PhantomData,
        }
    }
}

/// `column = value`, for updates and inserts by pairs; or `column = expression` for updates.
pub struct Assignment<M> {
    pub(crate) column: &'static ColumnSchema,
    /// The SQL after `column = `: `?`, or an expression of the row's columns.
    pub(crate) sql: Option<String>,
    /// The values bound, in order.
    pub(crate) values: Result<Vec<Value>, DbError>,
    _model: PhantomData<fn() -> M>,
}

impl<M> Assignment<M> {
    /// `column = (sql)` with these values bound.
    pub(crate) fn expression(
        column: &'static ColumnSchema,
        sql: String,
        values: Result<Vec<Value>, DbError>,
    ) -> Self {
        Assignment {
            column,
            sql: Some(sql),
            values,
            _model: PhantomData,
        }
    }
}

/// A foreign key column that a query can follow with a join.
pub trait Relation {
    /// The model referred to.
    type Target: Model;
    /// What a joined row of the target becomes: its [`Row`], or an `Option` of it for a
    /// nullable reference (a LEFT JOIN).
    type Joined: Send + 'static;
    /// Whether the reference may be NULL.
    const OPTIONAL: bool;
    /// Wraps a decoded target row (or its absence).
    fn wrap(target: Option<Row<Self::Target>>) -> Result<Self::Joined, DbError>;
}

macro_rules! relation {
    ($ty:ident) => {
        impl<T: Model> Relation for $ty<T> {
            type Target = T;
            type Joined = Row<T>;
            const OPTIONAL: bool = false;
            fn wrap(target: Option<Row<T>>) -> Result<Row<T>, DbError> {
                target.ok_or(DbError::NotFound)
            }
        }

        impl<T: Model> Relation for Option<$ty<T>> {
            type Target = T;
            type Joined = Option<Row<T>>;
            const OPTIONAL: bool = true;
            fn wrap(target: Option<Row<T>>) -> Result<Option<Row<T>>, DbError> {
                Ok(target)
            }
        }
    };
}

relation!(ForeignKey);
relation!(OneToOne);

#[cfg(test)]
mod tests {
    // Filters are exercised with real models in tests/db; here only the boolean structure.
    use super::*;

    struct Nothing;

    #[test]
    fn combinators_nest_with_parentheses() {
        let a: Filter<Nothing> = Filter::sql("a".into());
        let b = Filter::sql("b".into());
        let c = Filter::sql("c".into());
        assert_eq!((!(a & b) | c).to_sql(), "(NOT ((a) AND (b))) OR (c)");
    }
}
