//! Who may do what in the cloud (the original Fluxon's authorization models): [`Permission`]s,
//! named [`CloudRole`]s that bundle them, and [`CloudRoleAssignment`]s that give a role to a user
//! on one item and, by inheritance, everything below it.
//!
//! An owner holds every permission on their root and below. Anyone else holds the union of the
//! roles assigned to them on the item or on any directory above it: a role on `jack/docs` covers
//! `jack/docs/a/b.txt`, not `jack/docs2`. Anonymous callers hold nothing.
//!
//! What it does not own: the rows of files and directories (`metadata`), and
//! which permission each operation needs (the cloud server decides, then calls [`require`]).

use std::fmt;

use super::error::CloudError;
use super::metadata::{directory_at, file_at, read_metadata, under, CloudOwner, On, ReadMetadata};
use super::path::CloudPath;
use crate::db::{AsyncDatabase, Conn, Executor, ForeignKey, Model, Transaction};

bitflags::bitflags! {
    /// What a user may do on an item, as a set: `Permission::READ_FILE | Permission::WRITE_FILE`.
    /// Stored as the bits of an integer; printed as names (`"READ_FILE | WRITE_FILE"`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Permission: u32 {
        /// Write a new file into a directory.
        const CREATE_FILE = 1 << 0;
        /// Read a file's content, or stat it.
        const READ_FILE = 1 << 1;
        /// Change a file in place (reserved for partial edits). Whoever holds it may also
        /// replace the file's whole content: [`permissions_of`] adds `WRITE_FILE` to any set
        /// holding `EDIT_FILE`, since an in-place edit can rewrite every byte anyway.
        const EDIT_FILE = 1 << 2;
        /// Delete a file.
        const DELETE_FILE = 1 << 3;
        /// Make a directory inside a directory.
        const CREATE_SUB_DIRECTORY = 1 << 4;
        /// Delete a directory (and what it holds) under a directory.
        const DELETE_SUB_DIRECTORY = 1 << 5;
        /// List a directory, or stat it.
        const READ_TREE_DIRECTORY = 1 << 6;
        /// Replace an existing file's whole content.
        const WRITE_FILE = 1 << 7;
        /// Assign roles on the item and below (never a role holding more than the assigner
        /// holds there).
        const ASSIGN_ROLES = 1 << 8;
    }
}

impl Permission {
    /// The permissions stored in a role's `permissions` column (unknown bits are ignored).
    pub fn from_column(bits: i64) -> Permission {
        Permission::from_bits_truncate(u32::try_from(bits & i64::from(u32::MAX)).unwrap_or(0))
    }

    /// The value for a role's `permissions` column.
    pub fn to_column(self) -> i64 {
        i64::from(self.bits())
    }
}

impl fmt::Display for Permission {
    /// The names, joined by `" | "` (`"READ_FILE | WRITE_FILE"`); `"(none)"` for the empty set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("(none)");
        }
        for (i, (name, _)) in self.iter_names().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

/// A named set of permissions (`"reader"`, `"editor"`), assigned to users on items.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct CloudRole {
    /// The row's id.
    #[field(primary_key, auto)]
    pub id: i64,
    /// The role's name.
    #[field(max_length = 100, unique)]
    pub name: String,
    /// The bits of its [`Permission`]s ([`CloudRole::permission_set`] reads them).
    pub permissions: i64,
}

impl CloudRole {
    /// The role's permissions.
    pub fn permission_set(&self) -> Permission {
        Permission::from_column(self.permissions)
    }
}

/// A role given to a user on one item (and so on everything below it).
#[derive(Model, Debug, Clone, PartialEq)]
pub struct CloudRoleAssignment {
    /// The row's id.
    #[field(primary_key, auto)]
    pub id: i64,
    /// The application's user who holds the role.
    #[field(index)]
    pub user_id: i64,
    /// The role.
    #[field(on_delete = cascade)]
    pub role: ForeignKey<CloudRole>,
    /// The normalized cloud path of the item the role is assigned on.
    #[field(max_length = 4096, index)]
    pub path: String,
}

/// Creates a role named `name` holding `permissions`; returns its id. Not itself guarded: creating
/// roles is the application's administration, not a cloud operation.
///
/// [`CloudError::BadRequest`] for an empty name or one over 100 characters,
/// [`CloudError::AlreadyExists`] if the name is taken.
pub fn create_role(
    tx: &Transaction<'_>,
    name: &str,
    permissions: Permission,
) -> Result<i64, CloudError> {
    if name.is_empty() || name.chars().count() > 100 {
        return Err(CloudError::BadRequest(
            "a role's name is 1 to 100 characters".to_owned(),
        ));
    }
    super::metadata::atomically(tx, |tx| {
        if tx.check(CloudRole::name.eq(name)).exists()? {
            return Err(CloudError::AlreadyExists(name.to_owned()));
        }
        Ok(tx.insert_values(vec![
            CloudRole::name.set(name),
            CloudRole::permissions.set(permissions.to_column()),
        ])?)
    })
}

/// Gives `to_user` the role named `role` on the item at `path` (a file or a directory, which must
/// exist), on behalf of `by_user`. Assigning a role the user already holds there does nothing.
///
/// `by_user` must hold [`Permission::ASSIGN_ROLES`] on `path` and every permission of the role
/// (nobody hands out more than they hold), else [`CloudError::Forbidden`].
/// [`CloudError::NotFound`] for an unknown role or a missing item.
pub fn assign_role(
    tx: &Transaction<'_>,
    by_user: i64,
    to_user: i64,
    role: &str,
    path: &CloudPath,
) -> Result<(), CloudError> {
    super::metadata::atomically(tx, |tx| {
        tx.on_connection(|conn| {
            let db = On(conn);
            let held = permissions_on(&db, Some(by_user), path)?;
            missing(held, Permission::ASSIGN_ROLES, path)?;
            let found = db
                .check(CloudRole::name.eq(role))
                .first()?
                .ok_or_else(|| CloudError::NotFound(role.to_owned()))?;
            missing(held, found.permission_set(), path)?;
            if !directory_at(&db, path)? && file_at(&db, path)?.is_none() {
                return Err(CloudError::NotFound(path.to_string()));
            }
            let assigned = CloudRoleAssignment::user_id.eq(to_user)
                & CloudRoleAssignment::role.eq(found.id)
                & CloudRoleAssignment::path.eq(path.as_str());
            if !db.check(assigned).exists()? {
                db.insert_values(vec![
                    CloudRoleAssignment::user_id.set(to_user),
                    CloudRoleAssignment::role.set(found.id),
                    CloudRoleAssignment::path.set(path.as_str()),
                ])?;
            }
            Ok(())
        })
    })
}

/// `Err(Forbidden)` naming `needed` unless `held` contains all of it.
fn missing(held: Permission, needed: Permission, path: &CloudPath) -> Result<(), CloudError> {
    if held.contains(needed) {
        Ok(())
    } else {
        Err(CloudError::Forbidden {
            permission: needed.to_string(),
            path: path.to_string(),
        })
    }
}

/// What `user` may do on `path`: everything if they own the owner root `path` is in; otherwise
/// the union of the roles assigned to them on `path` or on any item above it; nothing for
/// `None` (not logged in). [`CloudError::NoSuchOwner`] if no owner has `path`'s first component.
pub fn permissions_of(
    src: &impl ReadMetadata,
    user: Option<i64>,
    path: &CloudPath,
) -> Result<Permission, CloudError> {
    src.on_connection(|conn| permissions_on(&On(conn), user, path))
}

fn permissions_on(
    db: &On<'_>,
    user: Option<i64>,
    path: &CloudPath,
) -> Result<Permission, CloudError> {
    let owner = db
        .check(CloudOwner::name.eq(path.owner()))
        .first()?
        .ok_or_else(|| CloudError::NoSuchOwner(path.owner().to_owned()))?;
    let Some(user) = user else {
        return Ok(Permission::empty());
    };
    if owner.user_id == user {
        return Ok(Permission::all());
    }
    let roles: Vec<i64> = db
        .check(
            CloudRoleAssignment::user_id.eq(user)
                & CloudRoleAssignment::path.in_list(ancestors(path)),
        )
        .columns((CloudRoleAssignment::role,))?
        .into_iter()
        .map(|(role,)| *role.key())
        .collect();
    let mut held = db
        .check(CloudRole::id.in_list(roles))
        .columns((CloudRole::permissions,))?
        .into_iter()
        .fold(Permission::empty(), |held, (bits,)| {
            held | Permission::from_column(bits)
        });
    if held.contains(Permission::EDIT_FILE) {
        held |= Permission::WRITE_FILE;
    }
    Ok(held)
}

/// `path` and every item above it: `jack`, `jack/docs`, `jack/docs/a.txt`.
fn ancestors(path: &CloudPath) -> Vec<String> {
    let text = path.as_str();
    text.match_indices('/')
        .map(|(end, _)| text[..end].to_owned())
        .chain(std::iter::once(text.to_owned()))
        .collect()
}

/// `Ok` if `user` holds all of `needed` on `path`, else [`CloudError::Forbidden`] naming `needed`.
pub fn require(
    src: &impl ReadMetadata,
    user: Option<i64>,
    path: &CloudPath,
    needed: Permission,
) -> Result<(), CloudError> {
    let held = permissions_of(src, user, path)?;
    missing(held, needed, path)
}

/// [`require`] on one of the database's reader connections.
///
/// # Errors
/// As [`require`].
///
/// # Cancel safety
/// Cancel safe: a read.
pub async fn require_async(
    db: &AsyncDatabase,
    user: Option<i64>,
    path: &CloudPath,
    needed: Permission,
) -> Result<(), CloudError> {
    let path = path.clone();
    read_metadata(db, move |conn: &Conn<'_>| {
        require(conn, user, &path, needed)
    })
    .await
}

/// Drops the role assignments on `path` and under it (the items are being deleted).
pub(super) fn forget_assignments(db: &On<'_>, path: &CloudPath) -> Result<(), CloudError> {
    let (from, to) = under(path);
    db.delete(
        CloudRoleAssignment::path.eq(path.as_str())
            | (CloudRoleAssignment::path.ge(from.as_str())
                & CloudRoleAssignment::path.lt(to.as_str())),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::metadata::tests::{database, path, run};
    use crate::cloud::{create_owner, record_delete, record_directory, record_write};

    const JACK: i64 = 1;
    const JILL: i64 = 2;
    const BOB: i64 = 3;
    const HASH: &str = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262";

    fn jacks_cloud() -> (crate::db::Database, tempfile::TempDir) {
        let (db, dir) = database();
        run(&db, |tx| {
            create_owner(tx, "jack", JACK, 1000)?;
            for d in ["jack/docs", "jack/docs/x", "jack/docs2", "jack/other"] {
                record_directory(tx, &path(d))?;
            }
            create_role(
                tx,
                "reader",
                Permission::READ_FILE | Permission::READ_TREE_DIRECTORY,
            )?;
            create_role(tx, "editor", Permission::EDIT_FILE | Permission::READ_FILE)?;
            create_role(
                tx,
                "steward",
                Permission::ASSIGN_ROLES | Permission::READ_FILE | Permission::READ_TREE_DIRECTORY,
            )?;
            create_role(tx, "admin", Permission::all())?;
            Ok(())
        })
        .unwrap();
        (db, dir)
    }

    fn held(db: &crate::db::Database, user: Option<i64>, at: &str) -> Permission {
        run(db, |tx| permissions_of(tx, user, &path(at))).unwrap()
    }

    #[test]
    fn permissions_print_as_names() {
        assert_eq!(Permission::WRITE_FILE.to_string(), "WRITE_FILE");
        assert_eq!(
            (Permission::CREATE_FILE | Permission::ASSIGN_ROLES).to_string(),
            "CREATE_FILE | ASSIGN_ROLES"
        );
        assert_eq!(Permission::empty().to_string(), "(none)");
        assert_eq!(
            Permission::from_column(Permission::all().to_column()),
            Permission::all()
        );
        assert_eq!(Permission::from_column(-1), Permission::all());
    }

    #[test]
    fn owners_hold_everything_and_others_nothing() {
        let (db, _dir) = jacks_cloud();
        assert_eq!(held(&db, Some(JACK), "jack"), Permission::all());
        assert_eq!(
            held(&db, Some(JACK), "jack/docs/x/new.txt"),
            Permission::all()
        );
        assert_eq!(held(&db, Some(JILL), "jack"), Permission::empty());
        assert_eq!(held(&db, None, "jack/docs"), Permission::empty());
        let err = run(&db, |tx| {
            require(
                tx,
                Some(JILL),
                &path("jack"),
                Permission::READ_TREE_DIRECTORY,
            )
        })
        .unwrap_err();
        match err {
            CloudError::Forbidden { permission, path } => {
                assert_eq!(
                    (permission.as_str(), path.as_str()),
                    ("READ_TREE_DIRECTORY", "jack")
                );
            }
            other => panic!("{other}"),
        }
        let err = run(&db, |tx| permissions_of(tx, Some(JACK), &path("jill/x"))).unwrap_err();
        assert!(
            matches!(&err, CloudError::NoSuchOwner(n) if n == "jill"),
            "{err}"
        );
    }

    #[test]
    fn roles_are_inherited_down_the_tree_only() {
        let (db, _dir) = jacks_cloud();
        run(&db, |tx| {
            assign_role(tx, JACK, JILL, "reader", &path("jack/docs"))
        })
        .unwrap();
        let reader = Permission::READ_FILE | Permission::READ_TREE_DIRECTORY;
        assert_eq!(held(&db, Some(JILL), "jack/docs"), reader);
        assert_eq!(held(&db, Some(JILL), "jack/docs/x/y"), reader);
        run(&db, |tx| {
            require(
                tx,
                Some(JILL),
                &path("jack/docs/x/y"),
                Permission::READ_FILE,
            )
        })
        .unwrap();
        assert_eq!(held(&db, Some(JILL), "jack/docs2/z"), Permission::empty());
        assert_eq!(held(&db, Some(JILL), "jack/other"), Permission::empty());
        assert_eq!(held(&db, Some(JILL), "jack"), Permission::empty());
        assert_eq!(held(&db, Some(BOB), "jack/docs/x/y"), Permission::empty());
        let err = run(&db, |tx| {
            require(
                tx,
                Some(JILL),
                &path("jack/docs/x/y"),
                Permission::READ_FILE | Permission::DELETE_FILE,
            )
        })
        .unwrap_err();
        assert!(
            matches!(&err, CloudError::Forbidden { permission, .. } if permission == "READ_FILE | DELETE_FILE"),
            "{err}"
        );

        // Roles add up, and EDIT_FILE brings WRITE_FILE with it.
        run(&db, |tx| {
            assign_role(tx, JACK, JILL, "editor", &path("jack/docs/x"))
        })
        .unwrap();
        assert_eq!(
            held(&db, Some(JILL), "jack/docs/x/y"),
            reader | Permission::EDIT_FILE | Permission::WRITE_FILE
        );
        assert_eq!(held(&db, Some(JILL), "jack/docs/y"), reader);
        // Assigning twice changes nothing.
        run(&db, |tx| {
            assign_role(tx, JACK, JILL, "editor", &path("jack/docs/x"))
        })
        .unwrap();
        assert_eq!(db.check_all::<CloudRoleAssignment>().count().unwrap(), 2);
    }

    #[test]
    fn only_holders_of_assign_roles_assign_and_never_more_than_they_hold() {
        let (db, _dir) = jacks_cloud();
        let err = run(&db, |tx| {
            assign_role(tx, JILL, BOB, "reader", &path("jack/docs"))
        })
        .unwrap_err();
        assert!(
            matches!(&err, CloudError::Forbidden { permission, .. } if permission == "ASSIGN_ROLES"),
            "{err}"
        );
        assert_eq!(db.check_all::<CloudRoleAssignment>().count().unwrap(), 0);

        run(&db, |tx| {
            assign_role(tx, JACK, JILL, "steward", &path("jack/docs"))
        })
        .unwrap();
        run(&db, |tx| {
            assign_role(tx, JILL, BOB, "reader", &path("jack/docs/x"))
        })
        .unwrap();
        assert!(held(&db, Some(BOB), "jack/docs/x/f").contains(Permission::READ_FILE));
        // Not outside where Jill holds ASSIGN_ROLES, and not a role holding more than she does.
        let err = run(&db, |tx| {
            assign_role(tx, JILL, BOB, "reader", &path("jack/other"))
        })
        .unwrap_err();
        assert!(matches!(err, CloudError::Forbidden { .. }), "{err}");
        let err = run(&db, |tx| {
            assign_role(tx, JILL, BOB, "admin", &path("jack/docs"))
        })
        .unwrap_err();
        assert!(matches!(err, CloudError::Forbidden { .. }), "{err}");
        assert_eq!(held(&db, Some(BOB), "jack/other"), Permission::empty());

        let err = run(&db, |tx| {
            assign_role(tx, JACK, BOB, "nobody", &path("jack/docs"))
        })
        .unwrap_err();
        assert!(
            matches!(&err, CloudError::NotFound(n) if n == "nobody"),
            "{err}"
        );
        let err = run(&db, |tx| {
            assign_role(tx, JACK, BOB, "reader", &path("jack/missing"))
        })
        .unwrap_err();
        assert!(
            matches!(&err, CloudError::NotFound(p) if p == "jack/missing"),
            "{err}"
        );
        let err = run(&db, |tx| {
            assign_role(tx, JACK, BOB, "reader", &path("jill"))
        })
        .unwrap_err();
        assert!(matches!(err, CloudError::NoSuchOwner(_)), "{err}");
    }

    #[test]
    fn roles_go_with_the_items_they_were_assigned_on() {
        let (db, _dir) = jacks_cloud();
        run(&db, |tx| {
            record_write(tx, &path("jack/docs/x/f"), 5, HASH)?;
            assign_role(tx, JACK, JILL, "reader", &path("jack/docs/x/f"))?;
            assign_role(tx, JACK, JILL, "reader", &path("jack/docs2"))
        })
        .unwrap();
        run(&db, |tx| record_delete(tx, &path("jack/docs"))).unwrap();
        run(&db, |tx| {
            record_directory(tx, &path("jack/docs"))?;
            record_directory(tx, &path("jack/docs/x"))?;
            record_write(tx, &path("jack/docs/x/f"), 5, HASH)
        })
        .unwrap();
        assert_eq!(held(&db, Some(JILL), "jack/docs/x/f"), Permission::empty());
        assert!(held(&db, Some(JILL), "jack/docs2").contains(Permission::READ_FILE));
    }

    #[test]
    fn role_names_are_checked() {
        let (db, _dir) = jacks_cloud();
        let err = run(&db, |tx| create_role(tx, "reader", Permission::empty())).unwrap_err();
        assert!(
            matches!(&err, CloudError::AlreadyExists(n) if n == "reader"),
            "{err}"
        );
        let err = run(&db, |tx| create_role(tx, "", Permission::empty())).unwrap_err();
        assert!(matches!(err, CloudError::BadRequest(_)), "{err}");
        let id = run(&db, |tx| {
            create_role(tx, "deleter", Permission::DELETE_FILE)
        })
        .unwrap();
        let role = db.check(CloudRole::id.eq(id)).first().unwrap().unwrap();
        assert_eq!(role.permission_set(), Permission::DELETE_FILE);
    }

    #[tokio::test]
    async fn require_async_reads_on_a_reader() {
        let dir = tempfile::tempdir().unwrap();
        let db = AsyncDatabase::open(dir.path().join("cloud.sqlite3")).unwrap();
        db.create_tables(&crate::cloud::MODELS).await.unwrap();
        db.transaction_with(|tx| create_owner(tx, "jack", JACK, 10).map(|_| ()))
            .await
            .unwrap();
        require_async(&db, Some(JACK), &path("jack/a"), Permission::all())
            .await
            .unwrap();
        let err = require_async(&db, Some(JILL), &path("jack/a"), Permission::READ_FILE)
            .await
            .unwrap_err();
        assert!(matches!(err, CloudError::Forbidden { .. }), "{err}");
    }
}
