//! Queries as values: each knows its SQL and its bound values, runs on one connection in one go,
//! and says whether it writes. `Database`, `AsyncDatabase` and transactions all run the same
//! query values.

use std::marker::PhantomData;

use time::OffsetDateTime;

use super::aggregate::Selectable;
use super::column::{Assignment, Filter, Order, Relation};
use super::conn::Conn;
use super::dialect::Dialect;
use super::model::Model;
use super::row::Row;
use super::schema::{quote_ident, ColumnSchema, FieldKind, TableSchema};
use super::sql::{SqlRow, Value};
use super::statement::{one_statement, AllRows, FirstRow, Statement};
use super::value::SqlType;
use super::DbError;

/// A unit of database work: one statement, or a few that belong together.
pub trait Query: Send + 'static {
    /// What it produces.
    type Output: Send + 'static;
    /// Whether it writes (runs on the writer connection).
    fn writes(&self) -> bool;
    /// Runs it.
    fn run(self, conn: &Conn<'_>) -> Result<Self::Output, DbError>;
    /// The query as one [`Statement`], when it is one (`Err(self)` otherwise): a backend that
    /// awaits its statements (PostgreSQL under [`AsyncDatabase`](super::AsyncDatabase)) then
    /// sends it from the awaiting task; the others, and every query of several statements, go
    /// through [`run`](Self::run).
    fn into_statement(self, dialect: Dialect) -> Result<Statement<Self::Output>, Self>
    where
        Self: Sized,
    {
        let _ = dialect;
        Err(self)
    }
}

/// A row's values to write, after its validation.
pub(crate) fn checked_values<M: Model>(row: &M) -> Result<Vec<Value>, DbError> {
    row.validate().map_err(DbError::Invalid)?;
    row.to_values()
}

/// A whole row's values as its INSERT binds them: auto fields left out, `auto_now` and
/// `auto_now_add` fields set to now (one timestamp for the row).
pub(crate) fn insert_params<M: Model>(values: Vec<Value>) -> impl Iterator<Item = Value> {
    let mut now = None;
    M::SCHEMA
        .struct_columns()
        .zip(values)
        .filter(|(column, _)| !column.is_auto())
        .map(move |(column, value)| {
            if column.auto_now || column.auto_now_add {
                now.get_or_insert_with(now_value).clone()
            } else {
                value
            }
        })
}

pub(crate) fn now_value() -> Value {
    // rusqlite's own encoding of OffsetDateTime, so stored times compare as text.
    let column = ColumnSchema::new("now", FieldKind::DateTime);
    OffsetDateTime::now_utc()
        .to_sql(&column)
        .unwrap_or(Value::Null)
}

fn column_list(table: &str, columns: impl Iterator<Item = &'static ColumnSchema>) -> String {
    columns
        .map(|c| format!("{}.{}", quote_ident(table), quote_ident(c.name)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn check_filter<M>(filter: &mut Filter<M>) -> Result<(), DbError> {
    match filter.error.take() {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Inserts a whole model; auto fields are skipped, `auto_now` / `auto_now_add` fields set to now.
/// Produces the new row's id (its rowid: the auto primary key).
pub struct Insert<M> {
    values: Result<Vec<Value>, DbError>,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> Insert<M> {
    /// The insert of `row`.
    pub fn new(row: &M) -> Self {
        Insert {
            values: checked_values(row),
            _model: PhantomData,
        }
    }
}

impl<M: Model> Insert<M> {
    fn statement(self, _: Dialect) -> Statement<i64> {
        match self.values {
            Ok(values) => Statement::inserted(
                M::SCHEMA.insert_sql,
                insert_params::<M>(values).collect(),
                M::KEY_COLUMN,
            ),
            Err(err) => Statement::failed(err, true),
        }
    }
}

impl<M: Model> Query for Insert<M> {
    type Output = i64;
    fn writes(&self) -> bool {
        true
    }
    one_statement!();
}

/// Inserts many whole models in one hop and one transaction (a savepoint inside a transaction):
/// all or none. Produces the new rows' ids, in order.
pub struct InsertMany<M> {
    /// Every row's bound values one after another, in the order of the INSERT's columns (auto
    /// fields left out), validated.
    values: Result<Vec<Value>, DbError>,
    rows: usize,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> InsertMany<M> {
    /// The insert of `rows`.
    pub fn new<'a>(rows: impl IntoIterator<Item = &'a M>) -> Self {
        let rows = rows.into_iter();
        let bound: Vec<bool> = M::SCHEMA.struct_columns().map(|c| !c.is_auto()).collect();
        let width = bound.iter().filter(|b| **b).count();
        let mut values = Vec::with_capacity(rows.size_hint().0 * width);
        // Each row written into one small buffer, reused, then moved into the big one: no
        // vector per row.
        let mut row_values = Vec::with_capacity(bound.len());
        let mut count = 0;
        let written = rows.into_iter().try_for_each(|row| {
            row.validate().map_err(DbError::Invalid)?;
            row.write_values(&mut row_values)?;
            let kept = row_values.drain(..).zip(&bound).filter(|(_, b)| **b);
            values.extend(kept.map(|(value, _)| value));
            count += 1;
            Ok::<_, DbError>(())
        });
        InsertMany {
            values: written.map(|()| values),
            rows: count,
            _model: PhantomData,
        }
    }
}

impl<M: Model> Query for InsertMany<M> {
    type Output = Vec<i64>;
    fn writes(&self) -> bool {
        true
    }
    fn run(self, conn: &Conn<'_>) -> Result<Vec<i64>, DbError> {
        let mut values = self.values?;
        if self.rows == 0 {
            return Ok(Vec::new());
        }
        let columns: Vec<&ColumnSchema> = M::SCHEMA
            .struct_columns()
            .filter(|column| !column.is_auto())
            .collect();
        let width = columns.len();
        // One timestamp for the whole batch, as one statement would have.
        if columns.iter().any(|c| c.auto_now || c.auto_now_add) && width > 0 {
            let now = now_value();
            for row in values.chunks_mut(width) {
                for (value, column) in row.iter_mut().zip(&columns) {
                    if column.auto_now || column.auto_now_add {
                        *value = now.clone();
                    }
                }
            }
        }
        super::savepoint(conn, "fluxon_insert_many", || {
            insert_chunks::<M>(conn, width, self.rows, values)
        })
    }
}

/// Rows per INSERT statement of a bulk insert: one statement for many rows spares SQLite a
/// step and a reset per row (and stays far under its 32,766 bound values).
const ROWS_PER_STATEMENT: usize = 64;

/// Inserts `count` rows of `width` values each (`flat`) in multi-row statements; the new
/// rowids in order (a statement's rows get consecutive rowids: each the largest so far plus one).
fn insert_chunks<M: Model>(
    conn: &Conn<'_>,
    width: usize,
    count: usize,
    flat: Vec<Value>,
) -> Result<Vec<i64>, DbError> {
    let mut ids = Vec::with_capacity(count);
    if width == 0 {
        // Nothing to bind: one DEFAULT VALUES insert per row.
        for _ in 0..count {
            ids.push(conn.insert(M::SCHEMA.insert_sql, [], M::KEY_COLUMN)?);
        }
        return Ok(ids);
    }
    // A key the rows give themselves may have gaps: one row a statement, so each id is exact.
    let per = if M::SCHEMA.columns[0].is_auto() {
        ROWS_PER_STATEMENT.min(32_000 / width).max(1)
    } else {
        1
    };
    let mut values = flat.into_iter();
    while ids.len() < count {
        let n = per.min(count - ids.len());
        let sql = multi_row_insert::<M>(n);
        conn.insert_rows(
            &sql,
            values.by_ref().take(n * width),
            M::KEY_COLUMN,
            n,
            &mut ids,
        )?;
    }
    Ok(ids)
}

/// `INSERT INTO "t" (a, b) VALUES (?, ?), (?, ?), ...` for `rows` rows.
fn multi_row_insert<M: Model>(rows: usize) -> String {
    let one = M::SCHEMA.insert_sql;
    // The single-row statement ends with its one `(?, ...)`: repeat that group.
    match one.rfind(" VALUES ") {
        Some(at) => {
            let group = &one[at + " VALUES ".len()..];
            let mut sql = String::with_capacity(one.len() + (group.len() + 2) * rows);
            sql.push_str(one);
            for _ in 1..rows {
                sql.push_str(", ");
                sql.push_str(group);
            }
            sql
        }
        None => one.to_owned(),
    }
}

/// Inserts a row from column/value pairs; columns not given take their defaults.
pub struct InsertValues<M> {
    values: Vec<Assignment<M>>,
}

impl<M: Model> InsertValues<M> {
    /// The insert of these pairs.
    pub fn new(values: Vec<Assignment<M>>) -> Self {
        InsertValues { values }
    }
}

impl<M: Model> Query for InsertValues<M> {
    type Output = i64;
    fn writes(&self) -> bool {
        true
    }
    one_statement!();
}

impl<M: Model> InsertValues<M> {
    fn statement(self, _: Dialect) -> Statement<i64> {
        Statement::made(true, || self.made())
    }

    fn made(self) -> Result<Statement<i64>, DbError> {
        let mut names = Vec::new();
        let mut params = Vec::new();
        for assignment in self.values {
            if assignment.sql.is_some() {
                return Err(DbError::InvalidValue {
                    column: assignment.column.name,
                    reason: "an expression of the row's columns can only update a row".to_owned(),
                });
            }
            names.push(assignment.column.name);
            params.extend(assignment.values?);
        }
        for column in M::SCHEMA.columns {
            if (column.auto_now || column.auto_now_add) && !names.contains(&column.name) {
                names.push(column.name);
                params.push(now_value());
            }
        }
        let sql = if names.is_empty() {
            format!("INSERT INTO {} DEFAULT VALUES", quote_ident(M::TABLE))
        } else {
            format!(
                "INSERT INTO {} ({}) VALUES ({})",
                quote_ident(M::TABLE),
                names
                    .iter()
                    .map(|n| quote_ident(n))
                    .collect::<Vec<_>>()
                    .join(", "),
                vec!["?"; names.len()].join(", ")
            )
        };
        Ok(Statement::inserted(sql, params, M::KEY_COLUMN))
    }
}

/// Sets columns on every row a filter matches; `auto_now` fields are set to now. Produces the
/// number of rows changed.
pub struct Update<M> {
    sets: Vec<Assignment<M>>,
    filter: Filter<M>,
}

impl<M: Model> Update<M> {
    /// The update.
    pub fn new(sets: Vec<Assignment<M>>, filter: Filter<M>) -> Self {
        Update { sets, filter }
    }
}

impl<M: Model> Query for Update<M> {
    type Output = usize;
    fn writes(&self) -> bool {
        true
    }
    one_statement!();
}

impl<M: Model> Update<M> {
    fn statement(self, _: Dialect) -> Statement<usize> {
        Statement::made(true, || self.made())
    }

    fn made(mut self) -> Result<Statement<usize>, DbError> {
        check_filter(&mut self.filter)?;
        let mut sets = Vec::new();
        let mut params = Vec::new();
        for assignment in self.sets {
            let value = assignment.sql.as_deref().unwrap_or("?");
            sets.push(format!("{} = {value}", quote_ident(assignment.column.name)));
            params.extend(assignment.values?);
        }
        for column in M::SCHEMA.columns.iter().filter(|c| c.auto_now) {
            sets.push(format!("{} = ?", quote_ident(column.name)));
            params.push(now_value());
        }
        if sets.is_empty() {
            return Ok(Statement::ready(0, true));
        }
        params.extend(self.filter.params);
        let sql = format!(
            "UPDATE {} SET {} WHERE {}",
            quote_ident(M::TABLE),
            sets.join(", "),
            self.filter.sql
        );
        Ok(Statement::changed(sql, params, Ok))
    }
}

/// Deletes every row a filter matches (foreign keys cascade, protect or set null as declared).
/// Produces the number of rows deleted.
pub struct Delete<M> {
    filter: Filter<M>,
}

impl<M: Model> Delete<M> {
    /// The delete.
    pub fn new(filter: Filter<M>) -> Self {
        Delete { filter }
    }
}

impl<M: Model> Query for Delete<M> {
    type Output = usize;
    fn writes(&self) -> bool {
        true
    }
    one_statement!();
}

impl<M: Model> Delete<M> {
    fn statement(mut self, _: Dialect) -> Statement<usize> {
        if let Err(err) = check_filter(&mut self.filter) {
            return Statement::failed(err, true);
        }
        let sql = format!(
            "DELETE FROM {} WHERE {}",
            quote_ident(M::TABLE),
            self.filter.sql
        );
        Statement::changed(sql, self.filter.params, Ok)
    }
}

/// The parts of a SELECT shared by every way of reading: filter, order, limit, offset.
pub struct Select<M> {
    filter: Filter<M>,
    group: Vec<String>,
    having: Option<Filter<M>>,
    order: Vec<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

impl<M: Model> Select<M> {
    /// Rows matching `filter`.
    pub fn new(filter: Filter<M>) -> Self {
        Select {
            filter,
            group: Vec::new(),
            having: None,
            order: Vec::new(),
            limit: None,
            offset: None,
        }
    }

    /// Narrows the rows further: the filter so far AND `filter`.
    pub fn and(mut self, filter: Filter<M>) -> Self {
        self.filter = self.filter & filter;
        self
    }

    /// Adds a GROUP BY term.
    pub fn group_by(mut self, by: &impl Selectable<M>) -> Self {
        self.group.push(by.expression());
        self
    }

    /// A condition on the groups (`HAVING`); a second one is AND-ed to the first.
    pub fn having(mut self, filter: Filter<M>) -> Self {
        self.having = Some(match self.having.take() {
            Some(having) => having & filter,
            None => filter,
        });
        self
    }

    /// Adds an ORDER BY term.
    pub fn order_by(mut self, order: Order<M>) -> Self {
        self.order.push(order.sql);
        self
    }

    /// Keyset pagination: only rows whose key is above `key`, in key order (before any other
    /// ordering given).
    pub fn after(mut self, key: &M::Key) -> Self {
        self.filter = self.filter & Filter::key_gt(key);
        let by_key = format!("{} ASC", M::SCHEMA.columns[0].qualified);
        self.order.insert(0, by_key);
        self
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: i64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Skips the first `n` rows.
    pub fn offset(mut self, n: i64) -> Self {
        self.offset = Some(n);
        self
    }

    /// `SELECT {what} FROM table {joins} WHERE ... ORDER BY ... LIMIT ... OFFSET ...`, and its values.
    pub(crate) fn sql(mut self, what: &str, joins: &str) -> Result<(String, Vec<Value>), DbError> {
        check_filter(&mut self.filter)?;
        let mut sql = String::with_capacity(64 + what.len() + joins.len() + self.filter.sql.len());
        for part in [
            "SELECT ",
            what,
            " FROM ",
            M::SCHEMA.quoted_name,
            joins,
            " WHERE ",
            &self.filter.sql,
        ] {
            sql.push_str(part);
        }
        let mut params = self.filter.params;
        if !self.group.is_empty() {
            sql.push_str(" GROUP BY ");
            sql.push_str(&self.group.join(", "));
        }
        if let Some(mut having) = self.having {
            check_filter(&mut having)?;
            sql.push_str(" HAVING ");
            sql.push_str(&having.sql);
            params.extend(having.params);
        }
        if !self.order.is_empty() {
            sql.push_str(" ORDER BY ");
            sql.push_str(&self.order.join(", "));
        }
        // LIMIT and OFFSET are written as integer literals, not bound: they are i64s (nothing to
        // inject), and SQLite re-prepares a statement whose LIMIT is a parameter on every run.
        match (self.limit, self.offset) {
            (Some(1), _) => sql.push_str(" LIMIT 1"),
            (None, None) => {}
            (limit, _) => sql.push_str(&format!(" LIMIT {}", limit.unwrap_or(-1))),
        }
        if let Some(offset) = self.offset {
            sql.push_str(&format!(" OFFSET {offset}"));
        }
        Ok((sql, params))
    }
}

fn model_columns<M: Model>() -> &'static str {
    M::SCHEMA.select_list
}

/// Reads whole rows, with their keys.
pub struct Rows<M>(pub(crate) Select<M>);

impl<M: Model> Query for Rows<M> {
    type Output = Vec<Row<M>>;
    fn writes(&self) -> bool {
        false
    }
    one_statement!();
}

impl<M: Model> Rows<M> {
    fn statement(self, _: Dialect) -> Statement<Vec<Row<M>>> {
        match self.0.sql(model_columns::<M>(), "") {
            Ok((sql, params)) => Statement::rows(
                sql,
                params,
                false,
                AllRows::new(|row: &SqlRow<'_>| Row::read(row, 0)),
            ),
            Err(err) => Statement::failed(err, false),
        }
    }
}

/// The first matching row, if any.
pub struct First<M>(pub(crate) Select<M>);

impl<M: Model> First<M> {
    /// The row whose primary key is `key`.
    pub fn by_key(key: &M::Key) -> Self {
        First(Select::new(Filter::key_eq(key)))
    }
}

impl<M: Model> Query for First<M> {
    type Output = Option<Row<M>>;
    fn writes(&self) -> bool {
        false
    }
    one_statement!();
}

impl<M: Model> First<M> {
    fn statement(self, _: Dialect) -> Statement<Option<Row<M>>> {
        match self.0.limit(1).sql(model_columns::<M>(), "") {
            Ok((sql, params)) => Statement::rows(
                sql,
                params,
                false,
                FirstRow::new(|row: &SqlRow<'_>| Row::read(row, 0)),
            ),
            Err(err) => Statement::failed(err, false),
        }
    }
}

/// Writes every field of a loaded row back to it (by its key); `auto_now` fields are set to now,
/// `auto_now_add` ones and the key are left as stored. A row deleted meanwhile is
/// [`DbError::RowGone`], not a silent no-op.
pub struct Save<M: Model> {
    key: M::Key,
    values: Result<Vec<Value>, DbError>,
}

impl<M: Model> Save<M> {
    /// The save of `row`.
    pub fn new(row: &Row<M>) -> Self {
        Save {
            key: row.id.clone(),
            values: checked_values(&row.fields),
        }
    }
}

impl<M: Model> Query for Save<M> {
    type Output = ();
    fn writes(&self) -> bool {
        true
    }
    one_statement!();
}

/// A row that was not there to save or delete.
fn row_gone<M: Model>(key: &M::Key) -> DbError {
    DbError::RowGone {
        table: M::TABLE,
        key: format!("{key:?}"),
    }
}

impl<M: Model> Save<M> {
    fn statement(self, _: Dialect) -> Statement<()> {
        Statement::made(true, || self.made())
    }

    fn made(self) -> Result<Statement<()>, DbError> {
        let values = self.values?;
        let mut sets = Vec::new();
        let mut params = Vec::new();
        let mut now = None;
        for (column, value) in M::SCHEMA.struct_columns().zip(values) {
            if column.primary_key || column.is_auto() || column.auto_now_add {
                continue;
            }
            sets.push(format!("{} = ?", quote_ident(column.name)));
            params.push(if column.auto_now {
                now.get_or_insert_with(now_value).clone()
            } else {
                value
            });
        }
        let key_column = &M::SCHEMA.columns[0];
        let key = self.key;
        let statement = if sets.is_empty() {
            // Nothing to write but the key: still say whether the row is there.
            let sql = format!(
                "SELECT 1 FROM {} WHERE {} = ?",
                M::SCHEMA.quoted_name,
                quote_ident(key_column.name)
            );
            let found = FirstRow::new(|_: &SqlRow<'_>| Ok(()));
            Statement::rows(sql, vec![key.to_sql(key_column)?], true, found)
                .map(|found| Ok(usize::from(found.is_some())))
        } else {
            params.push(key.to_sql(key_column)?);
            let sql = format!(
                "UPDATE {} SET {} WHERE {} = ?",
                M::SCHEMA.quoted_name,
                sets.join(", "),
                quote_ident(key_column.name)
            );
            Statement::changed(sql, params, Ok)
        };
        Ok(statement.map(move |changed| match changed {
            0 => Err(row_gone::<M>(&key)),
            _ => Ok(()),
        }))
    }
}

/// Deletes a loaded row (by its key; foreign keys cascade, protect or set null as declared). A
/// row deleted meanwhile is [`DbError::RowGone`].
pub struct DeleteRow<M: Model> {
    key: M::Key,
}

impl<M: Model> DeleteRow<M> {
    /// The delete of `row`.
    pub fn new(row: &Row<M>) -> Self {
        DeleteRow {
            key: row.id.clone(),
        }
    }
}

impl<M: Model> Query for DeleteRow<M> {
    type Output = ();
    fn writes(&self) -> bool {
        true
    }
    one_statement!();
}

impl<M: Model> DeleteRow<M> {
    fn statement(self, dialect: Dialect) -> Statement<()> {
        let filter = Filter::<M>::key_eq(&self.key);
        let key = self.key;
        Delete::new(filter)
            .statement(dialect)
            .map(move |deleted| match deleted {
                0 => Err(row_gone::<M>(&key)),
                _ => Ok(()),
            })
    }
}

/// How many rows match.
pub struct Count<M>(pub(crate) Select<M>);

impl<M: Model> Query for Count<M> {
    type Output = i64;
    fn writes(&self) -> bool {
        false
    }
    one_statement!();
}

impl<M: Model> Count<M> {
    fn statement(self, _: Dialect) -> Statement<i64> {
        let limited = self.0.limit.is_some() || self.0.offset.is_some();
        let (sql, params) = match self.0.sql(if limited { "1" } else { "COUNT(*)" }, "") {
            Ok(made) => made,
            Err(err) => return Statement::failed(err, false),
        };
        let sql = if limited {
            format!("SELECT COUNT(*) FROM ({sql}) AS counted")
        } else {
            sql
        };
        let count = FirstRow::new(|row: &SqlRow<'_>| row.integer(0, "COUNT(*)"));
        Statement::rows(sql, params, false, count).map(|count| count.ok_or(DbError::NotFound))
    }
}

/// Whether any row matches.
pub struct Exists<M>(pub(crate) Select<M>);

impl<M: Model> Query for Exists<M> {
    type Output = bool;
    fn writes(&self) -> bool {
        false
    }
    one_statement!();
}

impl<M: Model> Exists<M> {
    fn statement(self, _: Dialect) -> Statement<bool> {
        match self.0.limit(1).sql("1", "") {
            Ok((sql, params)) => {
                Statement::rows(sql, params, false, FirstRow::new(|_: &SqlRow<'_>| Ok(())))
                    .map(|found| Ok(found.is_some()))
            }
            Err(err) => Statement::failed(err, false),
        }
    }
}

/// A tuple of columns or aggregates of one model, read as a tuple of their types.
pub trait ColumnList<M>: Send + 'static {
    /// The tuple of values.
    type Output: Send + 'static;
    /// `"t"."a", COUNT(*), ...`.
    fn sql(&self, dialect: Dialect) -> String;
    /// Decodes one row, from column `start`.
    fn decode(&self, row: &SqlRow<'_>, start: usize) -> Result<Self::Output, DbError>;
}

macro_rules! column_tuple {
    ($(($t:ident, $i:tt)),+) => {
        impl<M, $($t: Selectable<M>),+> ColumnList<M> for ($($t,)+) {
            type Output = ($($t::Output,)+);
            fn sql(&self, dialect: Dialect) -> String {
                [$(self.$i.expression_for(dialect)),+].join(", ")
            }
            fn decode(&self, row: &SqlRow<'_>, start: usize) -> Result<Self::Output, DbError> {
                Ok(($(self.$i.decode(row.get_ref(start + $i)?)?,)+))
            }
        }
    };
}

column_tuple!((A, 0));
column_tuple!((A, 0), (B, 1));
column_tuple!((A, 0), (B, 1), (C, 2));
column_tuple!((A, 0), (B, 1), (C, 2), (D, 3));
column_tuple!((A, 0), (B, 1), (C, 2), (D, 3), (E, 4));
column_tuple!((A, 0), (B, 1), (C, 2), (D, 3), (E, 4), (F, 5));
column_tuple!((A, 0), (B, 1), (C, 2), (D, 3), (E, 4), (F, 5), (G, 6));
column_tuple!(
    (A, 0),
    (B, 1),
    (C, 2),
    (D, 3),
    (E, 4),
    (F, 5),
    (G, 6),
    (H, 7)
);

/// Reads chosen columns as typed tuples.
pub struct Columns<M, C> {
    pub(crate) select: Select<M>,
    pub(crate) columns: C,
}

impl<M: Model, C: ColumnList<M>> Query for Columns<M, C> {
    type Output = Vec<C::Output>;
    fn writes(&self) -> bool {
        false
    }
    one_statement!();
}

impl<M: Model, C: ColumnList<M>> Columns<M, C> {
    fn statement(self, dialect: Dialect) -> Statement<Vec<C::Output>> {
        match self.select.sql(&self.columns.sql(dialect), "") {
            Ok((sql, params)) => {
                let columns = self.columns;
                let read = AllRows::new(move |row: &SqlRow<'_>| columns.decode(row, 0));
                Statement::rows(sql, params, false, read)
            }
            Err(err) => Statement::failed(err, false),
        }
    }
}

/// Reads rows, each with one more value computed per row (an annotation such as
/// [`count_of`](super::count_of)).
pub struct Annotated<M, A> {
    pub(crate) select: Select<M>,
    pub(crate) annotation: A,
}

impl<M: Model, A: Selectable<M>> Query for Annotated<M, A> {
    type Output = Vec<(Row<M>, A::Output)>;
    fn writes(&self) -> bool {
        false
    }
    one_statement!();
}

impl<M: Model, A: Selectable<M>> Annotated<M, A> {
    fn statement(self, dialect: Dialect) -> Statement<Vec<(Row<M>, A::Output)>> {
        let what = format!(
            "{}, {}",
            model_columns::<M>(),
            self.annotation.expression_for(dialect)
        );
        let (sql, params) = match self.select.sql(&what, "") {
            Ok(made) => made,
            Err(err) => return Statement::failed(err, false),
        };
        let width = Row::<M>::width();
        let annotation = self.annotation;
        let read = AllRows::new(move |row: &SqlRow<'_>| {
            let value = annotation.decode(row.get_ref(width)?)?;
            Ok((Row::read(row, 0)?, value))
        });
        Statement::rows(sql, params, false, read)
    }
}

/// One row of aggregates over every matching row (no `group_by`).
pub struct Aggregated<M, C> {
    pub(crate) select: Select<M>,
    pub(crate) columns: C,
}

impl<M: Model, C: ColumnList<M>> Query for Aggregated<M, C> {
    type Output = C::Output;
    fn writes(&self) -> bool {
        false
    }
    one_statement!();
}

impl<M: Model, C: ColumnList<M>> Aggregated<M, C> {
    fn statement(self, dialect: Dialect) -> Statement<C::Output> {
        let (sql, params) = match self.select.sql(&self.columns.sql(dialect), "") {
            Ok(made) => made,
            Err(err) => return Statement::failed(err, false),
        };
        let columns = self.columns;
        let read = FirstRow::new(move |row: &SqlRow<'_>| columns.decode(row, 0));
        // Only a `having` that refused the single group finds no row.
        Statement::rows(sql, params, false, read).map(|row| row.ok_or(DbError::NotFound))
    }
}

/// Reads rows together with the row a foreign key refers to, in one query with a join.
pub struct WithRelated<M, R: Relation> {
    pub(crate) select: Select<M>,
    pub(crate) column: &'static ColumnSchema,
    pub(crate) _relation: PhantomData<fn() -> R>,
}

impl<M: Model, R: Relation + 'static> Query for WithRelated<M, R> {
    type Output = Vec<(Row<M>, R::Joined)>;
    fn writes(&self) -> bool {
        false
    }
    one_statement!();
}

impl<M: Model, R: Relation + 'static> WithRelated<M, R> {
    fn statement(self, _: Dialect) -> Statement<Vec<(Row<M>, R::Joined)>> {
        let target = <R::Target as Model>::SCHEMA;
        let alias = "related";
        let key = <R::Target as Model>::KEY_COLUMN;
        // The target's key (NULL when a LEFT JOIN found nothing), then its struct's columns.
        let what = format!(
            "{}, {}.{}, {}",
            model_columns::<M>(),
            quote_ident(alias),
            quote_ident(key),
            column_list(alias, target.struct_columns())
        );
        let join = format!(
            " {} JOIN {} AS {} ON {}.{} = {}.{}",
            if R::OPTIONAL { "LEFT" } else { "INNER" },
            quote_ident(target.name),
            quote_ident(alias),
            quote_ident(alias),
            quote_ident(key),
            quote_ident(M::TABLE),
            quote_ident(self.column.name)
        );
        let (sql, params) = match self.select.sql(&what, &join) {
            Ok(made) => made,
            Err(err) => return Statement::failed(err, false),
        };
        let base_width = Row::<M>::width();
        let read = AllRows::new(move |row: &SqlRow<'_>| {
            let base = Row::read(row, 0)?;
            let related = if row.get_ref(base_width)?.is_null() {
                None
            } else {
                Some(Row::read(row, base_width)?)
            };
            Ok((base, R::wrap(related)?))
        });
        Statement::rows(sql, params, false, read)
    }
}

/// Runs a closure on the connection (inside a transaction when given to `transaction`).
pub(crate) struct Closure<F>(pub F, pub bool);

impl<F, T> Query for Closure<F>
where
    F: FnOnce(&Conn<'_>) -> Result<T, DbError> + Send + 'static,
    T: Send + 'static,
{
    type Output = T;
    fn writes(&self) -> bool {
        self.1
    }
    fn run(self, conn: &Conn<'_>) -> Result<T, DbError> {
        (self.0)(conn)
    }
}

/// Creates the tables of some models (and their foreign key indexes), if they do not exist.
pub struct CreateTables(pub(crate) Vec<TableSchema>);

impl Query for CreateTables {
    type Output = ();
    fn writes(&self) -> bool {
        true
    }
    fn run(self, conn: &Conn<'_>) -> Result<(), DbError> {
        let tables = super::order::in_reference_order(&self.0)?;
        let users: Vec<&str> = tables
            .iter()
            .filter(|t| t.authorized_user)
            .map(|t| t.name)
            .collect();
        if let [first, second, ..] = users[..] {
            return Err(DbError::TwoUserModels(first, second));
        }
        let dialect = conn.dialect();
        super::savepoint(conn, "fluxon_create_tables", || {
            tables.iter().try_for_each(|table| {
                dialect
                    .create_table(table)
                    .iter()
                    .try_for_each(|statement| conn.batch(statement))
            })
        })
    }
}
