//! The cloud's metadata in the database: owners and their quotas, directory and file rows, the
//! audit trail — and the checks every change goes through (the parent exists, nothing is in the
//! way, the owner stays under the storage limit).
//!
//! Only rows: this module never touches the disk. The cloud server runs these functions in the
//! same transaction as its disk step, so the rows and the files change together or not at all:
//!
//! ```
//! use fluxon::cloud::{self, CloudPath};
//! use fluxon::db::{Database, Executor};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let db = Database::open(dir.path().join("cloud.sqlite3"))?;
//! db.create_tables(&cloud::MODELS)?;
//! let path = CloudPath::parse("jack/notes.txt")?;
//! // Any `Err` rolls the whole transaction back.
//! db.transaction_with(|tx| {
//!     cloud::create_owner(tx, "jack", 7, 1_000)?;
//!     cloud::reserve_write(tx, &path, 12)?;
//!     // ... the server receives the 12 bytes and moves them into place here ...
//!     cloud::record_write(tx, &path, 12, &blake3::hash(b"hello, world").to_hex())
//! })?;
//! let used = db.transaction(|tx| Ok(cloud::owner_of(tx, &path)))??.used;
//! assert_eq!(used, 12);
//! # Ok(()) }
//! ```
//!
//! Uploads in progress ([`CloudUpload`](super::CloudUpload)) count against the quota as if they
//! were written, and every owner's directories, files and uploads in progress count against the
//! endpoint's item limit.
//!
//! Every function that writes runs inside a savepoint: when it returns `Err`, its own writes are
//! undone, so even a caller that commits the surrounding transaction after a refusal keeps no
//! half-made change.
//!
//! What it does not own: who may do what (`access` holds roles and permissions),
//! and the files themselves (the cloud server).

use super::access::{self, Permission};
use super::error::CloudError;
use super::path::{CloudPath, PathError};
pub(super) use crate::db::On;
use crate::db::{AsyncDatabase, Conn, Executor, OffsetDateTime, Row, Transaction};

pub use super::models::{CloudAuditEntry, CloudDirectory, CloudFile, CloudOwner, MODELS};

/// Where the read functions run: inside a write [`Transaction`], or on a reader connection
/// ([`read_metadata`] gives a [`Conn`]).
pub trait ReadMetadata {
    /// Runs `body` on the underlying connection.
    fn on_connection<T>(
        &self,
        body: impl FnOnce(Conn<'_>) -> Result<T, CloudError>,
    ) -> Result<T, CloudError>;
}

impl ReadMetadata for Transaction<'_> {
    fn on_connection<T>(
        &self,
        body: impl FnOnce(Conn<'_>) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        body(self.conn())
    }
}

impl ReadMetadata for Conn<'_> {
    fn on_connection<T>(
        &self,
        body: impl FnOnce(Conn<'_>) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        body(*self)
    }
}

/// Runs `body` in a savepoint: if it returns `Err`, every write it made is undone and the
/// surrounding transaction stays usable (and may be committed). Savepoints nest.
pub(crate) fn atomically<T>(
    tx: &Transaction<'_>,
    body: impl FnOnce(&Transaction<'_>) -> Result<T, CloudError>,
) -> Result<T, CloudError> {
    tx.on_connection(|conn| savepoint(conn, || body(tx)))
}

fn savepoint<T>(
    conn: Conn<'_>,
    body: impl FnOnce() -> Result<T, CloudError>,
) -> Result<T, CloudError> {
    crate::db::savepoint(&conn, "fluxon_cloud", body)
}

/// A write of this module: in a savepoint, on the transaction's connection.
fn write<T>(
    tx: &Transaction<'_>,
    body: impl FnOnce(&On<'_>) -> Result<T, CloudError>,
) -> Result<T, CloudError> {
    tx.on_connection(|conn| savepoint(conn, || body(&On(conn))))
}

/// Runs `body` on a reader connection (for [`owner_of`], [`file_row`],
/// [`permissions_of`](super::permissions_of) and the like), off the writer thread.
///
/// # Errors
/// `body`'s error, or [`CloudError::Db`] when no reader connection can be had.
///
/// # Cancel safety
/// Cancel safe: a read.
pub async fn read_metadata<T, F>(db: &AsyncDatabase, body: F) -> Result<T, CloudError>
where
    F: FnOnce(&Conn<'_>) -> Result<T, CloudError> + Send + 'static,
    T: Send + 'static,
{
    db.read_on(move |conn| Ok(body(conn))).await?
}

/// At most `max` characters of `text`, cut on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

pub(super) fn owner_named(db: &On<'_>, name: &str) -> Result<CloudOwner, CloudError> {
    db.check(CloudOwner::name.eq(name))
        .first()?
        .map(Row::into_fields)
        .ok_or_else(|| CloudError::NoSuchOwner(name.to_owned()))
}

pub(super) fn directory_at(db: &On<'_>, path: &CloudPath) -> Result<bool, CloudError> {
    Ok(db.check(CloudDirectory::path.eq(path.as_str())).exists()?)
}

pub(super) fn file_at(db: &On<'_>, path: &CloudPath) -> Result<Option<CloudFile>, CloudError> {
    let file = db.check(CloudFile::path.eq(path.as_str())).first()?;
    Ok(file.map(Row::into_fields))
}

/// The half-open range of paths strictly under `path`: `[path + "/", path + "0")` (`'0'` is the
/// byte after `'/'`), compared bytewise as SQLite compares text. Unlike LIKE, no character of a
/// name is special, and the unique index on `path` serves it.
pub(super) fn under(path: &CloudPath) -> (String, String) {
    (format!("{path}/"), format!("{path}0"))
}

/// Sets the owner's `used` to `used + delta`.
fn add_used(db: &On<'_>, owner: &CloudOwner, delta: i64) -> Result<(), CloudError> {
    if delta != 0 {
        db.update(
            vec![CloudOwner::used.set(owner.used.saturating_add(delta))],
            CloudOwner::id.eq(owner.id),
        )?;
    }
    Ok(())
}

/// Creates an owner named `name` (a single path component: their root directory) for the
/// application's user `user_id`, with `storage_limit` bytes of space (a limit past `i64::MAX` is
/// taken as `i64::MAX`), and the row of their root directory. Returns the owner's id.
///
/// Fails with [`CloudError::Path`] for a name that is not one valid component, and
/// [`CloudError::AlreadyExists`] when the name is taken.
pub fn create_owner(
    tx: &Transaction<'_>,
    name: &str,
    user_id: i64,
    storage_limit: u64,
) -> Result<i64, CloudError> {
    if name.contains('/') || name.chars().count() > 255 {
        return Err(PathError::InvalidComponent(name.to_owned()).into());
    }
    let root = CloudPath::parse(name)?;
    let limit = i64::try_from(storage_limit).unwrap_or(i64::MAX);
    write(tx, |db| {
        if db.check(CloudOwner::name.eq(root.as_str())).exists()? {
            return Err(CloudError::AlreadyExists(root.to_string()));
        }
        let id = db.insert_values(vec![
            CloudOwner::name.set(root.as_str()),
            CloudOwner::user_id.set(user_id),
            CloudOwner::storage_limit.set(limit),
        ])?;
        db.insert_values(vec![
            CloudDirectory::owner.set(id),
            CloudDirectory::path.set(root.as_str()),
        ])?;
        Ok(id)
    })
}

/// The owner whose root `path` is in ([`CloudError::NoSuchOwner`] if there is none).
pub fn owner_of(src: &impl ReadMetadata, path: &CloudPath) -> Result<CloudOwner, CloudError> {
    src.on_connection(|conn| owner_named(&On(conn), path.owner()))
}

/// The file row at `path`, if there is a file there (a directory gives `None`).
pub fn file_row(
    src: &impl ReadMetadata,
    path: &CloudPath,
) -> Result<Option<CloudFile>, CloudError> {
    src.on_connection(|conn| file_at(&On(conn), path))
}

/// The directory row at `path`, if there is a directory there.
pub fn directory_row(
    src: &impl ReadMetadata,
    path: &CloudPath,
) -> Result<Option<CloudDirectory>, CloudError> {
    src.on_connection(|conn| {
        let directory = On(conn)
            .check(CloudDirectory::path.eq(path.as_str()))
            .first()?;
        Ok(directory.map(Row::into_fields))
    })
}

/// What a directory holds directly: its subdirectories and its files, each sorted by path.
/// [`CloudError::NotFound`] if no directory is at `path`.
///
/// Reads the rows of the whole subtree and keeps the direct children: cheap for the trees a
/// person keeps, not meant for millions of entries under one directory.
pub fn list_directory(
    src: &impl ReadMetadata,
    path: &CloudPath,
) -> Result<(Vec<CloudDirectory>, Vec<CloudFile>), CloudError> {
    src.on_connection(|conn| {
        let db = On(conn);
        if !directory_at(&db, path)? {
            return Err(CloudError::NotFound(path.to_string()));
        }
        let (from, to) = under(path);
        let direct = |child: &str| {
            child
                .strip_prefix(from.as_str())
                .is_some_and(|rest| !rest.contains('/'))
        };
        let directories = db
            .check(CloudDirectory::path.ge(from.as_str()) & CloudDirectory::path.lt(to.as_str()))
            .order_by(CloudDirectory::path.asc())
            .all()?
            .into_iter()
            .filter(|d| direct(&d.path))
            .map(Row::into_fields)
            .collect();
        let files = db
            .check(CloudFile::path.ge(from.as_str()) & CloudFile::path.lt(to.as_str()))
            .order_by(CloudFile::path.asc())
            .all()?
            .into_iter()
            .filter(|f| direct(&f.path))
            .map(Row::into_fields)
            .collect();
        Ok((directories, files))
    })
}

/// The checks before a write to `path`: the owner, nothing of the wrong kind there, the parent
/// directory, the quota (the other paths' uploads in progress counted as used). Gives the owner
/// and the file being replaced, if any.
pub(super) fn check_write(
    db: &On<'_>,
    path: &CloudPath,
    size: u64,
) -> Result<(CloudOwner, Option<CloudFile>), CloudError> {
    let owner = owner_named(db, path.owner())?;
    if directory_at(db, path)? {
        return Err(CloudError::AlreadyExists(path.to_string()));
    }
    // Only an owner's root has no parent, and the root is a directory (refused above).
    let parent = path
        .parent()
        .ok_or_else(|| CloudError::AlreadyExists(path.to_string()))?;
    if !directory_at(db, &parent)? {
        return Err(CloudError::NotFound(parent.to_string()));
    }
    let existing = file_at(db, path)?;
    let replaced = existing.as_ref().map_or(0, |f| f.size);
    let reserved = super::uploads::reserved_except(db, owner.id, path)?;
    // i128: no sum or difference of these can overflow it, whatever the rows hold.
    let available =
        (i128::from(owner.storage_limit) - i128::from(owner.used) - i128::from(reserved)
            + i128::from(replaced))
        .max(0);
    if i128::from(size) > available {
        return Err(CloudError::OverQuota {
            needed: size,
            available: u64::try_from(available).unwrap_or(u64::MAX),
        });
    }
    Ok((owner, existing))
}

/// The items `owner` holds: directories (its root included), files and uploads in progress.
pub(super) fn item_count(db: &On<'_>, owner: &CloudOwner) -> Result<i64, CloudError> {
    let directories = db.check(CloudDirectory::owner.eq(owner.id)).count()?;
    let files = db.check(CloudFile::owner.eq(owner.id)).count()?;
    let uploads = super::uploads::count_of(db, owner.id)?;
    Ok(directories + files + uploads)
}

/// `Ok` if `owner` may hold one item more under a limit of `max_items`, else
/// [`CloudError::TooManyItems`].
pub(super) fn check_room(
    db: &On<'_>,
    owner: &CloudOwner,
    max_items: u64,
) -> Result<(), CloudError> {
    let held = u64::try_from(item_count(db, owner)?).unwrap_or(0);
    if held >= max_items {
        return Err(CloudError::TooManyItems {
            owner: owner.name.clone(),
            limit: max_items,
        });
    }
    Ok(())
}

/// [`check_room`] for the owner of `path`: what the endpoint checks before it makes a directory.
pub(crate) fn check_item_limit(
    tx: &Transaction<'_>,
    path: &CloudPath,
    max_items: u64,
) -> Result<(), CloudError> {
    tx.on_connection(|conn| {
        let db = On(conn);
        let owner = owner_named(&db, path.owner())?;
        check_room(&db, &owner, max_items)
    })
}

/// The checks before any byte of a write of `size` bytes to `path` is accepted:
///
/// * the owner exists ([`CloudError::NoSuchOwner`]);
/// * no directory is at `path` ([`CloudError::AlreadyExists`]);
/// * the parent directory exists ([`CloudError::NotFound`] with the parent's path);
/// * `used + reserved - (size of the file being replaced, if any) + size <= storage_limit`,
///   where `reserved` is the declared sizes of the owner's uploads in progress to other paths,
///   else [`CloudError::OverQuota`] with `needed = size` and `available = storage_limit - used -
///   reserved + the replaced size`.
///
/// Writes nothing; [`record_write`] checks again when the bytes are in.
pub fn reserve_write(tx: &Transaction<'_>, path: &CloudPath, size: u64) -> Result<(), CloudError> {
    tx.on_connection(|conn| check_write(&On(conn), path, size).map(|_| ()))
}

/// Records that `size` bytes hashing to `blake3_hex` are now the file at `path`: runs the checks
/// of [`reserve_write`] again, inserts the file row or updates the replaced one (size, hash,
/// `updated`), moves the owner's `used` by the difference, and forgets the upload in progress of
/// `path`, if any (its reservation becomes the file).
///
/// [`CloudError::BadRequest`] if `blake3_hex` is not 64 hex digits, [`CloudError::Path`] if the
/// file's name is longer than 255 characters.
pub fn record_write(
    tx: &Transaction<'_>,
    path: &CloudPath,
    size: u64,
    blake3_hex: &str,
) -> Result<(), CloudError> {
    if blake3_hex.len() != 64 || !blake3_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CloudError::BadRequest(format!(
            "`{}` is not a BLAKE3 hash in hex",
            truncate(blake3_hex, 80)
        )));
    }
    let hash = blake3_hex.to_ascii_lowercase();
    let name = path.as_str().rsplit('/').next().unwrap_or(path.as_str());
    if name.chars().count() > 255 {
        return Err(PathError::InvalidComponent(name.to_owned()).into());
    }
    let size_column = i64::try_from(size).map_err(|_| CloudError::OverQuota {
        needed: size,
        available: 0,
    })?;
    write(tx, |db| {
        let (owner, existing) = check_write(db, path, size)?;
        let replaced = match existing {
            Some(file) => {
                db.update(
                    vec![
                        CloudFile::size.set(size_column),
                        CloudFile::blake3.set(hash.as_str()),
                    ],
                    CloudFile::id.eq(file.id),
                )?;
                file.size
            }
            None => {
                db.insert_values(vec![
                    CloudFile::owner.set(owner.id),
                    CloudFile::path.set(path.as_str()),
                    CloudFile::name.set(name),
                    CloudFile::size.set(size_column),
                    CloudFile::blake3.set(hash.as_str()),
                    CloudFile::kind.set(super::content_type::kind_of(name)),
                ])?;
                0
            }
        };
        super::uploads::forget(db, path)?;
        add_used(db, &owner, size_column - replaced)
    })
}

/// Records a new directory at `path`: its parent directory must exist ([`CloudError::NotFound`])
/// and nothing, file or directory, may be at `path` ([`CloudError::AlreadyExists`]).
pub fn record_directory(tx: &Transaction<'_>, path: &CloudPath) -> Result<(), CloudError> {
    write(tx, |db| {
        let owner = owner_named(db, path.owner())?;
        if directory_at(db, path)? || file_at(db, path)?.is_some() {
            return Err(CloudError::AlreadyExists(path.to_string()));
        }
        let parent = path
            .parent()
            .ok_or_else(|| CloudError::AlreadyExists(path.to_string()))?;
        if !directory_at(db, &parent)? {
            return Err(CloudError::NotFound(parent.to_string()));
        }
        db.insert_values(vec![
            CloudDirectory::owner.set(owner.id),
            CloudDirectory::path.set(path.as_str()),
        ])?;
        Ok(())
    })
}

/// Forgets the file at `path`, or the directory at `path` with every directory, file and upload in
/// progress under it, and the roles assigned on what was deleted (a new item at the same path
/// starts without them).
/// Gives the owner's `used` back the freed bytes and returns how many.
///
/// [`CloudError::NotFound`] if nothing is at `path`; [`CloudError::Forbidden`] (for
/// `DELETE_SUB_DIRECTORY`) for an owner's root directory, which only goes with its owner.
pub fn record_delete(tx: &Transaction<'_>, path: &CloudPath) -> Result<u64, CloudError> {
    write(tx, |db| {
        let owner = owner_named(db, path.owner())?;
        if path.parent().is_none() {
            return Err(CloudError::Forbidden {
                permission: Permission::DELETE_SUB_DIRECTORY.to_string(),
                path: path.to_string(),
            });
        }
        let freed = if let Some(file) = file_at(db, path)? {
            db.delete(CloudFile::id.eq(file.id))?;
            file.size
        } else if directory_at(db, path)? {
            let (from, to) = under(path);
            let inside_files = CloudFile::path.ge(from.as_str()) & CloudFile::path.lt(to.as_str());
            let freed: i64 = db
                .check(inside_files)
                .columns((CloudFile::size,))?
                .into_iter()
                .map(|(size,)| size)
                .sum();
            db.delete(CloudFile::path.ge(from.as_str()) & CloudFile::path.lt(to.as_str()))?;
            db.delete(
                CloudDirectory::path.eq(path.as_str())
                    | (CloudDirectory::path.ge(from.as_str())
                        & CloudDirectory::path.lt(to.as_str())),
            )?;
            super::uploads::forget_under(db, path)?;
            freed
        } else {
            return Err(CloudError::NotFound(path.to_string()));
        };
        access::forget_assignments(db, path)?;
        add_used(db, &owner, -freed)?;
        Ok(u64::try_from(freed).unwrap_or(0))
    })
}

/// Adds a line to the audit trail. Texts longer than their columns are cut (on a character
/// boundary: `session` and `operation` to 32 characters, `path` to 4096, `outcome` to 512), so
/// auditing never fails on what it is told.
pub fn record_audit(
    tx: &Transaction<'_>,
    user_id: Option<i64>,
    session_hex: &str,
    operation: &str,
    path: &str,
    outcome: &str,
    bytes: u64,
) -> Result<(), CloudError> {
    tx.insert_values(vec![
        CloudAuditEntry::user_id.set(user_id),
        CloudAuditEntry::session.set(truncate(session_hex, 32)),
        CloudAuditEntry::operation.set(truncate(operation, 32)),
        CloudAuditEntry::path.set(truncate(path, 4096)),
        CloudAuditEntry::outcome.set(truncate(outcome, 512)),
        CloudAuditEntry::bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX)),
    ])?;
    Ok(())
}

/// Removes up to `batch` audit lines written before `before`, oldest first; how many went. The
/// sweeper calls it until it returns less than `batch`, one transaction per batch, so pruning a
/// long log never holds the writer for long.
pub(crate) fn forget_audit_before(
    tx: &Transaction<'_>,
    before: OffsetDateTime,
    batch: i64,
) -> Result<usize, CloudError> {
    let ids = tx
        .check(CloudAuditEntry::at.lt(before))
        .order_by(CloudAuditEntry::id.asc())
        .limit(batch)
        .columns((CloudAuditEntry::id,))?;
    let Some(&(last,)) = ids.last() else {
        return Ok(0);
    };
    Ok(tx.delete(CloudAuditEntry::id.le(last) & CloudAuditEntry::at.lt(before))?)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::db::Database;

    pub(crate) fn database() -> (Database, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("cloud.sqlite3")).unwrap();
        db.create_tables(&MODELS).unwrap();
        (db, dir)
    }

    /// One transaction, committed whatever `body` returns (its own writes are undone on `Err`).
    pub(crate) fn run<T>(
        db: &Database,
        body: impl FnOnce(&Transaction<'_>) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let mut body = Some(body);
        db.transaction(|tx| {
            Ok(match body.take() {
                Some(body) => atomically(tx, body),
                None => Err(CloudError::Db(crate::db::DbError::Conflict(
                    "ran twice".to_owned(),
                ))),
            })
        })
        .unwrap()
    }

    pub(crate) fn path(raw: &str) -> CloudPath {
        CloudPath::parse(raw).unwrap()
    }

    const HASH: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    fn used(db: &Database, owner: &str) -> i64 {
        run(db, |tx| owner_of(tx, &path(owner))).unwrap().used
    }

    #[test]
    fn owners_are_created_once_with_their_root() {
        let (db, _dir) = database();
        let id = run(&db, |tx| create_owner(tx, "jack", 7, 1000)).unwrap();
        let owner = run(&db, |tx| owner_of(tx, &path("jack/docs/a.txt"))).unwrap();
        assert_eq!(owner.id, id);
        assert_eq!(owner.name, "jack");
        assert_eq!(owner.user_id, 7);
        assert_eq!(owner.storage_limit, 1000);
        assert_eq!(owner.used, 0);
        let root = run(&db, |tx| directory_row(tx, &path("jack")))
            .unwrap()
            .unwrap();
        assert_eq!(*root.owner.key(), id);

        let again = run(&db, |tx| create_owner(tx, "jack", 8, 5)).unwrap_err();
        assert!(
            matches!(&again, CloudError::AlreadyExists(name) if name == "jack"),
            "{again}"
        );
        assert_eq!(db.check(CloudOwner::user_id.eq(8)).count().unwrap(), 0);
        for bad in ["a/b", "", "..", ".fluxon-x"] {
            let err = run(&db, |tx| create_owner(tx, bad, 1, 1)).unwrap_err();
            assert!(matches!(err, CloudError::Path(_)), "{bad:?}: {err}");
        }
        let err = run(&db, |tx| owner_of(tx, &path("jill/x"))).unwrap_err();
        assert!(
            matches!(&err, CloudError::NoSuchOwner(name) if name == "jill"),
            "{err}"
        );
    }

    #[test]
    fn quota_fits_exactly_refuses_one_byte_more_and_counts_the_replaced_file() {
        let (db, _dir) = database();
        run(&db, |tx| create_owner(tx, "jack", 7, 100)).unwrap();
        run(&db, |tx| reserve_write(tx, &path("jack/a"), 100)).unwrap();
        let err = run(&db, |tx| reserve_write(tx, &path("jack/a"), 101)).unwrap_err();
        assert!(
            matches!(
                err,
                CloudError::OverQuota {
                    needed: 101,
                    available: 100
                }
            ),
            "{err}"
        );

        run(&db, |tx| record_write(tx, &path("jack/a"), 60, HASH)).unwrap();
        assert_eq!(used(&db, "jack"), 60);
        let err = run(&db, |tx| reserve_write(tx, &path("jack/b"), 41)).unwrap_err();
        assert!(
            matches!(
                err,
                CloudError::OverQuota {
                    needed: 41,
                    available: 40
                }
            ),
            "{err}"
        );
        // Replacing the 60-byte file frees its 60 bytes first: 100 fits again.
        run(&db, |tx| reserve_write(tx, &path("jack/a"), 100)).unwrap();
        let err = run(&db, |tx| record_write(tx, &path("jack/a"), 101, HASH)).unwrap_err();
        assert!(
            matches!(
                err,
                CloudError::OverQuota {
                    needed: 101,
                    available: 100
                }
            ),
            "{err}"
        );
        assert_eq!(used(&db, "jack"), 60);
        run(&db, |tx| {
            record_write(tx, &path("jack/a"), 100, &HASH.to_uppercase())
        })
        .unwrap();
        assert_eq!(used(&db, "jack"), 100);
        let file = run(&db, |tx| file_row(tx, &path("jack/a")))
            .unwrap()
            .unwrap();
        assert_eq!((file.size, file.blake3.as_str()), (100, HASH));
        assert_eq!(db.check(CloudFile::path.eq("jack/a")).count().unwrap(), 1);
    }

    #[test]
    fn writes_need_a_parent_directory_and_no_directory_in_the_way() {
        let (db, _dir) = database();
        run(&db, |tx| create_owner(tx, "jack", 7, 100)).unwrap();
        let err = run(&db, |tx| reserve_write(tx, &path("jack/docs/a"), 1)).unwrap_err();
        assert!(
            matches!(&err, CloudError::NotFound(p) if p == "jack/docs"),
            "{err}"
        );
        run(&db, |tx| record_directory(tx, &path("jack/docs"))).unwrap();
        for target in ["jack/docs", "jack"] {
            let err = run(&db, |tx| record_write(tx, &path(target), 1, HASH)).unwrap_err();
            assert!(
                matches!(&err, CloudError::AlreadyExists(p) if p == target),
                "{err}"
            );
        }
        let err = run(&db, |tx| {
            record_write(tx, &path("jack/docs/a"), 1, "nothex")
        })
        .unwrap_err();
        assert!(matches!(err, CloudError::BadRequest(_)), "{err}");
        let err = run(&db, |tx| reserve_write(tx, &path("jill/a"), 1)).unwrap_err();
        assert!(matches!(err, CloudError::NoSuchOwner(_)), "{err}");

        run(&db, |tx| {
            record_write(tx, &path("jack/docs/Notes.TXT"), 3, HASH)
        })
        .unwrap();
        let file = run(&db, |tx| file_row(tx, &path("jack/docs/Notes.TXT")))
            .unwrap()
            .unwrap();
        assert_eq!(file.name, "Notes.TXT");
        assert_eq!(file.kind, "text/plain");
        assert_eq!(used(&db, "jack"), 3);
    }

    #[test]
    fn directories_need_their_parent_and_a_free_path() {
        let (db, _dir) = database();
        run(&db, |tx| create_owner(tx, "jack", 7, 100)).unwrap();
        let err = run(&db, |tx| record_directory(tx, &path("jack/a/b"))).unwrap_err();
        assert!(
            matches!(&err, CloudError::NotFound(p) if p == "jack/a"),
            "{err}"
        );
        assert!(run(&db, |tx| directory_row(tx, &path("jack/a/b")))
            .unwrap()
            .is_none());
        run(&db, |tx| record_directory(tx, &path("jack/a"))).unwrap();
        run(&db, |tx| record_directory(tx, &path("jack/a/b"))).unwrap();
        assert!(run(&db, |tx| directory_row(tx, &path("jack/a/b")))
            .unwrap()
            .is_some());
        run(&db, |tx| record_write(tx, &path("jack/a/f"), 1, HASH)).unwrap();
        for taken in ["jack/a", "jack/a/f", "jack"] {
            let err = run(&db, |tx| record_directory(tx, &path(taken))).unwrap_err();
            assert!(
                matches!(&err, CloudError::AlreadyExists(p) if p == taken),
                "{err}"
            );
        }
        let err = run(&db, |tx| record_directory(tx, &path("jack/a/f/g"))).unwrap_err();
        assert!(
            matches!(&err, CloudError::NotFound(p) if p == "jack/a/f"),
            "{err}"
        );

        let (dirs, files) = run(&db, |tx| list_directory(tx, &path("jack/a"))).unwrap();
        let dirs: Vec<_> = dirs.into_iter().map(|d| d.path).collect();
        let files: Vec<_> = files.into_iter().map(|f| f.path).collect();
        assert_eq!(dirs, ["jack/a/b"]);
        assert_eq!(files, ["jack/a/f"]);
        let (dirs, files) = run(&db, |tx| list_directory(tx, &path("jack"))).unwrap();
        assert_eq!(dirs.len(), 1);
        assert!(files.is_empty());
    }

    #[test]
    fn deleting_keeps_used_exact() {
        let (db, _dir) = database();
        run(&db, |tx| create_owner(tx, "jack", 7, 1000)).unwrap();
        run(&db, |tx| {
            record_directory(tx, &path("jack/docs"))?;
            record_directory(tx, &path("jack/docs/deep"))?;
            record_write(tx, &path("jack/docs/a.txt"), 10, HASH)?;
            record_write(tx, &path("jack/docs/deep/b.bin"), 20, HASH)?;
            record_write(tx, &path("jack/c.md"), 40, HASH)
        })
        .unwrap();
        assert_eq!(used(&db, "jack"), 70);

        assert_eq!(
            run(&db, |tx| record_delete(tx, &path("jack/docs"))).unwrap(),
            30
        );
        assert_eq!(used(&db, "jack"), 40);
        assert_eq!(
            db.check(CloudFile::path.ne("jack/c.md")).count().unwrap(),
            0
        );
        assert_eq!(
            db.check(CloudDirectory::path.ne("jack")).count().unwrap(),
            0
        );

        assert_eq!(
            run(&db, |tx| record_delete(tx, &path("jack/c.md"))).unwrap(),
            40
        );
        assert_eq!(used(&db, "jack"), 0);
        let err = run(&db, |tx| record_delete(tx, &path("jack/c.md"))).unwrap_err();
        assert!(
            matches!(&err, CloudError::NotFound(p) if p == "jack/c.md"),
            "{err}"
        );
        let err = run(&db, |tx| record_delete(tx, &path("jack"))).unwrap_err();
        assert!(matches!(err, CloudError::Forbidden { .. }), "{err}");
        assert!(run(&db, |tx| directory_row(tx, &path("jack")))
            .unwrap()
            .is_some());
    }

    #[test]
    fn deleting_a_directory_leaves_siblings_whose_names_look_like_patterns() {
        let (db, _dir) = database();
        run(&db, |tx| create_owner(tx, "jack", 7, 1000)).unwrap();
        run(&db, |tx| {
            for dir in ["jack/a_", "jack/ab", "jack/a%", "jack/a_b", "jack/a_0"] {
                record_directory(tx, &path(dir))?;
            }
            record_write(tx, &path("jack/a_/in"), 1, HASH)?;
            record_write(tx, &path("jack/ab/x"), 2, HASH)?;
            record_write(tx, &path("jack/a%/y"), 4, HASH)?;
            record_write(tx, &path("jack/a_b/z"), 8, HASH)?;
            record_write(tx, &path("jack/a_0/w"), 16, HASH)?;
            record_write(tx, &path("jack/a_.txt"), 32, HASH)
        })
        .unwrap();
        assert_eq!(
            run(&db, |tx| record_delete(tx, &path("jack/a_"))).unwrap(),
            1
        );
        assert_eq!(used(&db, "jack"), 62);
        let mut left: Vec<String> = db
            .check_all::<CloudFile>()
            .all()
            .unwrap()
            .into_iter()
            .map(|f| f.fields.path)
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "jack/a%/y",
                "jack/a_.txt",
                "jack/a_0/w",
                "jack/a_b/z",
                "jack/ab/x"
            ]
        );
        assert_eq!(db.check_all::<CloudDirectory>().count().unwrap(), 5);
    }

    #[test]
    fn audit_lines_are_kept_with_long_texts_cut() {
        let (db, _dir) = database();
        let outcome = "é".repeat(600);
        run(&db, |tx| {
            record_audit(
                tx,
                Some(7),
                "00ff00ff00ff00ff00ff00ff00ff00ff",
                "upload",
                "jack/a",
                "ok",
                12,
            )?;
            record_audit(tx, None, "ab", "delete", "jack/b", &outcome, 0)
        })
        .unwrap();
        let rows = db
            .check_all::<CloudAuditEntry>()
            .order_by(CloudAuditEntry::id.asc())
            .all()
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].user_id, Some(7));
        assert_eq!(rows[0].session, "00ff00ff00ff00ff00ff00ff00ff00ff");
        assert_eq!(
            (rows[0].operation.as_str(), rows[0].path.as_str()),
            ("upload", "jack/a")
        );
        assert_eq!((rows[0].outcome.as_str(), rows[0].bytes), ("ok", 12));
        assert_eq!(rows[1].user_id, None);
        assert_eq!(rows[1].outcome, "é".repeat(512));
    }

    #[test]
    fn audit_lines_older_than_the_retention_go_in_batches() {
        let (db, _dir) = database();
        run(&db, |tx| {
            for i in 0..5 {
                record_audit(tx, None, "s", "Stat", &format!("jack/{i}"), "ok", 0)?;
            }
            Ok(())
        })
        .unwrap();
        let before_any = OffsetDateTime::now_utc() - time::Duration::hours(1);
        assert_eq!(
            run(&db, |tx| forget_audit_before(tx, before_any, 2)).unwrap(),
            0
        );
        let after_all = OffsetDateTime::now_utc() + time::Duration::seconds(1);
        assert_eq!(
            run(&db, |tx| forget_audit_before(tx, after_all, 2)).unwrap(),
            2
        );
        assert_eq!(
            run(&db, |tx| forget_audit_before(tx, after_all, 2)).unwrap(),
            2
        );
        assert_eq!(
            run(&db, |tx| forget_audit_before(tx, after_all, 2)).unwrap(),
            1
        );
        assert_eq!(db.check_all::<CloudAuditEntry>().count().unwrap(), 0);
    }

    #[test]
    fn a_refusal_inside_a_transaction_undoes_only_its_own_writes() {
        let (db, _dir) = database();
        run(&db, |tx| create_owner(tx, "jack", 7, 10)).unwrap();
        let (first, second) = db
            .transaction(|tx| {
                let first = record_directory(tx, &path("jack/kept"));
                let second = atomically(tx, |tx| {
                    record_directory(tx, &path("jack/undone"))?;
                    record_write(tx, &path("jack/undone/big"), 11, HASH)
                });
                Ok((first, second))
            })
            .unwrap();
        assert!(first.is_ok());
        assert!(matches!(second, Err(CloudError::OverQuota { .. })));
        assert!(run(&db, |tx| directory_row(tx, &path("jack/kept")))
            .unwrap()
            .is_some());
        assert!(run(&db, |tx| directory_row(tx, &path("jack/undone")))
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn async_helpers_write_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let db = AsyncDatabase::open(dir.path().join("cloud.sqlite3")).unwrap();
        db.create_tables(&MODELS).await.unwrap();
        db.transaction_with(|tx| create_owner(tx, "jack", 7, 10))
            .await
            .unwrap();
        let err = db
            .transaction_with(|tx| {
                record_directory(tx, &path("jack/d"))?;
                record_write(tx, &path("jack/d/f"), 11, HASH)
            })
            .await
            .unwrap_err();
        assert!(matches!(err, CloudError::OverQuota { .. }), "{err}");
        let d = read_metadata(&db, |conn| directory_row(conn, &path("jack/d")))
            .await
            .unwrap();
        assert!(d.is_none());
        let owner = read_metadata(&db, |conn| owner_of(conn, &path("jack")))
            .await
            .unwrap();
        assert_eq!(owner.user_id, 7);
    }
}
