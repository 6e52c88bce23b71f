//! Who a listener lets in, how fast, and what it turned away. Both listeners (the main server and
//! the cloud endpoint) admit connections through this module: per-peer connection and handshake
//! slots ([`Peers`]), rate buckets for logins and calls ([`Bucket`]), the node's counters of
//! refusals and throttles ([`Counters`]), and a log of refusals that a flood cannot turn into a
//! flood of lines ([`RefusalLog`]).
//!
//! It sits on `wire` (the [`Capacity`](crate::wire::Capacity) a refusal names) and nothing above:
//! `server` and `cloud` both use it, so neither reaches into the other for it.

mod counters;
mod peers;
mod proxy;
mod refusals;
mod throttle;

pub use peers::PeerKey;
pub use throttle::Rate;

pub(crate) use counters::{slot, Counters};
pub(crate) use peers::{Admitted, PeerLimits, Peers};
pub(crate) use proxy::{read_header as read_proxy_header, Balancers};
pub(crate) use refusals::{full_message, RefusalLog};
pub(crate) use throttle::{Bucket, LogEvery};
