//! Cloud storage: a second listener for bulk data ([`CloudStorageServer`]), where every
//! operation is authorized by a grant a view made ([`Request::grant_access`](crate::Request::grant_access)),
//! and its client ([`CloudStorageConnector`]).
//!
//! * Paths ([`CloudPath`]) are normalized and confined to the cloud folder: no `..`, absolute
//!   paths, NUL bytes, backslashes. On disk every operation goes through a directory handle of
//!   the owner's root, resolved by the kernel one component at a time: no symlink leads out of
//!   it, and there is no window between a check and an open.
//! * Grants ([`Grant`]) are keyed-BLAKE3 capabilities for one operation on one path, for one
//!   session, until they expire; a logout revokes them.
//! * Operations: create a directory, write a file (streamed into a hidden partial file, hashed,
//!   compared with the declared BLAKE3, fsynced, renamed into place; resumable), read a file
//!   (streamed, from an offset), delete an item, read a tree (in pages), stat. Memory stays
//!   constant whatever the file size, and bounded whatever the tree.
//! * Metadata ([`MODELS`]): owners with storage limits, directories, files, uploads in
//!   progress, an audit log of what was authorized; changed in the same transaction as the disk
//!   step, so both change together or not at all. The quota (counting uploads in progress) and
//!   the owner's item limit are checked before any byte is taken.
//! * Abuse: every resource a peer can make the endpoint spend is bounded
//!   ([`CloudStorageServer`] lists them): connections per peer address and in their handshake,
//!   a minimum transfer rate, tree pages, walks of the disk in entries and time. A request whose
//!   grant does not verify is counted and logged at a bounded rate, never written anywhere.
//! * Access ([`Permission`], [`CloudRole`]): owners hold everything in their root; others hold
//!   what the roles assigned to them on an item or above it give. The endpoint checks the
//!   permission for every operation, and views check it before granting with
//!   [`Request::require_cloud_permission`](crate::Request::require_cloud_permission).
//!
//! The bytes on the wire are described in [`protocol`].

mod access;
pub(crate) mod blocking;
mod connector;
mod content_type;
mod disk;
mod download;
mod error;
mod floor;
mod grant;
mod handle;
mod listener;
mod metadata;
mod models;
mod ops;
mod path;
pub mod protocol;
mod server;
mod stream;
mod sweep;
mod tree;
mod unauthorized;
mod upload;
mod uploads;
mod walk;

pub use connector::{CloudStorageConnector, ConnectorError, Progress};
pub use handle::Cloud;
pub use server::CloudStorageServer;
pub(crate) use server::{Serving, StartError};
pub use tree::{ItemKind, Stat, TreeNode};

pub use error::{CloudError, CloudErrorCode};
pub(crate) use grant::check as check_grant;
pub use grant::{CloudOperation, Grant, GrantError, GrantKey};
pub use path::{CloudPath, PathError, MAX_PATH};

pub use access::{
    assign_role, create_role, permissions_of, require, require_async, CloudRole,
    CloudRoleAssignment, Permission,
};
pub use content_type::kind_of;
pub use metadata::{
    create_owner, directory_row, file_row, list_directory, owner_of, read_metadata, record_audit,
    record_delete, record_directory, record_write, reserve_write, ReadMetadata,
};
pub use models::{CloudAuditEntry, CloudDirectory, CloudFile, CloudOwner, MODELS};
pub use uploads::CloudUpload;
