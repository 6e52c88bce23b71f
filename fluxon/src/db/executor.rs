//! Where queries run, and the query-building methods every place shares: `insert`, `update`,
//! `check`, `delete` (the original Fluxon's vocabulary).

use std::marker::PhantomData;

use super::aggregate::Selectable;
use super::column::{Assignment, Column, Filter, Order, Relation};
use super::model::Model;
use super::prefetch::{Prefetch, Prefetched};
use super::query::{
    Aggregated, Annotated, ColumnList, Columns, Count, CreateTables, Delete, DeleteRow, Exists,
    First, Insert, InsertMany, InsertValues, Query, Rows, Save, Select, Update, WithRelated,
};
use super::row::{Row, RowsWith};
use super::schema::TableSchema;
use super::stream::ForEach;
use super::upsert::{ConflictTarget, OrUpdate, Upsert};
use super::DbError;

/// Something that runs queries: [`Database`](super::Database) (answers directly),
/// [`AsyncDatabase`](super::AsyncDatabase) (answers with a future) and
/// [`Transaction`](super::Transaction) (answers directly, inside the transaction).
///
/// Bring it into scope (`use fluxon::db::Executor`) for `insert`, `check`, `update`, `delete`.
///
/// # Errors
/// Every method answers [`DbError`]: the variant says which constraint, check or validation
/// refused, or that the database itself failed.
///
/// # Cancel safety
/// On [`AsyncDatabase`](super::AsyncDatabase), every method gives a
/// [`DbFuture`](super::DbFuture): a statement starts at its first poll and, once started, runs to
/// its end even if the future is dropped (see [`DbFuture`](super::DbFuture#cancel-safety)).
pub trait Executor {
    /// What a query returning `T` gives back: `Result<T, DbError>`, or a future of it.
    type Out<T: Send + 'static>;

    /// Runs one query: a single hop to the connection that runs it.
    fn execute<Q: Query>(&self, query: Q) -> Self::Out<Q::Output>;

    /// Inserts a whole row; returns its new id. Auto fields are skipped.
    fn insert<M: Model>(&self, row: &M) -> Self::Out<i64> {
        self.execute(Insert::new(row))
    }

    /// Inserts `row`, or, if a row holds the same value in `on`, updates that row's fields to
    /// `row`'s (one statement: `INSERT .. ON CONFLICT (on) DO UPDATE`). Returns the id of the row
    /// inserted or updated. `on` is a column declared `unique` (or a primary key the program
    /// gives; another column does not compile), or a tuple of columns the model declares
    /// `#[model(unique(..))]` (another set is [`DbError::NotUnique`](super::DbError::NotUnique)).
    fn insert_or_update<M: Model>(&self, row: &M, on: impl ConflictTarget<M>) -> Self::Out<i64> {
        self.execute(OrUpdate(Upsert::update(row, on)))
    }

    /// Inserts `row` unless a row holds the same value in the unique column `on`; returns the
    /// new row's id, or `None` when it was left alone.
    fn insert_or_ignore<M: Model>(
        &self,
        row: &M,
        on: impl ConflictTarget<M>,
    ) -> Self::Out<Option<i64>> {
        self.execute(Upsert::ignore(row, on))
    }

    /// Inserts many rows in one hop and one transaction, all or none; returns their new ids in
    /// order. (Inside a transaction, a savepoint of it.)
    fn insert_many<'a, M: Model>(
        &self,
        rows: impl IntoIterator<Item = &'a M>,
    ) -> Self::Out<Vec<i64>> {
        self.execute(InsertMany::new(rows))
    }

    /// Inserts a row from column/value pairs (`User::username.set("jack")`); returns its new id.
    fn insert_values<M: Model>(&self, values: Vec<Assignment<M>>) -> Self::Out<i64> {
        self.execute(InsertValues::new(values))
    }

    /// Sets columns on the rows `filter` matches; returns how many changed.
    fn update<M: Model>(&self, sets: Vec<Assignment<M>>, filter: Filter<M>) -> Self::Out<usize> {
        self.execute(Update::new(sets, filter))
    }

    /// Deletes the rows `filter` matches; returns how many.
    fn delete<M: Model>(&self, filter: Filter<M>) -> Self::Out<usize> {
        self.execute(Delete::new(filter))
    }

    /// The row whose primary key is `id`, or `None`.
    fn get<M: Model>(&self, id: impl Into<M::Key>) -> Self::Out<Option<Row<M>>> {
        self.execute(First::by_key(&id.into()))
    }

    /// Writes every field of a loaded row back (`auto_now` fields set to now). A row deleted
    /// meanwhile is [`DbError::RowGone`](super::DbError::RowGone).
    fn save<M: Model>(&self, row: &Row<M>) -> Self::Out<()> {
        self.execute(Save::new(row))
    }

    /// Deletes a loaded row (its references cascade, protect or set null as declared). A row
    /// deleted meanwhile is [`DbError::RowGone`](super::DbError::RowGone).
    fn delete_row<M: Model>(&self, row: &Row<M>) -> Self::Out<()> {
        self.execute(DeleteRow::new(row))
    }

    /// Reads the rows `filter` matches: finish with `all`, `first`, `fetch`, `count`, `exists`,
    /// `columns` or `related`.
    fn check<M: Model>(&self, filter: Filter<M>) -> Check<'_, Self, M> {
        Check {
            executor: self,
            select: Select::new(filter),
        }
    }

    /// Reads every row of `M`.
    fn check_all<M: Model>(&self) -> Check<'_, Self, M> {
        self.check(Filter::all())
    }

    /// Creates the tables of these models if they do not exist (until migrations run them).
    fn create_tables(&self, tables: &[TableSchema]) -> Self::Out<()> {
        self.execute(CreateTables(tables.to_vec()))
    }
}

/// A read being built: `db.check(User::age.gt(18)).order_by(User::name.asc()).all()`.
pub struct Check<'e, E: ?Sized, M> {
    executor: &'e E,
    select: Select<M>,
}

impl<'e, E: ?Sized, M> Check<'e, E, M> {
    /// The executor and the select being built.
    pub(crate) fn into_parts(self) -> (&'e E, Select<M>) {
        (self.executor, self.select)
    }
}

impl<'e, E: Executor + ?Sized, M: Model> Check<'e, E, M> {
    /// Narrows the rows further (AND): `check_all::<Teacher>().filter(count_of(Course::teacher).ge(2))`.
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.select = self.select.and(filter);
        self
    }

    /// Adds an ORDER BY term (call again for more).
    pub fn order_by(mut self, order: Order<M>) -> Self {
        self.select = self.select.order_by(order);
        self
    }

    /// Keyset pagination: the rows after the one whose key is `last`, in key order:
    /// `.after(last_id).limit(50)` is the next page, as fast for the thousandth page as for the
    /// first (an OFFSET would read and skip every row before it).
    pub fn after(mut self, last: impl Into<M::Key>) -> Self {
        self.select = self.select.after(&last.into());
        self
    }

    /// Calls `each` on every matching row as SQLite reads it, never holding more than one: for
    /// results too large for memory. Stops at the first error `each` returns. Produces how many
    /// rows it saw.
    pub fn for_each<F>(self, each: F) -> E::Out<u64>
    where
        F: FnMut(Row<M>) -> Result<(), DbError> + Send + 'static,
    {
        self.executor.execute(ForEach {
            select: self.select,
            each,
        })
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: i64) -> Self {
        self.select = self.select.limit(n);
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: i64) -> Self {
        self.select = self.select.offset(n);
        self
    }

    /// Every matching row, with its key.
    pub fn all(self) -> E::Out<Vec<Row<M>>> {
        self.executor.execute(Rows(self.select))
    }

    /// At most `n` matching rows.
    pub fn fetch(self, n: i64) -> E::Out<Vec<Row<M>>> {
        self.executor.execute(Rows(self.select.limit(n)))
    }

    /// The first matching row.
    pub fn first(self) -> E::Out<Option<Row<M>>> {
        self.executor.execute(First(self.select))
    }

    /// How many rows match.
    pub fn count(self) -> E::Out<i64> {
        self.executor.execute(Count(self.select))
    }

    /// Whether any row matches.
    pub fn exists(self) -> E::Out<bool> {
        self.executor.execute(Exists(self.select))
    }

    /// Groups the rows by a column (call again for more): `columns` then reads one tuple per
    /// group, typically the grouping column and aggregates:
    /// `.group_by(Course::teacher).columns((Course::teacher, count_rows()))`.
    pub fn group_by(mut self, by: impl Selectable<M>) -> Self {
        self.select = self.select.group_by(&by);
        self
    }

    /// Keeps only the groups that match (`HAVING`): `.having(count_rows().ge(2))`.
    pub fn having(mut self, filter: Filter<M>) -> Self {
        self.select = self.select.having(filter);
        self
    }

    /// Aggregates over every matching row, as one typed tuple:
    /// `.aggregate((count_rows(), Course::seats.sum()))` gives `(i64, Option<i64>)`.
    pub fn aggregate<C: ColumnList<M>>(self, columns: C) -> E::Out<C::Output> {
        self.executor.execute(Aggregated {
            select: self.select,
            columns,
        })
    }

    /// Each row with one more value computed for it, in the same statement:
    /// `.annotate(count_of(Enrollment::course))` gives `Vec<(Row<Course>, i64)>`.
    pub fn annotate<A: Selectable<M>>(self, annotation: A) -> E::Out<RowsWith<M, A::Output>> {
        self.executor.execute(Annotated {
            select: self.select,
            annotation,
        })
    }

    /// Each row with the rows related to it, loaded for all of them in one more statement per
    /// level: `.prefetch(Post::author)` on users gives each user's posts,
    /// `.prefetch(Post::author.then(Comment::post))` each post's comments too, and a
    /// many-to-many (`Student::courses`) its related rows.
    pub fn prefetch<P: Prefetch<M>>(self, prefetch: P) -> E::Out<RowsWith<M, P::Output>> {
        self.executor.execute(Prefetched {
            select: self.select,
            prefetch,
        })
    }

    /// Chosen columns or aggregates as typed tuples: `.columns((User::id, User::username))`
    /// gives `Vec<(i64, String)>`.
    pub fn columns<C: ColumnList<M>>(self, columns: C) -> E::Out<Vec<C::Output>> {
        self.executor.execute(Columns {
            select: self.select,
            columns,
        })
    }

    /// Each row with the row its foreign key `column` refers to, in one query with a join:
    /// `Vec<(Row<Course>, Row<Teacher>)>`, or `Vec<(Row<Course>, Option<Row<Teacher>>)>` for a
    /// nullable reference.
    pub fn related<R, W>(self, column: Column<M, R, W>) -> E::Out<RowsWith<M, R::Joined>>
    where
        R: Relation + super::value::ColumnType,
    {
        self.executor.execute(WithRelated::<M, R> {
            select: self.select,
            column: column.schema(),
            _relation: PhantomData,
        })
    }
}
