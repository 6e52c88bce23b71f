//! Models and queries: the [`Model`] trait that `#[derive(Model)]` implements, typed columns and
//! filters, query values, and the two ways to run them: [`Database`] (blocking) and
//! [`AsyncDatabase`] (async: on PostgreSQL a one-statement query is awaited, the rest run where
//! blocking is allowed; see [`DbFuture`]).
//!
//! ```
//! use fluxon::db::{Database, Executor, ForeignKey, Model};
//!
//! #[derive(Model, Debug)]
//! struct Teacher {
//!     #[field(max_length = 50, unique)]
//!     name: String,
//! }
//!
//! #[derive(Model, Debug)]
//! struct Course {
//!     #[field(max_length = 100)]
//!     title: String,
//!     #[field(on_delete = cascade)]
//!     teacher: ForeignKey<Teacher>,
//!     seats: u32,
//! }
//!
//! # fn main() -> Result<(), fluxon::db::DbError> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path().join("school.sqlite3"))?;
//! db.create_tables(&[Teacher::SCHEMA, Course::SCHEMA])?;
//! let ada = db.insert(&Teacher { name: "Ada".into() })?;
//! db.insert(&Course { title: "Engines".into(), teacher: ada.into(), seats: 12 })?;
//! let big = db.check(Course::seats.ge(10) & Course::title.like("E%")).all()?;
//! assert_eq!(big[0].title, "Engines");
//! let with_teacher = db.check(Course::teacher.eq(ada)).related(Course::teacher)?;
//! assert_eq!(with_teacher[0].1.name, "Ada");
//! # Ok(()) }
//! ```
//!
//! ## Backends
//!
//! The place given to `open` decides the backend ([`Location::of`]): a `postgres://` or
//! `postgresql://` URL is a PostgreSQL server, anything else a SQLite file. The derive's output is
//! the same for both (a [`TableSchema`] is data); each backend renders its own DDL and its few
//! differing statements ([`Dialect`]), and every query runs through one connection type
//! ([`Conn`]) that binds fluxon's [`Value`]s in its driver's way. On PostgreSQL, transactions
//! are SERIALIZABLE and re-run when they lose to a concurrent one (see
//! [`Database::transaction`]), reads use read-only connections, and TLS follows the URL's
//! `sslmode` (see the README's "PostgreSQL" section).
//!
//! ## Fields
//!
//! | original | Rust field | attributes |
//! |---|---|---|
//! | CharField | `String` | `max_length = N` (required for Char; without it, a TextField) |
//! | TextField | `String` | |
//! | IntegerField | `i32` | |
//! | BigIntegerField | `i64` | |
//! | PositiveIntegerField | `u32` | (CHECK >= 0) |
//! | FloatField | `f64` | |
//! | DecimalField | `Decimal` | `max_digits = N, decimal_places = M` (exact; stored as a scaled integer) |
//! | BooleanField | `bool` | |
//! | AutoField | `i64` | `primary_key, auto`; or nothing: an implicit `id` is added |
//! | DateField / TimeField | `Date` / `Time` | `default = "..."` |
//! | DateTimeField | `OffsetDateTime` | `auto_now`, `auto_now_add` |
//! | ForeignKey | `ForeignKey<M>` | `on_delete = cascade / protect / set_null / set_default / no_action` |
//! | OneToOneField | `OneToOne<M>` | `on_delete = ...` |
//! | ManyToManyField | `ManyToMany<M, Through>` | (no column; rows live in `Through`) |
//! | (password) | `Password` | (argon2id hash) |
//!
//! Every kind in one model, with the attributes each takes:
//!
//! ```
//! use fluxon::db::{
//!     Date, Decimal, ForeignKey, ManyToMany, Model, OffsetDateTime, OneToOne, Password, Time,
//! };
//!
//! #[derive(Model)]
//! #[model(authorized_user, table = "members")]
//! struct Member {
//!     #[field(primary_key, auto)]
//!     id: i64, // AutoField (leave it out for an implicit `id`)
//!     #[field(max_length = 30, unique)]
//!     username: String, // CharField
//!     password: Password, // argon2id hash, never the password
//!     bio: String, // TextField
//!     age: i32, // IntegerField
//!     points: i64, // BigIntegerField
//!     #[field(default = 0)]
//!     visits: u32, // PositiveIntegerField
//!     rating: f64, // FloatField
//!     #[field(max_digits = 8, decimal_places = 2)]
//!     balance: Decimal, // DecimalField, exact
//!     #[field(default = true)]
//!     active: bool, // BooleanField
//!     birthday: Option<Date>, // DateField, NULL allowed
//!     wakes_at: Time, // TimeField
//!     #[field(auto_now_add)]
//!     joined: OffsetDateTime, // DateTimeField, set on insert
//!     #[field(auto_now)]
//!     seen: OffsetDateTime, // DateTimeField, set on every save
//!     #[field(on_delete = set_null)]
//!     invited_by: Option<ForeignKey<Member>>, // ForeignKey to itself
//!     #[field(on_delete = cascade)]
//!     home: OneToOne<Address>, // OneToOneField, to a model declared later
//!     clubs: ManyToMany<Club, Membership>, // ManyToManyField through a join model
//! }
//!
//! #[derive(Model)]
//! struct Address {
//!     street: String,
//! }
//!
//! #[derive(Model)]
//! struct Club {
//!     #[field(max_length = 50, unique)]
//!     name: String,
//! }
//!
//! #[derive(Model)]
//! struct Membership {
//!     #[field(on_delete = cascade)]
//!     member: ForeignKey<Member>,
//!     #[field(on_delete = protect)]
//!     club: ForeignKey<Club>,
//! }
//!
//! assert_eq!(Member::SCHEMA.columns.len(), 16); // the ManyToMany has no column
//! ```
//!
//! Any field may be an `Option<T>` (NULL allowed) and take `unique`, `primary_key` or
//! `default = <SQL literal as a string>`. `#[model(table = "name")]` names the table (default: the
//! struct's name in snake case); `#[model(authorized_user)]` marks the user model.
//!
//! What this module does not own: schema migrations (`migrate`), and the server (`Request::user`
//! reads the logged-in user through here).

mod aggregate;
mod async_database;
mod column;
mod conn;
mod database;
mod dialect;
mod error;
mod executor;
mod expr;
mod json;
mod many_to_many;
mod model;
mod order;
pub(crate) mod password;
pub(crate) mod postgres;
mod postgres_async;
mod postgres_tls;
mod prefetch;
mod query;
mod raw;
mod row;
mod savepoint;
pub mod schema;
mod sql;
mod statement;
mod stream;
mod subquery;
mod upsert;
mod user;
mod validate;
mod value;

pub use aggregate::{count_of, count_rows, sum_of, Aggregate, Selectable, Summable};
pub(crate) use async_database::elsewhere;
pub use async_database::{AsyncDatabase, DbFuture};
pub use column::{
    escape_like, Assignment, Column, Filter, Order, ReadOnly, Relation, Settable, TextColumn,
    Unique, Writable,
};
pub use conn::Conn;
pub(crate) use database::open_connection;
pub use database::{Database, Transaction};
pub use dialect::{Dialect, Location};
pub use error::DbError;
pub use executor::{Check, Executor};
pub use expr::{Expr, Numeric};
pub use json::Json;
pub use many_to_many::{AddRelated, ListRelated, ManyToManyColumn, RemoveRelated};
pub use model::{AuthorizedUser, ForeignKey, ManyToMany, Model, OneToOne};
pub use order::in_reference_order;
pub use password::Password;
pub use prefetch::{Prefetch, Prefetched, Then};
pub use query::{
    Aggregated, Annotated, ColumnList, Columns, Count, CreateTables, Delete, DeleteRow, Exists,
    First, Insert, InsertMany, InsertValues, Query, Rows, Save, Select, Update, WithRelated,
};
pub use raw::{FromSqlRow, Raw};
pub use row::{Row, RowsWith};
pub use rust_decimal::Decimal;
pub(crate) use savepoint::{savepoint, On};
pub use schema::{ColumnSchema, FieldKind, OnDelete, Reference, TableSchema};
pub use sql::{SqlRow, Value, ValueRef, WrongType};
pub use statement::Statement;
pub use stream::{ForEach, RowStream};
pub use subquery::{any_related, subquery, Subquery};
pub use time::{Date, OffsetDateTime, Time};
pub use upsert::{ConflictTarget, OrUpdate, Upsert};
pub use user::{user_by_id, Credentials};
pub use validate::{FieldError, ValidationErrors};
pub use value::{ColumnType, IntoColumnValue, SqlType};

/// The derive; see the module docs.
pub use fluxon_macros::Model;

/// Stores an enum of unit variants in a column: as its variants' names (TEXT, the default), or
/// with `#[field_enum(integer)]` as their explicit numbers (INTEGER; every variant must give
/// one, so stored rows keep their meaning when variants are added or reordered).
///
/// Migration behaviour: a plain TEXT or INTEGER column with no CHECK, so adding a variant needs
/// no migration; a stored value no variant has (one removed, or written by other code) is a
/// typed [`DbError::Decode`] when read.
///
/// ```
/// use fluxon::db::{Database, Executor, FieldEnum, Model};
///
/// #[derive(FieldEnum, Debug, Clone, Copy, PartialEq)]
/// enum Status { Pending, Shipped }
///
/// #[derive(FieldEnum, Debug, Clone, Copy, PartialEq)]
/// #[field_enum(integer)]
/// enum Priority { Low = 1, High = 9 }
///
/// #[derive(Model)]
/// struct Order { status: Status, priority: Priority }
///
/// # fn main() -> Result<(), fluxon::db::DbError> {
/// # let dir = tempfile::tempdir().unwrap();
/// let db = Database::open(dir.path().join("shop.sqlite3"))?;
/// db.create_tables(&[Order::SCHEMA])?;
/// db.insert(&Order { status: Status::Pending, priority: Priority::High })?;
/// let shipped = db.check(Order::status.eq(Status::Shipped)).count()?;
/// assert_eq!(shipped, 0);
/// assert_eq!(db.check(Order::priority.eq(Priority::High)).first()?.unwrap().status, Status::Pending);
/// # Ok(()) }
/// ```
pub use fluxon_macros::FieldEnum;
