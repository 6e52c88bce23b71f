//! Many-to-many relations: `Student::courses.add(student, course)` and friends, as queries on
//! the join model's table.

use std::marker::PhantomData;

use super::conn::Conn;
use super::sql::Value;

use super::model::{ManyToMany, Model};
use super::query::Query;
use super::row::Row;
use super::schema::{quote_ident, ColumnSchema};
use super::value::SqlType;
use super::DbError;

/// The relation constant the derive makes for a `ManyToMany<T, Through>` field of `M`.
pub struct ManyToManyColumn<M, F> {
    _types: PhantomData<fn() -> (M, F)>,
}

impl<M, F> Clone for ManyToManyColumn<M, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, F> Copy for ManyToManyColumn<M, F> {}

impl<M, F> ManyToManyColumn<M, F> {
    /// Made by the derive.
    #[doc(hidden)]
    pub const fn new() -> Self {
        ManyToManyColumn {
            _types: PhantomData,
        }
    }
}

/// The two foreign key columns of `Through`: the one pointing at `M`, then the one at `T`.
pub(crate) fn join_columns<M: Model, T: Model, Through: Model>(
) -> Result<(&'static ColumnSchema, &'static ColumnSchema), DbError> {
    let references = |table: &'static str| {
        Through::SCHEMA
            .struct_columns()
            .filter(move |c| c.reference().is_some_and(|r| r.table == table))
    };
    let from = references(M::TABLE).next();
    // A relation of a model to itself has two references to the same table: take the second.
    let to = references(T::TABLE).find(|c| Some(*c) != from);
    match (from, to) {
        (Some(from), Some(to)) => Ok((from, to)),
        _ => Err(DbError::InvalidValue {
            column: Through::TABLE,
            reason: format!(
                "the join model `{}` needs a foreign key to `{}` and one to `{}`",
                Through::TABLE,
                M::TABLE,
                T::TABLE
            ),
        }),
    }
}

impl<M: Model, T: Model, Through: Model> ManyToManyColumn<M, ManyToMany<T, Through>> {
    /// Adds `to` to `from`'s relation: a row in the join table holding the two keys (its other
    /// columns take their defaults). Produces the join row's id.
    pub fn add(self, from: M::Key, to: T::Key) -> AddRelated<M, T, Through> {
        AddRelated {
            from,
            to,
            _types: PhantomData,
        }
    }

    /// Removes `to` from `from`'s relation. Produces how many join rows were deleted.
    pub fn remove(self, from: M::Key, to: T::Key) -> RemoveRelated<M, T, Through> {
        RemoveRelated {
            from,
            to,
            _types: PhantomData,
        }
    }

    /// Every `T` related to `from`, in one query joining through the join table.
    pub fn list(self, from: M::Key) -> ListRelated<M, T, Through> {
        ListRelated {
            from,
            _types: PhantomData,
        }
    }
}

/// See [`ManyToManyColumn::add`].
pub struct AddRelated<M: Model, T: Model, Through> {
    from: M::Key,
    to: T::Key,
    _types: PhantomData<fn() -> Through>,
}

impl<M: Model, T: Model, Through: Model> Query for AddRelated<M, T, Through> {
    type Output = i64;
    fn writes(&self) -> bool {
        true
    }
    fn run(self, conn: &Conn<'_>) -> Result<i64, DbError> {
        let (from, to) = join_columns::<M, T, Through>()?;
        let mut names = vec![quote_ident(from.name), quote_ident(to.name)];
        let mut params: Vec<Value> = vec![self.from.to_sql(from)?, self.to.to_sql(to)?];
        for column in Through::SCHEMA.columns {
            if column.auto_now || column.auto_now_add {
                names.push(quote_ident(column.name));
                params.push(time::OffsetDateTime::now_utc().to_sql(column)?);
            }
        }
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({})",
            quote_ident(Through::TABLE),
            names.join(", "),
            vec!["?"; names.len()].join(", ")
        );
        conn.insert(&sql, params, Through::KEY_COLUMN)
    }
}

/// See [`ManyToManyColumn::remove`].
pub struct RemoveRelated<M: Model, T: Model, Through> {
    from: M::Key,
    to: T::Key,
    _types: PhantomData<fn() -> Through>,
}

impl<M: Model, T: Model, Through: Model> Query for RemoveRelated<M, T, Through> {
    type Output = usize;
    fn writes(&self) -> bool {
        true
    }
    fn run(self, conn: &Conn<'_>) -> Result<usize, DbError> {
        let (from, to) = join_columns::<M, T, Through>()?;
        let sql = format!(
            "DELETE FROM {} WHERE {} = ? AND {} = ?",
            quote_ident(Through::TABLE),
            quote_ident(from.name),
            quote_ident(to.name)
        );
        let params = [self.from.to_sql(from)?, self.to.to_sql(to)?];
        conn.execute(&sql, params)
    }
}

/// See [`ManyToManyColumn::list`].
pub struct ListRelated<M: Model, T, Through> {
    from: M::Key,
    _types: PhantomData<fn() -> (T, Through)>,
}

impl<M: Model, T: Model, Through: Model> Query for ListRelated<M, T, Through> {
    type Output = Vec<Row<T>>;
    fn writes(&self) -> bool {
        false
    }
    fn run(self, conn: &Conn<'_>) -> Result<Vec<Row<T>>, DbError> {
        let (from, to) = join_columns::<M, T, Through>()?;
        let target = quote_ident(T::TABLE);
        let columns = T::SCHEMA.select_list;
        let sql = format!(
            "SELECT {columns} FROM {target} JOIN {through} AS j ON j.{to} = {target}.{key} \
             WHERE j.{from} = ? ORDER BY j.{order}",
            order = quote_ident(Through::KEY_COLUMN),
            through = quote_ident(Through::TABLE),
            to = quote_ident(to.name),
            key = quote_ident(T::KEY_COLUMN),
            from = quote_ident(from.name),
        );
        conn.rows(&sql, [self.from.to_sql(from)?], |row| Row::read(row, 0))
    }
}
