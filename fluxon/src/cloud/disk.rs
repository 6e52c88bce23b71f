//! The cloud folder on disk, reached only through directory handles.
//!
//! Every operation of the endpoint on a cloud path goes through a [`cap_std::fs::Dir`] of the
//! owner's root directory: the rest of the path is resolved inside that handle one component at
//! a time (`openat2(RESOLVE_BENEATH)`, or cap-std's own openat walk where the kernel lacks it),
//! so a `..` or a symlink that would lead out of the owner's root fails in the kernel, at the
//! moment of the operation itself. There is no check-then-open: swapping a directory for a
//! symlink between a check and an open gains nothing. The last component is never followed
//! (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `renameat`, `unlinkat`): to the cloud, a symlink is not
//! an item, and naming one is refused like a path that leads out.
//!
//! What it does not own: which paths a client may name ([`CloudPath`] checks the text), and
//! what the bytes are (uploads, downloads and walks use the handles this module opens).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use rustix::fs::OFlags;

use super::error::CloudError;
use super::path::{CloudPath, PathError};

/// Flags that keep `open` from following a symlink in the last component.
fn no_follow() -> i32 {
    // Only flag bits, far below i32::MAX on every platform rustix knows.
    i32::try_from(OFlags::NOFOLLOW.bits()).unwrap_or(0)
}

fn no_follow_dir() -> i32 {
    i32::try_from((OFlags::NOFOLLOW | OFlags::DIRECTORY).bits()).unwrap_or(0)
}

/// Whether `err` is a resolution refused for leading out of the handle's directory (cap-std's
/// escape error, `EXDEV` from `RESOLVE_BENEATH`) or for meeting a symlink it must not follow
/// (`ELOOP` under `O_NOFOLLOW`).
pub(crate) fn is_escape(err: &io::Error) -> bool {
    let errno = err.raw_os_error();
    errno == Some(rustix::io::Errno::XDEV.raw_os_error())
        || errno == Some(rustix::io::Errno::LOOP.raw_os_error())
        || (err.kind() == io::ErrorKind::PermissionDenied
            && err.to_string().contains("outside of the filesystem"))
}

/// `err` as the endpoint reports it for `path`.
pub(crate) fn error(path: &CloudPath, err: io::Error) -> CloudError {
    if is_escape(&err) {
        return PathError::Escapes.into();
    }
    match err.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            CloudError::NotFound(path.to_string())
        }
        io::ErrorKind::AlreadyExists => CloudError::AlreadyExists(path.to_string()),
        _ => CloudError::Io(err),
    }
}

/// The cloud folder, as a directory handle. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Disk {
    root: Arc<Dir>,
}

impl std::fmt::Debug for Disk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Disk(..)")
    }
}

impl Disk {
    /// Opens the cloud folder (created if missing).
    pub fn open(folder: &Path) -> io::Result<Disk> {
        std::fs::create_dir_all(folder)?;
        let root = Dir::open_ambient_dir(folder, cap_std::ambient_authority())?;
        Ok(Disk {
            root: Arc::new(root),
        })
    }

    /// The cloud folder's handle (for the sweeper, which walks every owner).
    pub fn root(&self) -> &Dir {
        &self.root
    }

    /// Makes the root directory of a new owner `name` (one path component).
    pub fn create_owner_root(&self, name: &str) -> io::Result<()> {
        self.root.create_dir(name)
    }

    /// The item at `path`: its owner's root opened (never through a symlink), the rest of the
    /// path kept to be resolved inside it by each operation.
    pub fn at(&self, path: &CloudPath) -> Result<Item, CloudError> {
        let owner = open_dir_no_follow(&self.root, path.owner()).map_err(|e| {
            // `O_NOFOLLOW | O_DIRECTORY` meets a symlink as "not a directory": say what it is.
            let link = self
                .root
                .symlink_metadata(path.owner())
                .is_ok_and(|meta| meta.is_symlink());
            if link {
                PathError::Escapes.into()
            } else {
                error(path, e)
            }
        })?;
        let rel = path
            .as_str()
            .get(path.owner().len()..)
            .unwrap_or_default()
            .trim_start_matches('/')
            .to_owned();
        Ok(Item {
            owner: Arc::new(owner),
            rel,
            path: path.clone(),
        })
    }
}

/// Opens the directory `rel` under `dir`, refusing a symlink as its last component (and, as
/// every cap-std resolution does, any way out of `dir`).
pub(crate) fn open_dir_no_follow(dir: &Dir, rel: &str) -> io::Result<Dir> {
    if rel.is_empty() {
        return dir.try_clone();
    }
    let mut options = OpenOptions::new();
    options.read(true).custom_flags(no_follow_dir());
    let file = dir.open_with(rel, &options)?;
    Ok(Dir::from_std_file(file.into_std()))
}

/// What the disk says about an item.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ItemMeta {
    pub is_dir: bool,
    pub len: u64,
    pub modified: SystemTime,
    pub created: Option<SystemTime>,
}

impl ItemMeta {
    pub fn of(meta: &cap_std::fs::Metadata) -> ItemMeta {
        ItemMeta {
            is_dir: meta.is_dir(),
            len: meta.len(),
            modified: meta
                .modified()
                .map_or(std::time::UNIX_EPOCH, |t| t.into_std()),
            created: meta.created().ok().map(|t| t.into_std()),
        }
    }
}

/// An item (existing or not yet) under an owner's root. Its methods block: run them off the
/// runtime's threads.
#[derive(Clone)]
pub(crate) struct Item {
    owner: Arc<Dir>,
    /// The path under the owner's root (empty for the root itself).
    rel: String,
    path: CloudPath,
}

impl Item {
    /// The cloud path.
    pub fn path(&self) -> &CloudPath {
        &self.path
    }

    /// The owner's root handle and the path under it, for walks.
    pub fn owner_dir(&self) -> (&Dir, &str) {
        (&self.owner, &self.rel)
    }

    /// The item named `name` in the same directory (a partial upload, a trash name), which no
    /// client path can name.
    pub fn sibling(&self, name: &str) -> Item {
        let rel = match self.rel.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/{name}"),
            None => name.to_owned(),
        };
        let path = self.path.parent().unwrap_or_else(|| self.path.clone());
        Item {
            owner: Arc::clone(&self.owner),
            rel,
            path,
        }
    }

    fn err(&self, err: io::Error) -> CloudError {
        error(&self.path, err)
    }

    /// What is there, without following a symlink: [`CloudError::NotFound`] if nothing is,
    /// [`PathError::Escapes`] for a symlink.
    pub fn metadata(&self) -> Result<ItemMeta, CloudError> {
        let meta = if self.rel.is_empty() {
            self.owner.dir_metadata()
        } else {
            self.owner.symlink_metadata(&self.rel)
        }
        .map_err(|e| self.err(e))?;
        if meta.is_symlink() {
            return Err(PathError::Escapes.into());
        }
        Ok(ItemMeta::of(&meta))
    }

    /// Opens the file for reading.
    pub fn open_read(&self) -> Result<std::fs::File, CloudError> {
        let mut options = OpenOptions::new();
        options.read(true).custom_flags(no_follow());
        let file = self
            .owner
            .open_with(&self.rel, &options)
            .map_err(|e| self.err(e))?;
        Ok(file.into_std())
    }

    /// Opens the file for reading and writing, creating it if missing.
    pub fn open_partial(&self) -> Result<std::fs::File, CloudError> {
        let mut options = OpenOptions::new();
        options
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .custom_flags(no_follow());
        let file = self
            .owner
            .open_with(&self.rel, &options)
            .map_err(|e| self.err(e))?;
        Ok(file.into_std())
    }

    /// Makes the directory.
    pub fn create_dir(&self) -> Result<(), CloudError> {
        self.owner.create_dir(&self.rel).map_err(|e| self.err(e))
    }

    /// Renames the item to `to` (in the same owner's root); `Ok(false)` if there was nothing to
    /// rename.
    pub fn rename_to(&self, to: &Item) -> Result<bool, CloudError> {
        match self.owner.rename(&self.rel, &to.owner, &to.rel) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Removes the file (a symlink itself, never its target); nothing there is fine.
    pub fn remove_file(&self) -> Result<(), CloudError> {
        match self.owner.remove_file(&self.rel) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(self.err(e)),
            _ => Ok(()),
        }
    }

    /// Flushes the directory the item is in, so a rename into it is durable.
    pub fn sync_directory(&self) -> Result<(), CloudError> {
        let dir = match self.rel.rsplit_once('/') {
            Some((dir, _)) => open_dir_no_follow(&self.owner, dir),
            None => self.owner.try_clone(),
        }
        .map_err(|e| self.err(e))?;
        dir.into_std_file().sync_all().map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> CloudPath {
        CloudPath::parse(raw).unwrap()
    }

    fn escapes<T: std::fmt::Debug>(result: &Result<T, CloudError>) -> bool {
        matches!(result, Err(CloudError::Path(PathError::Escapes)))
    }

    #[test]
    fn operations_through_the_handle_never_pass_a_symlink_leading_out() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cloud");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("jack/docs")).unwrap();
        std::fs::create_dir_all(root.join("jill")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
        std::fs::write(root.join("jill/hers.txt"), b"hers").unwrap();
        let disk = Disk::open(&root).unwrap();

        // Made behind the server's back: an absolute link out, a relative one out, a relative one
        // into another owner's root, and a link as the last component.
        std::os::unix::fs::symlink(&outside, root.join("jack/abs")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("jack/rel")).unwrap();
        std::os::unix::fs::symlink("../jill", root.join("jack/jills")).unwrap();
        std::os::unix::fs::symlink("docs", root.join("jack/docs-link")).unwrap();

        for through in ["jack/abs", "jack/rel"] {
            let secret = disk.at(&path(&format!("{through}/secret.txt"))).unwrap();
            assert!(escapes(&secret.open_read()), "{through}");
            assert!(escapes(&secret.metadata()), "{through}");
            let new = disk.at(&path(&format!("{through}/new.txt"))).unwrap();
            assert!(escapes(&new.open_partial()), "{through}");
            let dir = disk.at(&path(&format!("{through}/made"))).unwrap();
            assert!(escapes(&dir.create_dir()), "{through}");
            assert!(escapes(&secret.rename_to(&new)), "{through}");
            assert!(escapes(&secret.remove_file()), "{through}");
        }
        let hers = disk.at(&path("jack/jills/hers.txt")).unwrap();
        assert!(escapes(&hers.open_read()), "another owner's root is out");
        assert!(escapes(&hers.remove_file()));
        // The link itself is not an item either.
        let link = disk.at(&path("jack/docs-link")).unwrap();
        assert!(escapes(&link.metadata()));
        assert!(escapes(&link.open_read()));
        // An owner's root that is a link is refused as a whole.
        std::os::unix::fs::symlink(&outside, root.join("bob")).unwrap();
        let bob = disk.at(&path("bob/secret.txt")).map(drop);
        assert!(escapes(&bob), "{bob:?}");

        assert_eq!(
            std::fs::read(outside.join("secret.txt")).unwrap(),
            b"secret"
        );
        assert_eq!(std::fs::read(root.join("jill/hers.txt")).unwrap(), b"hers");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);

        // What stays inside works.
        let inside = disk.at(&path("jack/docs/a.txt")).unwrap();
        std::io::Write::write_all(&mut inside.open_partial().unwrap(), b"a").unwrap();
        assert!(!inside.metadata().unwrap().is_dir);
        assert!(disk.at(&path("jack")).unwrap().metadata().unwrap().is_dir);
        let missing = disk.at(&path("jack/none/x")).unwrap();
        assert!(matches!(missing.metadata(), Err(CloudError::NotFound(_))));
    }
}
