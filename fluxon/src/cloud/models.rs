//! The cloud's tables: owners and their quotas, directory and file rows, the audit trail (and,
//! in [`MODELS`], the uploads in progress and the roles, which live in their own modules).

use super::access::{CloudRole, CloudRoleAssignment};
use crate::db::{ForeignKey, Model, OffsetDateTime, TableSchema};

/// Someone with space in the cloud: the first component of every path in it is their name.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct CloudOwner {
    /// The row's id.
    #[field(primary_key, auto)]
    pub id: i64,
    /// The owner's root directory name: the first component of every path they own.
    #[field(max_length = 255, unique)]
    pub name: String,
    /// The application's user who owns it (holds every permission on the root and below).
    #[field(index)]
    pub user_id: i64,
    /// The most bytes the owner's files may take together.
    pub storage_limit: i64,
    /// The bytes the owner's files take now.
    #[field(default = 0)]
    pub used: i64,
    /// When the owner was created.
    #[field(auto_now_add)]
    pub created: OffsetDateTime,
}

/// A directory, the owner's root (`"jack"`) included.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct CloudDirectory {
    /// The row's id.
    #[field(primary_key, auto)]
    pub id: i64,
    /// Whose cloud it is in.
    #[field(on_delete = cascade)]
    pub owner: ForeignKey<CloudOwner>,
    /// The normalized cloud path (`"jack/docs"`).
    #[field(max_length = 4096, unique)]
    pub path: String,
    /// When it was created.
    #[field(auto_now_add)]
    pub created: OffsetDateTime,
    /// When the row last changed.
    #[field(auto_now)]
    pub updated: OffsetDateTime,
}

/// A file: where it is, how big, and the BLAKE3 of its content.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct CloudFile {
    /// The row's id.
    #[field(primary_key, auto)]
    pub id: i64,
    /// Whose cloud it is in.
    #[field(on_delete = cascade)]
    pub owner: ForeignKey<CloudOwner>,
    /// The normalized cloud path (`"jack/docs/a.txt"`).
    #[field(max_length = 4096, unique)]
    pub path: String,
    /// The last component of the path.
    #[field(max_length = 255)]
    pub name: String,
    /// The size in bytes.
    pub size: i64,
    /// The BLAKE3 of the content, 64 lowercase hex digits.
    #[field(max_length = 64)]
    pub blake3: String,
    /// The content type guessed from the name ([`kind_of`](super::kind_of)).
    #[field(max_length = 100)]
    pub kind: String,
    /// When it was first written.
    #[field(auto_now_add)]
    pub created: OffsetDateTime,
    /// When its content was last replaced.
    #[field(auto_now)]
    pub updated: OffsetDateTime,
}

/// One cloud operation, as it was asked for and how it ended.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct CloudAuditEntry {
    /// The row's id.
    #[field(primary_key, auto)]
    pub id: i64,
    /// When.
    #[field(auto_now_add)]
    pub at: OffsetDateTime,
    /// Who (`None`: not logged in).
    pub user_id: Option<i64>,
    /// The session, as hex of its 16-byte id.
    #[field(max_length = 32)]
    pub session: String,
    /// What (`"upload"`, `"delete"`, ...).
    #[field(max_length = 32)]
    pub operation: String,
    /// On which cloud path.
    #[field(max_length = 4096)]
    pub path: String,
    /// `"ok"`, or the error's text (cut to 512 characters).
    #[field(max_length = 512)]
    pub outcome: String,
    /// Bytes moved or freed.
    pub bytes: i64,
}

/// Every cloud model, referenced tables first: `db.create_tables(&fluxon::cloud::MODELS)`.
pub const MODELS: [TableSchema; 7] = [
    CloudOwner::SCHEMA,
    CloudDirectory::SCHEMA,
    CloudFile::SCHEMA,
    super::uploads::CloudUpload::SCHEMA,
    CloudAuditEntry::SCHEMA,
    CloudRole::SCHEMA,
    CloudRoleAssignment::SCHEMA,
];
