//! Benchmarks of fluxon against its peers. Each binary in `src/bin` measures one area, runs every
//! contender in the same process on the same machine, and prints medians and ratios.
//!
//! * `rpc`: calls over one or many connections, against tarpc and a raw tokio length-delimited echo.
//! * `db`: inserts, reads and joins, against raw rusqlite and Diesel, sync and async.
//! * `cloud`: 1 GiB up and down through the cloud endpoint, against raw loopback socket copies.
//! * `cluster`: one node alone against the same node in a cluster on Redis; reverse calls on one
//!   node and across nodes against Redis's own round trip; a node's death.
//! * `soak` and `abuse`: a server in a child process (see [`child`]) under hours of clients, or
//!   under attack while a bystander is served.

pub mod child;
pub mod cloud;
pub mod counts;
pub mod db;
/// A server that can be killed outright (its runtime dropped), as the cluster tests use.
#[path = "../../tests/support/doomed.rs"]
pub mod doomed;
pub mod fanout;
pub mod pg;
/// The throwaway PostgreSQL server the tests use, started the same way for the benchmark.
#[path = "../../tests/support/postgres.rs"]
pub mod postgres;
/// The throwaway Redis the cluster tests use, started the same way for the benchmark.
#[path = "../../tests/support/redis.rs"]
pub mod redis;
pub mod rpc;
pub mod stats;
