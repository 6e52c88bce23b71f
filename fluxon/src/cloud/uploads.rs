//! Uploads in progress: a [`CloudUpload`] row per path being written, holding the size its
//! writer declared. The row is made (or its size replaced) in the transaction that answers
//! `Ready`, and goes in the transaction that commits the file, or with the partial file when the
//! upload fails for good or is swept. While it exists its bytes count against the owner's quota
//! ([`reserve_write`](super::reserve_write) adds the other paths' rows to `used`), and it counts
//! as one item against the owner's item limit: a flood of uploads that never finish stops at the
//! quota, however many paths it names.
//!
//! One row per path, one partial file per path: an upload of another size starts the partial
//! over, and only an upload of the same size may resume it.
//!
//! Only rows, like the rest of the metadata: the partial files are the endpoint's.

use super::error::CloudError;
use super::metadata::{self, CloudOwner, On, ReadMetadata};
use super::path::CloudPath;
use crate::db::{Conn, Executor, ForeignKey, Model, OffsetDateTime, Transaction};

/// An upload between its `Ready` and its commit (or its removal).
#[derive(Model, Debug, Clone, PartialEq)]
pub struct CloudUpload {
    /// The row's id.
    #[field(primary_key, auto)]
    pub id: i64,
    /// Whose quota it counts against.
    #[field(on_delete = cascade)]
    pub owner: ForeignKey<CloudOwner>,
    /// The normalized cloud path being written.
    #[field(max_length = 4096, unique)]
    pub path: String,
    /// The size its writer declared, in bytes.
    pub size: i64,
    /// When the first upload of this path (at this size or another) began.
    #[field(auto_now_add)]
    pub started: OffsetDateTime,
    /// When an upload of it last began or resumed.
    #[field(auto_now)]
    pub updated: OffsetDateTime,
}

/// The bytes the owner `owner`'s uploads in progress reserve, but for the one of `path`.
pub(super) fn reserved_except(
    db: &On<'_>,
    owner: i64,
    path: &CloudPath,
) -> Result<i64, CloudError> {
    let sizes = db
        .check(CloudUpload::owner.eq(owner) & CloudUpload::path.ne(path.as_str()))
        .columns((CloudUpload::size,))?;
    Ok(sizes
        .into_iter()
        .fold(0i64, |sum, (size,)| sum.saturating_add(size.max(0))))
}

/// Uploads in progress of `owner` (for the item count).
pub(super) fn count_of(db: &On<'_>, owner: i64) -> Result<i64, CloudError> {
    Ok(db.check(CloudUpload::owner.eq(owner)).count()?)
}

/// Reserves `size` bytes for an upload of `path` about to be answered `Ready`: the checks of
/// [`reserve_write`](super::reserve_write) (the quota counting every other upload in progress),
/// the owner's item limit of `max_items` if the upload would add an item, then the row made or
/// its size replaced. Returns whether a partial file of this path may be resumed: only if a row
/// of the same size was there already.
pub(crate) fn reserve_upload(
    tx: &Transaction<'_>,
    path: &CloudPath,
    size: u64,
    max_items: u64,
) -> Result<bool, CloudError> {
    let size_column = i64::try_from(size).map_err(|_| CloudError::OverQuota {
        needed: size,
        available: 0,
    })?;
    metadata::atomically(tx, |tx| {
        tx.on_connection(|conn| {
            let db = On(conn);
            let (owner, replaced) = metadata::check_write(&db, path, size)?;
            let previous = db.check(CloudUpload::path.eq(path.as_str())).first()?;
            match previous {
                Some(row) => {
                    db.update(
                        vec![CloudUpload::size.set(size_column)],
                        CloudUpload::id.eq(row.id),
                    )?;
                    Ok(row.size == size_column)
                }
                None => {
                    if replaced.is_none() {
                        metadata::check_room(&db, &owner, max_items)?;
                    }
                    db.insert_values(vec![
                        CloudUpload::owner.set(owner.id),
                        CloudUpload::path.set(path.as_str()),
                        CloudUpload::size.set(size_column),
                    ])?;
                    Ok(false)
                }
            }
        })
    })
}

/// Forgets the upload of `path` (committed, failed, or its partial file removed).
pub(super) fn forget(db: &On<'_>, path: &CloudPath) -> Result<(), CloudError> {
    db.delete(CloudUpload::path.eq(path.as_str()))?;
    Ok(())
}

/// Forgets the uploads into the directory `path` and below it (being deleted, partial files and
/// all).
pub(super) fn forget_under(db: &On<'_>, path: &CloudPath) -> Result<(), CloudError> {
    let (from, to) = metadata::under(path);
    db.delete(CloudUpload::path.ge(from.as_str()) & CloudUpload::path.lt(to.as_str()))?;
    Ok(())
}

/// [`forget`] in a transaction of its own.
pub(crate) fn forget_upload(tx: &Transaction<'_>, path: &CloudPath) -> Result<(), CloudError> {
    tx.on_connection(|conn| forget(&On(conn), path))
}

/// Uploads no writer has begun or resumed since `before`, oldest first, at most `limit`.
pub(crate) fn stale(
    conn: &Conn<'_>,
    before: OffsetDateTime,
    limit: i64,
) -> Result<Vec<CloudUpload>, CloudError> {
    let rows = On(*conn)
        .check(CloudUpload::updated.lt(before))
        .order_by(CloudUpload::updated.asc())
        .limit(limit)
        .all()?;
    Ok(rows.into_iter().map(crate::db::Row::into_fields).collect())
}

/// Forgets the upload `id` if still untouched since `before` (a writer may have resumed it since
/// it was found stale); whether it went.
pub(crate) fn forget_stale(
    tx: &Transaction<'_>,
    id: i64,
    before: OffsetDateTime,
) -> Result<bool, CloudError> {
    Ok(tx.delete(CloudUpload::id.eq(id) & CloudUpload::updated.lt(before))? > 0)
}

/// The paths of every upload in progress (for the sweeper, which keeps their partial files).
pub(crate) fn every_path(conn: &Conn<'_>) -> Result<Vec<String>, CloudError> {
    Ok(On(*conn)
        .check_all::<CloudUpload>()
        .columns((CloudUpload::path,))?
        .into_iter()
        .map(|(path,)| path)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::metadata::tests::{database, path, run};
    use crate::cloud::{
        create_owner, record_delete, record_directory, record_write, reserve_write,
    };

    const HASH: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    #[test]
    fn uploads_in_progress_count_against_the_quota_until_committed() {
        let (db, _dir) = database();
        run(&db, |tx| create_owner(tx, "jack", 7, 100)).unwrap();
        assert!(!run(&db, |tx| reserve_upload(tx, &path("jack/a"), 60, 10)).unwrap());
        // 60 reserved: 40 left for anything else, whether reserved or written at once.
        let err = run(&db, |tx| reserve_upload(tx, &path("jack/b"), 41, 10)).unwrap_err();
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
        let err = run(&db, |tx| reserve_write(tx, &path("jack/c"), 41)).unwrap_err();
        assert!(matches!(err, CloudError::OverQuota { .. }), "{err}");
        let err = run(&db, |tx| record_write(tx, &path("jack/c"), 41, HASH)).unwrap_err();
        assert!(matches!(err, CloudError::OverQuota { .. }), "{err}");
        // The same path again: its own reservation is replaced, not added to.
        assert!(run(&db, |tx| reserve_upload(tx, &path("jack/a"), 60, 10)).unwrap());
        assert!(!run(&db, |tx| reserve_upload(tx, &path("jack/a"), 100, 10)).unwrap());
        assert_eq!(db.check_all::<CloudUpload>().count().unwrap(), 1);
        assert!(!run(&db, |tx| reserve_upload(tx, &path("jack/a"), 30, 10)).unwrap());
        run(&db, |tx| reserve_upload(tx, &path("jack/b"), 70, 10)).unwrap();
        // Committing moves the bytes from reserved to used.
        run(&db, |tx| record_write(tx, &path("jack/a"), 30, HASH)).unwrap();
        assert_eq!(db.check_all::<CloudUpload>().count().unwrap(), 1);
        let owner = run(&db, |tx| metadata::owner_of(tx, &path("jack"))).unwrap();
        assert_eq!(owner.used, 30);
        let err = run(&db, |tx| reserve_write(tx, &path("jack/c"), 1)).unwrap_err();
        assert!(
            matches!(err, CloudError::OverQuota { available: 0, .. }),
            "{err}"
        );
        run(&db, |tx| forget_upload(tx, &path("jack/b"))).unwrap();
        run(&db, |tx| reserve_write(tx, &path("jack/c"), 70)).unwrap();
    }

    #[test]
    fn items_are_counted_with_uploads_and_deleting_a_directory_forgets_its_uploads() {
        let (db, _dir) = database();
        run(&db, |tx| create_owner(tx, "jack", 7, 1000)).unwrap();
        // The root is one item; two more fit under a limit of 3.
        run(&db, |tx| record_directory(tx, &path("jack/d"))).unwrap();
        run(&db, |tx| reserve_upload(tx, &path("jack/d/a"), 1, 3)).unwrap();
        let err = run(&db, |tx| reserve_upload(tx, &path("jack/d/b"), 1, 3)).unwrap_err();
        assert!(
            matches!(&err, CloudError::TooManyItems { owner, limit: 3 } if owner == "jack"),
            "{err}"
        );
        let err = run(&db, |tx| {
            metadata::check_item_limit(tx, &path("jack/e"), 3)?;
            record_directory(tx, &path("jack/e"))
        })
        .unwrap_err();
        assert!(matches!(err, CloudError::TooManyItems { .. }), "{err}");
        // Resuming, or replacing a file, adds no item.
        run(&db, |tx| reserve_upload(tx, &path("jack/d/a"), 1, 3)).unwrap();
        run(&db, |tx| record_write(tx, &path("jack/d/a"), 1, HASH)).unwrap();
        run(&db, |tx| reserve_upload(tx, &path("jack/d/a"), 2, 3)).unwrap();
        assert_eq!(
            run(&db, |tx| record_delete(tx, &path("jack/d"))).unwrap(),
            1
        );
        assert_eq!(db.check_all::<CloudUpload>().count().unwrap(), 0);
        run(&db, |tx| reserve_upload(tx, &path("jack/b"), 1, 3)).unwrap();
    }

    #[test]
    fn stale_uploads_are_found_and_forgotten_unless_resumed() {
        let (db, _dir) = database();
        run(&db, |tx| create_owner(tx, "jack", 7, 1000)).unwrap();
        run(&db, |tx| reserve_upload(tx, &path("jack/a"), 1, 10)).unwrap();
        let later = OffsetDateTime::now_utc() + time::Duration::hours(1);
        let found = db
            .transaction(move |tx| Ok(stale(&tx.conn(), later, 10)))
            .unwrap()
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            db.transaction(|tx| Ok(every_path(&tx.conn())))
                .unwrap()
                .unwrap(),
            ["jack/a"]
        );
        let earlier = OffsetDateTime::now_utc() - time::Duration::hours(1);
        assert!(!run(&db, |tx| forget_stale(tx, found[0].id, earlier)).unwrap());
        assert!(run(&db, |tx| forget_stale(tx, found[0].id, later)).unwrap());
        assert_eq!(db.check_all::<CloudUpload>().count().unwrap(), 0);
    }
}
