//! [`Row`]: a model as loaded from its table, with its primary key.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Serialize};

use super::model::Model;
use super::sql::SqlRow;
use super::value::SqlType;
use super::DbError;

/// A row of `M`'s table: its primary key and its fields. Every read gives rows (`all`, `first`,
/// `get`, `related`, a many-to-many `list`), so a loaded row can be saved back
/// ([`Executor::save`](super::Executor::save)) or deleted ([`Executor::delete_row`](super::Executor::delete_row))
/// without a second lookup.
///
/// It derefs to `M`: `course.title` reads the field; `course.id` is the key. To move fields
/// out, take [`fields`](Row::fields): `rows.into_iter().map(|c| c.fields.title)`.
///
/// On the wire (a view returning rows) it is the pair `(id, fields)`.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "M: Serialize, M::Key: Serialize",
    deserialize = "M: Deserialize<'de>, M::Key: Deserialize<'de>"
))]
pub struct Row<M: Model> {
    /// The primary key.
    pub id: M::Key,
    /// The model's fields.
    pub fields: M,
}

/// Rows, each with one more value: what `annotate` and `related` read.
pub type RowsWith<M, T> = Vec<(Row<M>, T)>;

impl<M: Model> Row<M> {
    /// A row with this key and these fields (as if loaded).
    pub fn new(id: M::Key, fields: M) -> Self {
        Row { id, fields }
    }

    /// The fields, without the key.
    pub fn into_fields(self) -> M {
        self.fields
    }

    /// Reads a row whose columns, from `start`, are the key then the struct's columns (what
    /// [`TableSchema::select_list`](super::TableSchema::select_list) selects).
    #[inline]
    pub(crate) fn read(row: &SqlRow<'_>, start: usize) -> Result<Self, DbError> {
        let key_column = &M::SCHEMA.columns[0];
        let id = M::Key::from_sql(row.get_ref(start)?, key_column)?;
        let fields = M::from_row(row, start + 1)?;
        Ok(Row { id, fields })
    }

    /// How many columns [`read`](Self::read) takes.
    pub(crate) fn width() -> usize {
        1 + M::SCHEMA.struct_columns().count()
    }
}

impl<M: Model> Deref for Row<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.fields
    }
}

impl<M: Model> DerefMut for Row<M> {
    fn deref_mut(&mut self) -> &mut M {
        &mut self.fields
    }
}

impl<M: Model + fmt::Debug> fmt::Debug for Row<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Row")
            .field("id", &self.id)
            .field("fields", &self.fields)
            .finish()
    }
}

impl<M: Model + Clone> Clone for Row<M> {
    fn clone(&self) -> Self {
        Row {
            id: self.id.clone(),
            fields: self.fields.clone(),
        }
    }
}

impl<M: Model + PartialEq> PartialEq for Row<M>
where
    M::Key: PartialEq,
{
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.fields == other.fields
    }
}
