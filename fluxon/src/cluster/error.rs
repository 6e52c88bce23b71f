//! [`ClusterError`]: what can go wrong between a node and the cluster's Redis.

/// A cluster operation that failed. Local calls never fail with it: only what needs the other
/// nodes (resuming a session made elsewhere, reaching a user on another node) does.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The configuration cannot work (a bad URL, prefix, heartbeat or timeout).
    #[error("invalid cluster configuration: {0}")]
    Invalid(String),
    /// Redis cannot be reached, or did not answer in time.
    #[error("the cluster's Redis is unreachable: {0}")]
    Unreachable(String),
    /// Redis answered with an error, or with something this node cannot read.
    #[error("the cluster's Redis answered with an error: {0}")]
    Redis(String),
}

impl From<redis::ParsingError> for ClusterError {
    fn from(err: redis::ParsingError) -> Self {
        ClusterError::Redis(err.to_string())
    }
}

impl From<redis::RedisError> for ClusterError {
    fn from(err: redis::RedisError) -> Self {
        if err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_unrecoverable_error()
        {
            ClusterError::Unreachable(err.to_string())
        } else {
            ClusterError::Redis(err.to_string())
        }
    }
}
