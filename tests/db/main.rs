//! Integration tests of models and queries: real SQLite files in temp dirs, through `Database`
//! and `AsyncDatabase`, and through a real server for logins.

#[path = "../support/mod.rs"]
mod support;

#[path = "../support/postgres.rs"]
mod postgres;

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
