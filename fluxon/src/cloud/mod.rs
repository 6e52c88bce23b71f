//! Cloud storage (work in progress, issue 6): what is here so far is the part every operation
//! stands on — cloud paths that cannot escape the cloud folder ([`CloudPath`]) and signed grants
//! that allow exactly one operation on one path for one session until they expire ([`Grant`],
//! [`GrantKey`]), the metadata in the database — owners and quotas, file and directory rows, the
//! audit trail ([`MODELS`], [`reserve_write`], [`record_write`], ...) — and who may do what
//! ([`Permission`], [`CloudRole`], [`require`]). The endpoint, the transfers and the connector
//! come next.
//!
//! The metadata functions only touch rows, never the disk: the cloud server calls them in the
//! same transaction as its disk step (see [`atomically`]), so both change together or not at all.

mod access;
mod error;
mod grant;
mod metadata;
mod path;

pub use error::{CloudError, CloudErrorCode};
pub use grant::{CloudOperation, Grant, GrantError, GrantKey};
pub use path::{CloudPath, PathError, MAX_PATH};

pub use access::{
    assign_role, create_role, permissions_of, require, require_async, CloudRole,
    CloudRoleAssignment, Permission,
};
pub use metadata::{
    atomically, create_owner, directory_row, file_row, kind_of, list_directory, owner_of,
    read_metadata, record_audit, record_delete, record_directory, record_write, reserve_write,
    write_metadata, CloudAuditEntry, CloudDirectory, CloudFile, CloudOwner, ReadMetadata, MODELS,
};
