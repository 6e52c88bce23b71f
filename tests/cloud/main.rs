//! Integration tests of the cloud endpoint: a real server with its cloud listener on 127.0.0.1:0,
//! a real cloud folder and SQLite metadata in a temp dir, real clients and connectors, and a raw
//! client that speaks the documented protocol for what a well-behaved connector never sends.

mod bystander;
mod common;
#[path = "../support/postgres.rs"]
mod postgres;
#[path = "../support/mod.rs"]
mod support;

mod abuse;
mod access;
mod blocking;
mod grants;
mod large;
mod operations;
mod paths;
mod tls;
mod transfers;
mod trees;
