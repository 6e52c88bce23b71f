//! Filtering by related rows: a foreign key whose row matches a filter
//! (`Course::teacher.matches(Teacher::name.eq("Ada"))`), rows some other rows refer to
//! ([`any_related`]), and a column among the values of a subquery (`in_query`). Each is one
//! statement: the subquery runs inside the outer one, its values bound like any other.

use std::marker::PhantomData;

use super::sql::Value;

use super::column::{Column, Filter, Relation};
use super::model::Model;
use super::schema::quote_ident;
use super::value::{ColumnType, IntoColumnValue};
use super::DbError;

/// The values of one column of the rows of `S` a filter matches, as the right side of
/// [`Column::in_query`]: made by [`subquery`].
pub struct Subquery<T> {
    sql: String,
    params: Vec<Value>,
    error: Option<DbError>,
    _type: PhantomData<fn() -> T>,
}

/// `SELECT column FROM its table WHERE filter`, for [`Column::in_query`]:
/// `Course::teacher.in_query(subquery(Teacher::id, Teacher::name.starts_with("A")))`.
pub fn subquery<S: Model, T: ColumnType, W>(
    column: Column<S, T, W>,
    mut filter: Filter<S>,
) -> Subquery<T::Inner> {
    Subquery {
        sql: format!(
            "SELECT {} FROM {} WHERE {}",
            column.qualified(),
            S::SCHEMA.quoted_name,
            filter.sql
        ),
        params: std::mem::take(&mut filter.params),
        error: filter.error.take(),
        _type: PhantomData,
    }
}

/// The filter `outer_sql (sub_sql)` with the subquery's values and error carried over.
fn with_subquery<M>(sql: String, params: Vec<Value>, error: Option<DbError>) -> Filter<M> {
    let mut filter = Filter::sql(sql);
    filter.params = params;
    filter.error = error;
    filter
}

impl<M: Model, T: ColumnType, W> Column<M, T, W> {
    /// `column IN (subquery)`: the column's value is among the subquery's values (an
    /// integer key column takes a subquery of keys, a reference column one of its target's keys).
    pub fn in_query<X>(self, sub: Subquery<X>) -> Filter<M>
    where
        X: IntoColumnValue<T::Inner>,
    {
        with_subquery(
            format!("{} IN ({})", self.qualified(), sub.sql),
            sub.params,
            sub.error,
        )
    }
}

impl<M: Model, R: ColumnType + Relation, W> Column<M, R, W> {
    /// The rows whose reference in this column points at a row `filter` matches:
    /// `Course::teacher.matches(Teacher::name.eq("Ada"))`. A NULL reference matches nothing.
    pub fn matches(self, mut filter: Filter<R::Target>) -> Filter<M> {
        let target = R::Target::SCHEMA;
        with_subquery(
            format!(
                "{} IN (SELECT {} FROM {} WHERE {})",
                self.qualified(),
                target.columns[0].qualified,
                target.quoted_name,
                filter.sql
            ),
            std::mem::take(&mut filter.params),
            filter.error.take(),
        )
    }
}

/// The rows of `M` that at least one row of `C` matching `filter` refers to through `column`:
/// `any_related(Course::teacher, Course::seats.gt(30))` on `Teacher` is the teachers with a
/// course of more than 30 seats.
pub fn any_related<M: Model, C: Model, R, W>(
    column: Column<C, R, W>,
    mut filter: Filter<C>,
) -> Filter<M>
where
    R: ColumnType + Relation<Target = M>,
{
    // `key IN (SELECT reference ...)`, not a correlated EXISTS: the outer key stays outside the
    // subquery, so a model related to itself (a teacher's mentor) reads right.
    with_subquery(
        format!(
            "{} IN (SELECT {} FROM {} WHERE {})",
            M::SCHEMA.columns[0].qualified,
            column.qualified(),
            quote_ident(C::TABLE),
            filter.sql
        ),
        std::mem::take(&mut filter.params),
        filter.error.take(),
    )
}
