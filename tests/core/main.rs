//! Integration tests of the core runtime: a real server on 127.0.0.1:0, real clients, real sockets.

mod common;
#[path = "../support/postgres.rs"]
mod postgres;
#[path = "../support/mod.rs"]
mod support;

mod blocking;
mod calls;
mod hostile;
mod hostile_load;
mod logging;
mod reverse;
mod sessions;
mod shutdown;
mod tls;
