//! Integration tests of models and queries: real SQLite files in temp dirs, through `Database`
//! and `AsyncDatabase`, and through a real server for logins.

#[path = "../support/mod.rs"]
mod support;

#[path = "../support/postgres.rs"]
mod postgres;

/// One test per backend for each function named: `backends!(sync: a, b; async: c)` makes
/// `sqlite::a` and `postgres::a` calling `a(Backend::Sqlite)` and `a(Backend::Postgres)` (the
/// async ones as `#[tokio::test]`s on a multi-threaded runtime).
#[macro_export]
macro_rules! backends {
    (sync: $($sync:ident),* $(,)? ; async: $($async:ident),* $(,)?) => {
        mod sqlite {
            $(#[test]
            fn $sync() {
                super::$sync($crate::models::Backend::Sqlite)
            })*
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $async() {
                super::$async($crate::models::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[test]
            fn $sync() {
                super::$sync($crate::models::Backend::Postgres)
            })*
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $async() {
                super::$async($crate::models::Backend::Postgres).await
            })*
        }
    };
    (sync: $($sync:ident),* $(,)?) => {
        $crate::backends!(sync: $($sync),*; async:);
    };
}

mod models;

mod aggregates;
mod concurrency;
mod constraints;
mod custom;
mod fields;
mod postgres_backend;
mod postgres_schema;
mod prefetch;
mod queries;
mod relations;
mod rows;
mod stream;
mod upsert;
mod users;
mod validation;
