//! Why a cloud operation failed: [`CloudError`] on the server, and [`CloudErrorCode`], the part of
//! it that travels to the connector.

use serde::{Deserialize, Serialize};

use super::grant::GrantError;
use super::path::PathError;
use crate::db::DbError;

/// What went wrong, as the connector sees it. New codes are added at the end (the wire carries
/// the variant's index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CloudErrorCode {
    /// The grant was refused (forged, expired, revoked, for something else).
    BadGrant,
    /// The path was refused (`..`, absolute, NUL, backslash, a symlink out of the cloud folder).
    BadPath,
    /// The user lacks the permission for this item.
    Forbidden,
    /// No such file or directory (or no such owner).
    NotFound,
    /// Something is already there (a directory where a file should go, and the like).
    AlreadyExists,
    /// The write would exceed the owner's storage limit, or the grant's size limit.
    OverQuota,
    /// The bytes received do not hash to the declared BLAKE3.
    HashMismatch,
    /// The request was malformed or broke the protocol.
    BadRequest,
    /// Another write of the same path is in progress.
    Busy,
    /// The server failed (disk, database); nothing was changed.
    Internal,
    /// The server is shutting down.
    ShuttingDown,
    /// The endpoint is at a connection limit (in all, for the peer's address, or for
    /// connections in their handshake); try again later.
    ServerFull,
    /// The transfer moved slower than the endpoint's minimum rate and was cut (an upload stays
    /// resumable).
    TooSlow,
    /// The owner has as many items (directories, files and uploads in progress) as allowed.
    TooManyItems,
    /// A tree or a directory is too large for one answer, or its walk ran out of time.
    TreeTooLarge,
}

/// A failed cloud operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CloudError {
    /// The grant was refused.
    #[error("grant refused: {0}")]
    Grant(#[from] GrantError),
    /// The path was refused.
    #[error("path refused: {0}")]
    Path(#[from] PathError),
    /// The user lacks a permission on an item.
    #[error("permission {permission} denied on `{path}`")]
    Forbidden {
        /// The permission needed.
        permission: String,
        /// The item.
        path: String,
    },
    /// No owner has this name.
    #[error("no cloud owner named `{0}`")]
    NoSuchOwner(String),
    /// No such item.
    #[error("`{0}` does not exist")]
    NotFound(String),
    /// Something is already at the path, or of the wrong kind.
    #[error("`{0}` already exists or is of the wrong kind")]
    AlreadyExists(String),
    /// Over the owner's storage limit.
    #[error("over quota: {needed} bytes needed, {available} available")]
    OverQuota {
        /// Bytes the operation needs.
        needed: u64,
        /// Bytes left under the limit.
        available: u64,
    },
    /// Over the grant's size limit.
    #[error("the upload is {size} bytes; the grant allows {limit}")]
    TooLarge {
        /// Declared size.
        size: u64,
        /// The grant's limit.
        limit: u64,
    },
    /// The received bytes hash to something other than declared.
    #[error("hash mismatch: declared {declared}, received {received}")]
    HashMismatch {
        /// What the client declared (hex).
        declared: String,
        /// What arrived (hex).
        received: String,
    },
    /// Another write of the same path is in progress.
    #[error("`{0}` is being written by another upload")]
    Busy(String),
    /// The server has no cloud storage configured.
    #[error("this server has no cloud storage (AsyncServer::cloud_storage)")]
    NoCloud,
    /// The peer broke the protocol.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The metadata database failed.
    #[error("metadata database: {0}")]
    Db(#[from] DbError),
    /// The disk failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server is shutting down.
    #[error("the cloud server is shutting down")]
    ShuttingDown,
    /// A transfer moved slower than the minimum rate.
    #[error("too slow: {moved} bytes in the last {window:?}, under the minimum of {bytes_per_sec} bytes a second")]
    TooSlow {
        /// Bytes moved in the last window.
        moved: u64,
        /// The window the rate is averaged over.
        window: std::time::Duration,
        /// The minimum rate.
        bytes_per_sec: u64,
    },
    /// The owner holds as many items as allowed.
    #[error("`{owner}` holds {limit} items (directories, files and uploads in progress), the most allowed")]
    TooManyItems {
        /// The owner.
        owner: String,
        /// The limit.
        limit: u64,
    },
    /// A walk of a tree went over its bound.
    #[error("`{path}` is too large to walk: {reason}")]
    TreeTooLarge {
        /// Where the walk started.
        path: String,
        /// Which bound it met.
        reason: String,
    },
}

impl From<super::floor::TooSlow> for CloudError {
    fn from(slow: super::floor::TooSlow) -> Self {
        CloudError::TooSlow {
            moved: slow.moved,
            window: slow.window,
            bytes_per_sec: slow.bytes_per_sec,
        }
    }
}

impl CloudError {
    /// The code the connector receives.
    pub fn code(&self) -> CloudErrorCode {
        match self {
            CloudError::Grant(_) => CloudErrorCode::BadGrant,
            CloudError::Path(_) => CloudErrorCode::BadPath,
            CloudError::Forbidden { .. } => CloudErrorCode::Forbidden,
            CloudError::NoSuchOwner(_) | CloudError::NotFound(_) => CloudErrorCode::NotFound,
            CloudError::AlreadyExists(_) => CloudErrorCode::AlreadyExists,
            CloudError::OverQuota { .. } | CloudError::TooLarge { .. } => CloudErrorCode::OverQuota,
            CloudError::HashMismatch { .. } => CloudErrorCode::HashMismatch,
            CloudError::BadRequest(_) => CloudErrorCode::BadRequest,
            CloudError::Busy(_) => CloudErrorCode::Busy,
            CloudError::NoCloud => CloudErrorCode::Internal,
            CloudError::Db(_) | CloudError::Io(_) => CloudErrorCode::Internal,
            CloudError::ShuttingDown => CloudErrorCode::ShuttingDown,
            CloudError::TooSlow { .. } => CloudErrorCode::TooSlow,
            CloudError::TooManyItems { .. } => CloudErrorCode::TooManyItems,
            CloudError::TreeTooLarge { .. } => CloudErrorCode::TreeTooLarge,
        }
    }
}
