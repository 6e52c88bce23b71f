//! Prefetching: the rows that refer to a set of rows (a reverse foreign key) or that a
//! many-to-many relates to them, loaded for the whole set in one statement per level, never one
//! per row. Levels nest: users, each with their posts, each with its comments, is three
//! statements however many users and posts there are.
//!
//! ```
//! use fluxon::db::{Database, Executor, ForeignKey, Model};
//!
//! #[derive(Model)]
//! struct User { name: String }
//! #[derive(Model)]
//! struct Post {
//!     #[field(on_delete = cascade)]
//!     author: ForeignKey<User>,
//!     title: String,
//! }
//! #[derive(Model)]
//! struct Comment {
//!     #[field(on_delete = cascade)]
//!     post: ForeignKey<Post>,
//!     text: String,
//! }
//!
//! # fn main() -> Result<(), fluxon::db::DbError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path().join("blog.sqlite3"))?;
//! db.create_tables(&[User::SCHEMA, Post::SCHEMA, Comment::SCHEMA])?;
//! let ann = db.insert(&User { name: "Ann".into() })?;
//! let post = db.insert(&Post { author: ann.into(), title: "Hello".into() })?;
//! db.insert(&Comment { post: post.into(), text: "Hi!".into() })?;
//! let users = db.check_all::<User>().prefetch(Post::author.then(Comment::post))?;
//! let (user, posts) = &users[0];
//! let (post, comments) = &posts[0];
//! assert_eq!((user.name.as_str(), post.title.as_str(), comments[0].text.as_str()), ("Ann", "Hello", "Hi!"));
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;

use super::conn::Conn;

use super::column::{Column, Relation};
use super::many_to_many::{join_columns, ManyToManyColumn};
use super::model::{ManyToMany, Model};
use super::row::Row;
use super::schema::quote_ident;
use super::sql::SqlRow;
use super::value::{ColumnType, SqlType};
use super::DbError;

/// Keys per statement: SQLite binds at most 32,766 values in one statement, so a set larger than
/// this is loaded in a few statements of this many keys (still never one per row).
const KEYS_PER_STATEMENT: usize = 30_000;

/// What can be loaded for a set of rows of `M` at once.
pub trait Prefetch<M: Model>: Send + 'static {
    /// What each row of `M` gets.
    type Output: Send + 'static;
    /// Loads it for every row of `parents`, in their order.
    fn load(&self, conn: &Conn<'_>, parents: &[Row<M>]) -> Result<Vec<Self::Output>, DbError>;
}

/// Runs `sql_for(n)` with the parents' keys bound, `n` keys per statement; `read` decodes a
/// row into (the parent key it belongs to, the value); the values are grouped per parent (the
/// parents are rows of one query, so their keys differ; a key given twice fills its first row).
fn grouped<M: Model, V>(
    conn: &Conn<'_>,
    parents: &[Row<M>],
    sql_for: impl Fn(usize) -> String,
    read: impl Fn(&SqlRow<'_>) -> Result<(M::Key, V), DbError>,
) -> Result<Vec<Vec<V>>, DbError>
where
    M::Key: Hash + Eq,
{
    let key_column = &M::SCHEMA.columns[0];
    let mut position: HashMap<&M::Key, usize> = HashMap::with_capacity(parents.len());
    for (i, parent) in parents.iter().enumerate() {
        position.entry(&parent.id).or_insert(i);
    }
    let mut out: Vec<Vec<V>> = (0..parents.len()).map(|_| Vec::new()).collect();
    for chunk in parents.chunks(KEYS_PER_STATEMENT) {
        let keys = chunk
            .iter()
            .map(|p| p.id.to_sql(key_column))
            .collect::<Result<Vec<_>, _>>()?;
        conn.each(&sql_for(keys.len()), keys, |row| {
            let (key, value) = read(row)?;
            if let Some(&i) = position.get(&key) {
                out[i].push(value);
            }
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
    }
    Ok(out)
}

fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The rows of `C` that refer to each row of `M` through a foreign key column of `C`
/// (`Post::author`, prefetched on users): `Vec<Row<C>>` per row.
impl<M, C, R, W> Prefetch<M> for Column<C, R, W>
where
    M: Model,
    M::Key: Hash + Eq,
    C: Model,
    R: ColumnType + Relation<Target = M>,
    W: Send + 'static,
{
    type Output = Vec<Row<C>>;
    fn load(&self, conn: &Conn<'_>, parents: &[Row<M>]) -> Result<Vec<Vec<Row<C>>>, DbError> {
        let column = self.schema();
        grouped(
            conn,
            parents,
            |n| {
                format!(
                    "SELECT {}, {} FROM {} WHERE {} IN ({}) ORDER BY {}",
                    column.qualified,
                    C::SCHEMA.select_list,
                    C::SCHEMA.quoted_name,
                    column.qualified,
                    marks(n),
                    C::SCHEMA.columns[0].qualified
                )
            },
            |row| {
                let key = M::Key::from_sql(row.get_ref(0)?, column)?;
                Ok((key, Row::read(row, 1)?))
            },
        )
    }
}

/// The rows of `T` a many-to-many relates to each row of `M`, in the order they were added.
impl<M, T, Through> Prefetch<M> for ManyToManyColumn<M, ManyToMany<T, Through>>
where
    M: Model,
    M::Key: Hash + Eq,
    T: Model,
    Through: Model,
{
    type Output = Vec<Row<T>>;
    fn load(&self, conn: &Conn<'_>, parents: &[Row<M>]) -> Result<Vec<Vec<Row<T>>>, DbError> {
        let (from, to) = join_columns::<M, T, Through>()?;
        grouped(
            conn,
            parents,
            |n| {
                format!(
                    "SELECT j.{from}, {columns} FROM {target} JOIN {through} AS j \
                     ON j.{to} = {key} WHERE j.{from} IN ({marks}) ORDER BY j.{order}",
                    order = quote_ident(Through::KEY_COLUMN),
                    from = quote_ident(from.name),
                    columns = T::SCHEMA.select_list,
                    target = T::SCHEMA.quoted_name,
                    through = quote_ident(Through::TABLE),
                    to = quote_ident(to.name),
                    key = T::SCHEMA.columns[0].qualified,
                    marks = marks(n),
                )
            },
            |row| {
                let key = M::Key::from_sql(row.get_ref(0)?, from)?;
                Ok((key, Row::read(row, 1)?))
            },
        )
    }
}

/// A prefetch, then another on the rows it loaded: `Post::author.then(Comment::post)` gives each
/// user their posts, each with its comments (one statement per level).
pub struct Then<P, Q, C> {
    first: P,
    next: Q,
    _child: PhantomData<fn() -> C>,
}

impl<M, C, P, Q> Prefetch<M> for Then<P, Q, C>
where
    M: Model,
    C: Model,
    P: Prefetch<M, Output = Vec<Row<C>>>,
    Q: Prefetch<C>,
{
    type Output = Vec<(Row<C>, Q::Output)>;
    fn load(&self, conn: &Conn<'_>, parents: &[Row<M>]) -> Result<Vec<Self::Output>, DbError> {
        let children = self.first.load(conn, parents)?;
        // The next level for every child of every parent at once, then dealt back.
        let counts: Vec<usize> = children.iter().map(Vec::len).collect();
        let flat: Vec<Row<C>> = children.into_iter().flatten().collect();
        let below = self.next.load(conn, &flat)?;
        let mut pairs = flat.into_iter().zip(below);
        Ok(counts
            .into_iter()
            .map(|n| pairs.by_ref().take(n).collect())
            .collect())
    }
}

impl<C: Model, R, W> Column<C, R, W> {
    /// This reverse foreign key's prefetch, then `next` on the rows it loads:
    /// `Post::author.then(Comment::post)`.
    pub fn then<Q: Prefetch<C>>(self, next: Q) -> Then<Self, Q, C> {
        Then {
            first: self,
            next,
            _child: PhantomData,
        }
    }
}

impl<M, T: Model, Through: Model> ManyToManyColumn<M, ManyToMany<T, Through>> {
    /// This many-to-many's prefetch, then `next` on the rows it loads.
    pub fn then<Q: Prefetch<T>>(self, next: Q) -> Then<Self, Q, T> {
        Then {
            first: self,
            next,
            _child: PhantomData,
        }
    }
}

/// Rows with what a [`Prefetch`] loads for them: the rows' statement, then one per level.
pub struct Prefetched<M, P> {
    pub(crate) select: super::query::Select<M>,
    pub(crate) prefetch: P,
}

impl<M: Model, P: Prefetch<M>> super::query::Query for Prefetched<M, P> {
    type Output = Vec<(Row<M>, P::Output)>;
    fn writes(&self) -> bool {
        false
    }
    fn run(self, conn: &Conn<'_>) -> Result<Self::Output, DbError> {
        let rows = super::query::Rows(self.select).run(conn)?;
        let loaded = self.prefetch.load(conn, &rows)?;
        Ok(rows.into_iter().zip(loaded).collect())
    }
}
