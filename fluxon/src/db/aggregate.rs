//! Aggregates: `COUNT`, `SUM`, `AVG`, `MIN`, `MAX` of a column, read as typed values, grouped
//! with `group_by`; and annotations: a row's count or sum of the rows that refer to it
//! ([`count_of`], [`sum_of`]).
//!
//! ```
//! use fluxon::db::{count_of, count_rows, Database, Executor, ForeignKey, Model};
//!
//! #[derive(Model)]
//! struct Teacher {
//!     name: String,
//! }
//!
//! #[derive(Model)]
//! struct Course {
//!     #[field(on_delete = cascade)]
//!     teacher: ForeignKey<Teacher>,
//!     seats: u32,
//! }
//!
//! # fn main() -> Result<(), fluxon::db::DbError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path().join("school.sqlite3"))?;
//! db.create_tables(&[Teacher::SCHEMA, Course::SCHEMA])?;
//! let ada = db.insert(&Teacher { name: "Ada".into() })?;
//! for seats in [10, 30] {
//!     db.insert(&Course { teacher: ada.into(), seats })?;
//! }
//! // One row: (number of courses, total seats, average seats, fewest seats).
//! let (n, total, mean, least) = db
//!     .check_all::<Course>()
//!     .aggregate((count_rows(), Course::seats.sum(), Course::seats.avg(), Course::seats.min()))?;
//! assert_eq!((n, total, mean, least), (2, Some(40), Some(20.0), Some(10)));
//! // Per teacher, as typed tuples.
//! let per_teacher = db
//!     .check_all::<Course>()
//!     .group_by(Course::teacher)
//!     .columns((Course::teacher, Course::seats.sum()))?;
//! assert_eq!(per_teacher, [(ForeignKey::new(ada), Some(40))]);
//! // Each teacher with the number of their courses (a subquery per row, in one statement).
//! let teachers = db.check_all::<Teacher>().annotate(count_of(Course::teacher))?;
//! assert_eq!(teachers[0].1, 2);
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use super::dialect::Dialect;
use super::sql::ValueRef;
use rust_decimal::Decimal;

use super::column::{Column, Filter, Order, Relation};
use super::model::Model;
use super::schema::{quote_ident, ColumnSchema, FieldKind};
use super::value::{ColumnType, IntoColumnValue, SqlType};
use super::DbError;

/// Something a query reads per row: a column, or an aggregate or annotation of `M`'s rows.
pub trait Selectable<M>: Send + 'static {
    /// The Rust type it reads as.
    type Output: Send + 'static;
    /// The SQL expression.
    fn expression(&self) -> String;
    /// The SQL expression as `dialect` writes it (where the backends store a value differently).
    fn expression_for(&self, dialect: Dialect) -> String {
        let _ = dialect;
        self.expression()
    }
    /// Decodes its value.
    fn decode(&self, value: ValueRef<'_>) -> Result<Self::Output, DbError>;
}

impl<M: Model, T: ColumnType, W: Send + 'static> Selectable<M> for Column<M, T, W> {
    type Output = T;
    fn expression(&self) -> String {
        self.qualified().to_owned()
    }
    fn decode(&self, value: ValueRef<'_>) -> Result<T, DbError> {
        T::from_sql(value, self.schema())
    }
}

/// An aggregate over `M`'s rows (or a subquery per row), read as a `T`.
pub struct Aggregate<M, T> {
    sql: String,
    /// For an average of a decimal column: its decimal places. SQLite stores the decimal as a
    /// count of its smallest unit, so its average is divided back; PostgreSQL's NUMERIC is exact.
    unscale: Option<u32>,
    /// Decodes the value (a sum of a decimal column needs the column's scale).
    column: &'static ColumnSchema,
    _types: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Aggregate<M, T> {
    fn new(sql: String, column: &'static ColumnSchema) -> Self {
        Aggregate {
            sql,
            unscale: None,
            column,
            _types: PhantomData,
        }
    }
}

impl<M: 'static, T: SqlType> Selectable<M> for Aggregate<M, T> {
    type Output = T;
    fn expression(&self) -> String {
        self.expression_for(Dialect::Sqlite)
    }
    fn expression_for(&self, dialect: Dialect) -> String {
        match (dialect, self.unscale) {
            (Dialect::Sqlite, Some(places)) => format!("{} / 1e{places}", self.sql),
            _ => self.sql.clone(),
        }
    }
    fn decode(&self, value: ValueRef<'_>) -> Result<T, DbError> {
        T::from_sql(value, self.column)
    }
}

impl<M: Model, T: SqlType> Aggregate<M, T> {
    fn compare(self, op: &str, value: T) -> Filter<M> {
        let bound = value.to_sql(self.column);
        Filter::with_value(format!("{}{op}", self.sql), bound)
    }

    /// `aggregate = value`: in `having`, or in a filter for a per-row annotation.
    pub fn eq(self, value: impl IntoColumnValue<T>) -> Filter<M> {
        self.compare(" = ?", value.into_column_value())
    }

    /// `aggregate > value`.
    pub fn gt(self, value: impl IntoColumnValue<T>) -> Filter<M> {
        self.compare(" > ?", value.into_column_value())
    }

    /// `aggregate >= value`.
    pub fn ge(self, value: impl IntoColumnValue<T>) -> Filter<M> {
        self.compare(" >= ?", value.into_column_value())
    }

    /// `aggregate < value`.
    pub fn lt(self, value: impl IntoColumnValue<T>) -> Filter<M> {
        self.compare(" < ?", value.into_column_value())
    }

    /// `aggregate <= value`.
    pub fn le(self, value: impl IntoColumnValue<T>) -> Filter<M> {
        self.compare(" <= ?", value.into_column_value())
    }

    /// Ascending order by this aggregate.
    pub fn asc(self) -> Order<M> {
        Order::new(format!("{} ASC", self.sql))
    }

    /// Descending order by this aggregate.
    pub fn desc(self) -> Order<M> {
        Order::new(format!("{} DESC", self.sql))
    }
}

/// The schema an aggregate with no column of its own decodes with (a count).
static COUNT: ColumnSchema = ColumnSchema::new("count", FieldKind::BigInteger);

/// `COUNT(*)`: how many rows (in each group).
pub fn count_rows<M: Model>() -> Aggregate<M, i64> {
    Aggregate::new("COUNT(*)".to_owned(), &COUNT)
}

/// Column types whose values add up: what `SUM` of them reads as.
pub trait Summable: SqlType {
    /// The sum's type (wider than the column's for the small integers).
    type Sum: SqlType;
}

impl Summable for i32 {
    type Sum = i64;
}
impl Summable for u32 {
    type Sum = i64;
}
impl Summable for i64 {
    type Sum = i64;
}
impl Summable for f64 {
    type Sum = f64;
}
impl Summable for Decimal {
    type Sum = Decimal;
}

impl<M: Model, T: ColumnType, W> Column<M, T, W> {
    fn aggregate<R>(self, function: &str) -> Aggregate<M, R> {
        Aggregate::new(format!("{function}({})", self.qualified()), self.schema())
    }

    /// `COUNT(column)`: how many rows have a value (not NULL) in this column.
    pub fn count(self) -> Aggregate<M, i64> {
        Aggregate::new(format!("COUNT({})", self.qualified()), &COUNT)
    }

    /// `MIN(column)`; `None` when there are no values.
    pub fn min(self) -> Aggregate<M, Option<T::Inner>>
    where
        T::Inner: ColumnType,
    {
        self.aggregate("MIN")
    }

    /// `MAX(column)`; `None` when there are no values.
    pub fn max(self) -> Aggregate<M, Option<T::Inner>>
    where
        T::Inner: ColumnType,
    {
        self.aggregate("MAX")
    }
}

impl<M: Model, T: ColumnType, W> Column<M, T, W>
where
    T::Inner: Summable,
    <T::Inner as Summable>::Sum: ColumnType,
{
    /// `SUM(column)`; `None` when there are no values. Integers add up as `i64`.
    pub fn sum(self) -> Aggregate<M, Option<<T::Inner as Summable>::Sum>> {
        self.aggregate("SUM")
    }

    /// `AVG(column)`; `None` when there are no values.
    pub fn avg(self) -> Aggregate<M, Option<f64>> {
        // On SQLite, AVG of a decimal's scaled integers is the scaled mean: undo the scale.
        let mut avg = Aggregate::new(format!("AVG({})", self.qualified()), &AVG);
        if let FieldKind::Decimal { decimal_places, .. } = self.schema().kind {
            avg.unscale = Some(decimal_places).filter(|places| *places > 0);
        }
        avg
    }
}

/// The schema an average decodes with.
static AVG: ColumnSchema = ColumnSchema::new("avg", FieldKind::Float);

/// A subquery per row of `M` over the rows of `C` whose foreign key `column` refers to it.
fn related<M: Model, C: Model, R, W>(column: Column<C, R, W>, what: &str) -> String
where
    R: ColumnType + Relation<Target = M>,
{
    format!(
        "(SELECT {what} FROM {} WHERE {} = {})",
        quote_ident(C::TABLE),
        column.qualified(),
        M::SCHEMA.columns[0].qualified
    )
}

/// Per row of `M`: how many rows of `C` refer to it through `column`
/// (`count_of(Enrollment::course)`: each course's number of enrolments). Use it in
/// [`annotate`](super::Check::annotate), `columns`, `order_by` or a filter.
pub fn count_of<M: Model, C: Model, R, W>(column: Column<C, R, W>) -> Aggregate<M, i64>
where
    R: ColumnType + Relation<Target = M>,
{
    Aggregate::new(related(column, "COUNT(*)"), &COUNT)
}

/// Per row of `M`: the sum of `value` over the rows of `C` that refer to it through `column`
/// (`sum_of(OrderLine::order, OrderLine::quantity)`); `None` when none do.
pub fn sum_of<M: Model, C: Model, R, W, T, WV>(
    column: Column<C, R, W>,
    value: Column<C, T, WV>,
) -> Aggregate<M, Option<<T::Inner as Summable>::Sum>>
where
    R: ColumnType + Relation<Target = M>,
    T: ColumnType,
    T::Inner: Summable,
{
    let what = format!("SUM({})", value.qualified());
    Aggregate::new(related(column, &what), value.schema())
}
