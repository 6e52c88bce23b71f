//! [`Cloud`]: the cloud storage as views see it (through [`Request::cloud`](crate::Request::cloud)):
//! make owners, roles and role assignments, and check a permission before granting.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::access::{self, Permission};
use super::disk::Disk;
use super::error::CloudError;
use super::metadata;
use super::path::CloudPath;
use crate::auth::UserId;
use crate::db::AsyncDatabase;

/// The cloud folder and its metadata database. Cheap to clone.
#[derive(Clone)]
pub struct Cloud {
    inner: Arc<Inner>,
}

struct Inner {
    folder: PathBuf,
    /// The folder as a directory handle: every disk operation goes through it.
    disk: Disk,
    db: AsyncDatabase,
    /// Paths with a write in progress: a second writer of the same path is turned away.
    writing: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cloud")
            .field("folder", &self.inner.folder)
            .finish_non_exhaustive()
    }
}

impl Cloud {
    /// Opens the cloud folder (created if missing) with its metadata in `db` (tables created if
    /// missing).
    ///
    /// # Errors
    /// `Io` when the folder cannot be made or read, `Db` when the tables cannot be made.
    ///
    /// # Cancel safety
    /// Cancel safe: what it made stays made, and opening again finds it.
    pub async fn open(folder: impl AsRef<Path>, db: AsyncDatabase) -> Result<Cloud, CloudError> {
        let folder = folder.as_ref();
        let disk = Disk::open(folder)?;
        let folder = folder.canonicalize()?;
        use crate::db::Executor;
        db.create_tables(&metadata::MODELS).await?;
        Ok(Cloud {
            inner: Arc::new(Inner {
                folder,
                disk,
                db,
                writing: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The cloud folder (canonical).
    pub fn folder(&self) -> &Path {
        &self.inner.folder
    }

    /// The metadata database.
    pub fn database(&self) -> &AsyncDatabase {
        &self.inner.db
    }

    /// The cloud folder as a directory handle.
    pub(crate) fn disk(&self) -> &Disk {
        &self.inner.disk
    }

    /// Makes an owner: a root directory `name` in the cloud folder, belonging to `user`, with
    /// `storage_limit` bytes. The row and the directory are made together or not at all.
    ///
    /// # Errors
    /// [`CloudError::Db`] when the metadata database fails; see above for the refusals.
    ///
    /// # Cancel safety
    /// Cancel safe: the change is one transaction, made whole or not at all.
    pub async fn create_owner(
        &self,
        name: &str,
        user: UserId,
        storage_limit: u64,
    ) -> Result<i64, CloudError> {
        let name = name.to_owned();
        let disk = self.inner.disk.clone();
        self.inner
            .db
            // A directory is made on disk inside: never run twice.
            .transaction_once(move |tx| {
                let id = metadata::create_owner(tx, &name, user, storage_limit)?;
                match disk.create_owner_root(&name) {
                    Ok(()) => Ok(id),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Err(CloudError::AlreadyExists(name))
                    }
                    Err(e) => Err(e.into()),
                }
            })
            .await
    }

    /// Makes a role with these permissions.
    ///
    /// # Errors
    /// [`CloudError::Db`] when the metadata database fails; see above for the refusals.
    ///
    /// # Cancel safety
    /// Cancel safe: the change is one transaction, made whole or not at all.
    pub async fn create_role(
        &self,
        name: &str,
        permissions: Permission,
    ) -> Result<i64, CloudError> {
        let name = name.to_owned();
        self.inner
            .db
            .transaction_with(move |tx| access::create_role(tx, &name, permissions))
            .await
    }

    /// Gives `to` the role `role` on `path` and everything under it; `by` must hold
    /// [`Permission::ASSIGN_ROLES`] there (an owner holds every permission in their root).
    ///
    /// # Errors
    /// [`CloudError::Db`] when the metadata database fails; see above for the refusals.
    ///
    /// # Cancel safety
    /// Cancel safe: the change is one transaction, made whole or not at all.
    pub async fn assign_role(
        &self,
        by: UserId,
        to: UserId,
        role: &str,
        path: &str,
    ) -> Result<(), CloudError> {
        let path = CloudPath::parse(path)?;
        let role = role.to_owned();
        self.inner
            .db
            .transaction_with(move |tx| access::assign_role(tx, by, to, &role, &path))
            .await
    }

    /// The permissions `user` holds on `path` (own root: all; else the roles assigned on it or
    /// above it).
    ///
    /// # Errors
    /// `Path` for a path that does not parse, `Db` when the lookup fails.
    ///
    /// # Cancel safety
    /// Cancel safe: a read.
    pub async fn permissions(
        &self,
        user: Option<UserId>,
        path: &str,
    ) -> Result<Permission, CloudError> {
        let path = CloudPath::parse(path)?;
        metadata::read_metadata(&self.inner.db, move |conn| {
            access::permissions_of(conn, user, &path)
        })
        .await
    }

    /// `Ok` if `user` holds every permission in `needed` on `path`, else
    /// [`CloudError::Forbidden`]: what a view calls before granting.
    ///
    /// # Errors
    /// `Path` for a path that does not parse, `Db` when the lookup fails.
    ///
    /// # Cancel safety
    /// Cancel safe: a read.
    pub async fn require(
        &self,
        user: Option<UserId>,
        path: &str,
        needed: Permission,
    ) -> Result<(), CloudError> {
        let path = CloudPath::parse(path)?;
        self.require_path(user, path, needed).await
    }

    pub(crate) async fn require_path(
        &self,
        user: Option<UserId>,
        path: CloudPath,
        needed: Permission,
    ) -> Result<(), CloudError> {
        access::require_async(&self.inner.db, user, &path, needed).await
    }

    /// Marks `path` as being written; `None` if a write of it is already in progress. The mark
    /// goes when the guard is dropped.
    pub(crate) fn start_writing(&self, path: &CloudPath) -> Option<WritingGuard> {
        let mut writing = self
            .inner
            .writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        writing
            .insert(path.as_str().to_owned())
            .then(|| WritingGuard {
                cloud: self.clone(),
                path: path.as_str().to_owned(),
            })
    }
}

/// A write in progress (see [`Cloud::start_writing`]).
pub(crate) struct WritingGuard {
    cloud: Cloud,
    path: String,
}

impl Drop for WritingGuard {
    fn drop(&mut self) {
        self.cloud
            .inner
            .writing
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.path);
    }
}
