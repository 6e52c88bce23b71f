//! Expressions over a row's own columns, for updates computed by the database in one statement:
//! `Course::seats.set_expr(Course::seats - 1)` where `Course::seats.gt(0)`, or
//! `Post::views.increment(1)`. No read-modify-write race: the row's current value is used.

use std::marker::PhantomData;
use std::ops::{Add, Mul, Sub};

use super::sql::Value;

use super::column::{Assignment, Column, Settable};
use super::model::Model;
use super::value::{ColumnType, IntoColumnValue, SqlType};
use super::DbError;

/// Column types arithmetic applies to.
pub trait Numeric: SqlType {}
impl Numeric for i32 {}
impl Numeric for u32 {}
impl Numeric for i64 {}
impl Numeric for f64 {}
impl Numeric for rust_decimal::Decimal {}

/// An expression of `M`'s columns with the type `T`: a column, plus, minus or times values.
pub struct Expr<M, T> {
    pub(crate) sql: String,
    pub(crate) params: Result<Vec<Value>, DbError>,
    column: &'static super::ColumnSchema,
    _types: PhantomData<fn() -> (M, T)>,
}

impl<M: Model, T: ColumnType, W> From<Column<M, T, W>> for Expr<M, T> {
    fn from(column: Column<M, T, W>) -> Self {
        Expr {
            sql: column.qualified().to_owned(),
            params: Ok(Vec::new()),
            column: column.schema(),
            _types: PhantomData,
        }
    }
}

impl<M, T: ColumnType> Expr<M, T> {
    fn op(mut self, op: &str, value: T::Inner) -> Self {
        self.sql = format!("({} {op} ?)", self.sql);
        // A decimal is bound scaled, as the column stores it.
        let bound = value.to_sql(self.column);
        self.params = match (self.params, bound) {
            (Ok(mut params), Ok(value)) => {
                params.push(value);
                Ok(params)
            }
            (Err(err), _) | (_, Err(err)) => Err(err),
        };
        self
    }
}

macro_rules! arithmetic {
    ($trait:ident, $method:ident, $op:literal) => {
        impl<M: Model, T: ColumnType, W> $trait<T::Inner> for Column<M, T, W>
        where
            T::Inner: Numeric,
        {
            type Output = Expr<M, T>;
            fn $method(self, value: T::Inner) -> Expr<M, T> {
                Expr::from(self).op($op, value)
            }
        }

        impl<M: Model, T: ColumnType> $trait<T::Inner> for Expr<M, T>
        where
            T::Inner: Numeric,
        {
            type Output = Expr<M, T>;
            fn $method(self, value: T::Inner) -> Expr<M, T> {
                self.op($op, value)
            }
        }
    };
}

arithmetic!(Add, add, "+");
arithmetic!(Sub, sub, "-");
arithmetic!(Mul, mul, "*");

impl<M: Model, T: ColumnType, W: Settable> Column<M, T, W> {
    /// `column = expression`, computed by the database from the row's current values:
    /// `Course::seats.set_expr(Course::seats - 1)`.
    pub fn set_expr(self, expr: Expr<M, T>) -> Assignment<M> {
        Assignment::expression(self.schema(), expr.sql, expr.params)
    }

    /// `column = column + by`, in the database.
    pub fn increment(self, by: impl IntoColumnValue<T::Inner>) -> Assignment<M>
    where
        T::Inner: Numeric,
    {
        self.set_expr(Expr::from(self).op("+", by.into_column_value()))
    }
}
