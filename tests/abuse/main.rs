//! Attacks on a real server on 127.0.0.1:0, made from other loopback addresses (127.0.0.2 and up,
//! sockets bound to them), each while a well-behaved client on 127.0.0.1 is served: login floods,
//! connection and handshake floods, large-frame floods, deeply nested payloads, call floods.
//!
//! Several tests measure this process's resident memory (the server runs in it): they hold
//! [`ALONE`] so that no other test of this binary runs beside them.

mod app;
#[path = "../support/mod.rs"]
mod support;

mod depth;
mod logins;
mod memory;
mod peers;
mod proxy;

/// Taken by every test of this binary, so a test that measures memory sees only its own attack.
pub static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
