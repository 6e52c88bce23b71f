//! Upserts: insert a row, or, when a row with the same value in a unique column is there,
//! update that row ([`Executor::insert_or_update`](super::Executor::insert_or_update)) or leave
//! it ([`Executor::insert_or_ignore`](super::Executor::insert_or_ignore)). The conflict column
//! must be declared `unique` (or be a primary key the program gives): naming another column does
//! not compile.

use std::marker::PhantomData;

use super::sql::Value;
use rusqlite::{params_from_iter, Connection};

use super::column::{Column, Unique};
use super::model::Model;
use super::query::{now_value, Query};
use super::schema::{quote_ident, ColumnSchema};
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
    target: &'static ColumnSchema,
    on_conflict: OnConflict,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> Upsert<M> {
    /// Inserts `row`, or updates the row whose `target` column holds the same value.
    pub fn update<T>(row: &M, target: Column<M, T, Unique>) -> Self
    where
        T: super::value::ColumnType,
    {
        Self::new(row, target.schema(), OnConflict::Update)
    }

    /// Inserts `row`, unless a row's `target` column holds the same value.
    pub fn ignore<T>(row: &M, target: Column<M, T, Unique>) -> Self
    where
        T: super::value::ColumnType,
    {
        Self::new(row, target.schema(), OnConflict::Ignore)
    }

    fn new(row: &M, target: &'static ColumnSchema, on_conflict: OnConflict) -> Self {
        Upsert {
            values: super::query::checked_values(row),
            target,
            on_conflict,
            _model: PhantomData,
        }
    }

    fn sql(&self) -> String {
        let insert = M::SCHEMA.insert_sql;
        let target = quote_ident(self.target.name);
        let action = match self.on_conflict {
            OnConflict::Ignore => "NOTHING".to_owned(),
            OnConflict::Update => {
                // Every column the insert sets, but the conflict column itself and what is only
                // set when a row is made (`auto_now_add`).
                let sets: Vec<String> = M::SCHEMA
                    .struct_columns()
                    .filter(|c| !c.is_auto() && !c.auto_now_add && c.name != self.target.name)
                    .map(|c| {
                        let name = quote_ident(c.name);
                        format!("{name} = excluded.{name}")
                    })
                    .collect();
                if sets.is_empty() {
                    // Nothing else to write: touch the row so RETURNING still gives its id.
                    format!("UPDATE SET {target} = excluded.{target}")
                } else {
                    format!("UPDATE SET {}", sets.join(", "))
                }
            }
        };
        format!("{insert} ON CONFLICT ({target}) DO {action} RETURNING rowid")
    }
}

impl<M: Model> Query for Upsert<M> {
    type Output = Option<i64>;
    fn writes(&self) -> bool {
        true
    }
    fn run(self, conn: &Connection) -> Result<Option<i64>, DbError> {
        let sql = self.sql();
        let values = self.values?;
        let mut now = None;
        let params = M::SCHEMA
            .struct_columns()
            .zip(values)
            .filter(|(column, _)| !column.is_auto())
            .map(|(column, value)| {
                if column.auto_now || column.auto_now_add {
                    now.get_or_insert_with(now_value).clone()
                } else {
                    value
                }
            });
        let mut statement = conn.prepare_cached(&sql)?;
        let mut rows = statement.query(params_from_iter(params))?;
        let id = match rows.next()? {
            Some(row) => Some(row.get(0)?),
            None => None,
        };
        // Step the statement to its end: a deferred foreign key is checked when it commits, and
        // a failure there must be this call's error, not lost in a reset.
        while rows.next()?.is_some() {}
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
    fn run(self, conn: &Connection) -> Result<i64, DbError> {
        self.0.run(conn)?.ok_or(DbError::NotFound)
    }
}
