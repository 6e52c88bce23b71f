//! The `Model` trait that `#[derive(Model)]` implements, and the relation field types.

use std::fmt;
use std::marker::PhantomData;

use super::sql::{SqlRow, Value, ValueRef};

use super::schema::{ColumnSchema, FieldKind, Reference, TableSchema};
use super::value::{ColumnType, IntoColumnValue, SqlType};
use super::DbError;

/// A struct stored as a table row. Implemented by `#[derive(Model)]`; see the crate docs of
/// `fluxon::db` for the attributes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a model",
    label = "not a model",
    note = "derive it: `#[derive(fluxon::Model)]`"
)]
pub trait Model: Sized + Send + 'static {
    /// The primary key's type.
    type Key: SqlType + Clone + Send + Sync + fmt::Debug + 'static;
    /// The table's name.
    const TABLE: &'static str;
    /// The primary key column's name.
    const KEY_COLUMN: &'static str;
    /// The table, as data.
    const SCHEMA: TableSchema;

    /// Builds the struct from a row whose columns, from `start`, are [`TableSchema::struct_columns`].
    fn from_row(row: &SqlRow<'_>, start: usize) -> Result<Self, DbError>;

    /// The values of every column the struct holds, in schema order (auto fields included; the
    /// caller skips them on insert).
    fn to_values(&self) -> Result<Vec<Value>, DbError>;

    /// Appends [`to_values`](Self::to_values) to `out` (the derive writes them in place, with no
    /// vector of their own: what a bulk insert of many rows does for each).
    fn write_values(&self, out: &mut Vec<Value>) -> Result<(), DbError> {
        out.extend(self.to_values()?);
        Ok(())
    }

    /// The primary key, if the struct holds it (`None` for the implicit `id`).
    fn key(&self) -> Option<Self::Key>;

    /// Runs the model's validators (`#[field(validate = ..)]`, `#[model(validate = ..)]`);
    /// every write of a whole row calls it first.
    fn validate(&self) -> Result<(), super::ValidationErrors> {
        Ok(())
    }

    /// Runs the validator of column `index` (in [`TableSchema::columns`]) on a new value for
    /// it, given as `&dyn Any` of the column's type; a column update calls it first.
    fn validate_column(
        index: usize,
        value: &dyn std::any::Any,
    ) -> Result<(), super::ValidationErrors> {
        let _ = (index, value);
        Ok(())
    }
}

/// Marks the single user model, `#[model(authorized_user)]`; implemented by the derive.
pub trait AuthorizedUser: Model<Key = i64> {
    /// The column holding the login name.
    const USERNAME_COLUMN: &'static str;
    /// The column holding the password hash.
    const PASSWORD_COLUMN: &'static str;
}

/// A reference to a row of `M` (the original's `ForeignKey`): holds that row's key.
pub struct ForeignKey<M: Model> {
    key: M::Key,
    _model: PhantomData<fn() -> M>,
}

/// A reference to a row of `M` that no other row may share (the original's `OneToOneField`).
pub struct OneToOne<M: Model> {
    key: M::Key,
    _model: PhantomData<fn() -> M>,
}

macro_rules! reference_type {
    ($name:ident, $kind:ident) => {
        impl<M: Model> $name<M> {
            /// A reference to the row whose key is `key`.
            pub fn new(key: M::Key) -> Self {
                $name {
                    key,
                    _model: PhantomData,
                }
            }

            /// The referenced row's key.
            pub fn key(&self) -> &M::Key {
                &self.key
            }
        }

        impl<M: Model> Clone for $name<M> {
            fn clone(&self) -> Self {
                $name::new(self.key.clone())
            }
        }

        impl<M: Model> fmt::Debug for $name<M> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}<{}>({:?})", stringify!($name), M::TABLE, self.key)
            }
        }

        impl<M: Model> PartialEq for $name<M>
        where
            M::Key: PartialEq,
        {
            fn eq(&self, other: &Self) -> bool {
                self.key == other.key
            }
        }

        impl<M: Model<Key = i64>> From<i64> for $name<M> {
            fn from(key: i64) -> Self {
                $name::new(key)
            }
        }

        impl<M: Model<Key = i64>> IntoColumnValue<$name<M>> for i64 {
            fn into_column_value(self) -> $name<M> {
                $name::new(self)
            }
        }

        impl<M: Model<Key = i64>> IntoColumnValue<Option<$name<M>>> for i64 {
            fn into_column_value(self) -> Option<$name<M>> {
                Some($name::new(self))
            }
        }

        impl<M: Model> SqlType for $name<M> {
            const KIND: FieldKind = FieldKind::$kind(Reference {
                table: M::TABLE,
                column: M::KEY_COLUMN,
                on_delete: super::schema::OnDelete::Cascade,
            });
            fn to_sql(&self, column: &ColumnSchema) -> Result<Value, DbError> {
                self.key.to_sql(column)
            }
            fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
                M::Key::from_sql(value, column).map($name::new)
            }
        }

        impl<M: Model> ColumnType for $name<M> {
            type Inner = $name<M>;
        }

        /// As the referenced row's key.
        impl<M: Model> serde::Serialize for $name<M>
        where
            M::Key: serde::Serialize,
        {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                self.key.serialize(serializer)
            }
        }

        impl<'de, M: Model> serde::Deserialize<'de> for $name<M>
        where
            M::Key: serde::Deserialize<'de>,
        {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                M::Key::deserialize(deserializer).map($name::new)
            }
        }
    };
}

reference_type!(ForeignKey, ForeignKey);
reference_type!(OneToOne, OneToOne);

/// A many-to-many relation to `M` through the join model `Through` (the original's
/// `ManyToManyField(..., through='Enrollment')`). Holds nothing itself: the rows live in
/// `Through`'s table; use the generated column constant (`Student::courses`) to add, remove and
/// list.
pub struct ManyToMany<M: Model, Through: Model> {
    _models: PhantomData<fn() -> (M, Through)>,
}

impl<M: Model, Through: Model> Default for ManyToMany<M, Through> {
    fn default() -> Self {
        ManyToMany {
            _models: PhantomData,
        }
    }
}

impl<M: Model, Through: Model> Clone for ManyToMany<M, Through> {
    fn clone(&self) -> Self {
        ManyToMany::default()
    }
}

impl<M: Model, Through: Model> fmt::Debug for ManyToMany<M, Through> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManyToMany<{} through {}>", M::TABLE, Through::TABLE)
    }
}

/// Nothing: the relation's rows are not part of the model's value.
impl<M: Model, Through: Model> serde::Serialize for ManyToMany<M, Through> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de, M: Model, Through: Model> serde::Deserialize<'de> for ManyToMany<M, Through> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer).map(|()| ManyToMany::default())
    }
}

impl<M: Model, Through: Model> PartialEq for ManyToMany<M, Through> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
