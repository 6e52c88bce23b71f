//! Cluster tests: several nodes in this process on 127.0.0.1:0, one throwaway Redis each test
//! (redis-server must be installed: ./scripts/test installs it), real clients.

#[path = "../support/doomed.rs"]
mod doomed;
#[path = "../support/postgres.rs"]
mod postgres;
#[path = "../support/redis.rs"]
mod redis;
#[path = "../support/mod.rs"]
mod support;

mod cloud;
mod common;
mod crash;
mod failover;
mod groups;
mod logins;
mod mailbox;
mod nodes;
mod reverse;
mod sessions;
