//! Requests refused before they were authorized: a grant that does not verify (forged, expired,
//! revoked, for another operation or path), a session token that is not this server's or not
//! the grant's session, a path that does not parse. Such a request costs the database nothing:
//! it is counted ([`ServerStats::cloud_grants_refused`](crate::ServerStats::cloud_grants_refused))
//! and logged at most once a second with how many were refused meanwhile, so a flood of forged
//! requests can fill neither the audit log nor the log files.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::CloudError;
use super::grant::CloudOperation;

/// The log of refused requests, rate-limited.
pub(crate) struct Unauthorized {
    limiter: governor::DefaultDirectRateLimiter,
    skipped: AtomicU64,
}

impl Unauthorized {
    pub fn new() -> Self {
        Unauthorized {
            limiter: governor::DefaultDirectRateLimiter::direct(governor::Quota::per_second(
                NonZeroU32::MIN,
            )),
            skipped: AtomicU64::new(0),
        }
    }

    /// Notes one refused request.
    pub fn note(&self, peer: SocketAddr, operation: CloudOperation, error: &CloudError) {
        if self.limiter.check().is_ok() {
            let also = self.skipped.swap(0, Ordering::Relaxed);
            tracing::warn!(%peer, ?operation, %error, also_refused = also, "cloud request refused before authorization");
        } else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
