//! Upserts: insert a row, or, when a row with the same value in a unique column (or set of
//! columns) is there, update that row
//! ([`Executor::insert_or_update`](super::Executor::insert_or_update)) or leave it
//! ([`Executor::insert_or_ignore`](super::Executor::insert_or_ignore)). One conflict column must
//! be declared `unique` (or be a primary key the program gives): naming another does not
//! compile. A tuple of columns must be one of the model's `#[model(unique(..))]` sets: another
//! set is [`DbError::NotUnique`](super::DbError::NotUnique), before anything runs.

use std::marker::PhantomData;

use super::conn::Conn;
use super::dialect::Dialect;
use super::sql::Value;

use super::column::{Column, Unique};
use super::model::Model;
use super::query::{insert_params, Query};
use super::schema::quote_ident;
use super::value::ColumnType;
use super::DbError;

/// What to do with the row already holding the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnConflict {
    Update,
    Ignore,
}

/// An insert with an `ON CONFLICT` clause. Produces the row's id: the new row's, or (for
/// `insert_or_update`) the updated one's; `None` when `insert_or_ignore` left a row alone.
pub struct Upsert<M> {
    values: Result<Vec<Value>, DbError>,
    target: Vec<&'static str>,
    on_conflict: OnConflict,
    _model: PhantomData<fn() -> M>,
}

/// What an upsert's conflict is on: a column declared `unique` (checked by the compiler), or a
/// tuple of columns that is one of the model's `#[model(unique(..))]` sets (checked when it
/// runs).
#[diagnostic::on_unimplemented(
    message = "an upsert's conflict target must be unique",
    label = "not declared unique",
    note = "name a column with #[field(unique)] (or a primary key the program gives), or a tuple of columns the model declares #[model(unique(..))]"
)]
pub trait ConflictTarget<M> {
    /// The columns' names.
    fn columns(&self) -> Vec<&'static str>;
    /// Whether the compiler already knows them unique.
    const CHECKED: bool;
}

impl<M: Model, T: ColumnType> ConflictTarget<M> for Column<M, T, Unique> {
    fn columns(&self) -> Vec<&'static str> {
        vec![self.name()]
    }
    const CHECKED: bool = true;
}

impl<M: Model, A: ColumnType, WA, B: ColumnType, WB> ConflictTarget<M>
    for (Column<M, A, WA>, Column<M, B, WB>)
{
    fn columns(&self) -> Vec<&'static str> {
        vec![self.0.name(), self.1.name()]
    }
    const CHECKED: bool = false;
}

impl<M: Model, A: ColumnType, WA, B: ColumnType, WB, C: ColumnType, WC> ConflictTarget<M>
    for (Column<M, A, WA>, Column<M, B, WB>, Column<M, C, WC>)
{
    fn columns(&self) -> Vec<&'static str> {
        vec![self.0.name(), self.1.name(), self.2.name()]
    }
    const CHECKED: bool = false;
}

/// `target` if it is a unique set of `M`'s (compared as sets), else the typed refusal.
fn unique_set<M: Model, C: ConflictTarget<M>>(target: &C) -> Result<Vec<&'static str>, DbError> {
    let mut columns = target.columns();
    if C::CHECKED {
        return Ok(columns);
    }
    let mut wanted = columns.clone();
    wanted.sort_unstable();
    let declared = M::SCHEMA.unique_together.iter().any(|set| {
        let mut set = set.to_vec();
        set.sort_unstable();
        set == wanted
    });
    if declared {
        Ok(std::mem::take(&mut columns))
    } else {
        Err(DbError::NotUnique {
            table: M::TABLE,
            columns: columns.join(", "),
        })
    }
}

impl<M: Model> Upsert<M> {
    /// Inserts `row`, or updates the row that holds the same value in `target`.
    pub fn update(row: &M, target: impl ConflictTarget<M>) -> Self {
        Self::new(row, target, OnConflict::Update)
    }

    /// Inserts `row`, unless a row holds the same value in `target`.
    pub fn ignore(row: &M, target: impl ConflictTarget<M>) -> Self {
        Self::new(row, target, OnConflict::Ignore)
    }

    fn new<C: ConflictTarget<M>>(row: &M, target: C, on_conflict: OnConflict) -> Self {
        let (target, values) = match unique_set::<M, C>(&target) {
            Ok(columns) => (columns, super::query::checked_values(row)),
            Err(err) => (Vec::new(), Err(err)),
        };
        Upsert {
            values,
            target,
            on_conflict,
            _model: PhantomData,
        }
    }

    fn sql(&self, dialect: Dialect) -> String {
        let insert = M::SCHEMA.insert_sql;
        let target = self
            .target
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let action = match self.on_conflict {
            OnConflict::Ignore => "NOTHING".to_owned(),
            OnConflict::Update => {
                // Every column the insert sets, but the conflict column itself and what is only
                // set when a row is made (`auto_now_add`).
                let sets: Vec<String> = M::SCHEMA
                    .struct_columns()
                    .filter(|c| !c.is_auto() && !c.auto_now_add && !self.target.contains(&c.name))
                    .map(|c| {
                        let name = quote_ident(c.name);
                        format!("{name} = excluded.{name}")
                    })
                    .collect();
                if sets.is_empty() {
                    // Nothing else to write: touch the row so RETURNING still gives its id.
                    let first = quote_ident(self.target[0]);
                    format!("UPDATE SET {first} = excluded.{first}")
                } else {
                    format!("UPDATE SET {}", sets.join(", "))
                }
            }
        };
        // SQLite's rowid is the row's integer id whatever its key; PostgreSQL has none, and
        // gives the key.
        let id = match dialect {
            Dialect::Sqlite => "rowid".to_owned(),
            _ => quote_ident(M::KEY_COLUMN),
        };
        format!("{insert} ON CONFLICT ({target}) DO {action} RETURNING {id}")
    }
}

impl<M: Model> Query for Upsert<M> {
    type Output = Option<i64>;
    fn writes(&self) -> bool {
        true
    }
    fn run(self, conn: &Conn<'_>) -> Result<Option<i64>, DbError> {
        let sql = self.sql(conn.dialect());
        let values = self.values?;
        let params = insert_params::<M>(values);
        // Every row is read, stepping the statement to its end: a deferred foreign key is
        // checked when it commits, and a failure there must be this call's error, not lost in
        // a reset.
        let mut id = None;
        conn.each(&sql, params, |row| {
            if id.is_none() {
                id = Some(super::conn::returned_key(row));
            }
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        Ok(id)
    }
}

/// An [`Upsert`] that updates: it always ends with a row, so it produces that row's id.
pub struct OrUpdate<M>(pub(crate) Upsert<M>);

impl<M: Model> Query for OrUpdate<M> {
    type Output = i64;
    fn writes(&self) -> bool {
        true
    }
    fn run(self, conn: &Conn<'_>) -> Result<i64, DbError> {
        self.0.run(conn)?.ok_or(DbError::NotFound)
    }
}
