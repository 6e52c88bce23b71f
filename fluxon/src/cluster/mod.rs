//! Membership of a node in a cluster through Redis: many Fluxon nodes behind one address share
//! their sessions and logins (a token made on one node resumes on any other), learn of each
//! other's logins, logouts and ended sessions, and see which nodes are alive.
//!
//! ```no_run
//! use fluxon::{AsyncServer, Cluster, Router};
//!
//! # async fn main_(router: Router) -> Result<(), Box<dyn std::error::Error>> {
//! // Every node: the same private key (tokens and grants made on one hold on the others).
//! let router = router.private_key(std::env::var("FLUXON_KEY")?)?;
//! let server = AsyncServer::new(8080)
//!     .router(router)
//!     .cluster(Cluster::redis("redis://10.0.0.5:6379/").prefix("chat"));
//! let running = server.start().await?;
//! # Ok(()) }
//! ```
//!
//! What lives where (every key under the cluster's prefix, so apps can share one Redis):
//!
//! | key | what |
//! |---|---|
//! | `{p}:nodes` | sorted set: node id -> its last heartbeat (unix ms) |
//! | `{p}:epoch` | string: a random mark of the data set (a Redis that lost its data has a new one) |
//! | `{p}:bus` | pub/sub channel every node listens on (events, postcard) |
//! | `{p}:to:{node}` | pub/sub channel of one node: the replies to what it asked the others |
//! | `{p}:s:{session}` | hash: `user`, `gen` (login generation), `created` (unix ms); expires with the session |
//! | `{p}:u:{user}` | set: the sessions `user` is logged in on |
//! | `{p}:g:{group}` | set: the sessions in `group` |
//! | `{p}:sg:{session}` | set: the groups `session` is in |
//! | `{p}:n:{node}:s` | set: the sessions connected on `node` (their records expire once it dies) |
//! | `{p}:lt:{bucket}:{key}` | hash: a login-throttling bucket's state, shared by every node |
//! | `{p}:mb:{user}` | string: the node delivering `user`'s mailbox now (a lease, so two nodes never deliver at once) |
//!
//! A node writes what changes in its session registry, and what it tells the others, through one
//! task, in order, pipelined; a plain call never touches Redis. Redis unreachable: local calls go on, what
//! needs Redis fails with [`ClusterError`], and the connection is made again with backoff.
//! What this module does not own: the sessions themselves (`server`), token cryptography (`auth`).

mod bus;
mod config;
mod error;
mod keys;
mod node;
mod presence;
mod record;
mod throttle;

pub use config::Cluster;
pub use error::ClusterError;
pub use presence::Presence;

pub(crate) use bus::{Event, Refusal, Reply, Target};
pub(crate) use node::{millis, Asked, Change, Node, NodeId, Rejoined};
pub(crate) use record::{unix_ms, Record};
pub(crate) use throttle::SharedBucket;
