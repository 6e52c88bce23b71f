//! `Json<T>`: any serde value stored as JSON text in one column (the database checks it is valid
//! JSON). Its migration behaviour: a TEXT column with `CHECK (json_valid(..))`; changing `T`
//! needs no migration, and a stored value that no longer decodes as `T` is a typed
//! [`DbError::Decode`](super::DbError::Decode) when read, never a panic.

use std::ops::{Deref, DerefMut};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::schema::{ColumnSchema, FieldKind};
use super::sql::{Value, ValueRef};
use super::value::{ColumnType, SqlType};
use super::DbError;

/// A field holding `T` as JSON: `tags: Json<Vec<String>>`, `settings: Json<Settings>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json<T>(pub T);

impl<T> Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for Json<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> SqlType for Json<T> {
    const KIND: FieldKind = FieldKind::Json;
    fn to_sql(&self, column: &ColumnSchema) -> Result<Value, DbError> {
        serde_json::to_string(&self.0)
            .map(Value::Text)
            .map_err(|err| DbError::InvalidValue {
                column: column.name,
                reason: format!("does not encode as JSON: {err}"),
            })
    }
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
        let decode = |reason: String| DbError::Decode {
            column: column.name,
            expected: std::any::type_name::<T>(),
            reason,
        };
        let text = value.as_str().map_err(|e| decode(e.to_string()))?;
        serde_json::from_str(text)
            .map(Json)
            .map_err(|e| decode(e.to_string()))
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> ColumnType for Json<T> {
    type Inner = Json<T>;
}
