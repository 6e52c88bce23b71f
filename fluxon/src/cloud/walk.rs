//! Walks of the disk behind `ReadTree`, `Stat` and `DeleteItem`, each bounded in the entries it
//! reads and in time, so no request can make the endpoint list a million files or build a tree
//! of a gigabyte in memory.
//!
//! * [`tree_page`]: one page of a tree in pre-order (a directory before its items, items by
//!   name), resumed after a cursor without any state kept between pages. A page ends at its
//!   size (items and encoded bytes) or when its walk meets a bound; only a page that could not
//!   hold one item is refused ([`CloudError::TreeTooLarge`]).
//! * [`directory_size`]: the bytes of the files under a directory, refused past a bound.
//! * [`remove_tree`]: removes a deleted directory's remains until done or out of budget; what is
//!   left is hidden trash the sweeper finishes.
//!
//! Every walk goes through the owner's directory handle ([`disk`](super::disk)), skips symlinks
//! and the server's own files, and keeps no directory open while it descends, so its open files
//! do not grow with the depth.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use cap_std::fs::Dir;
use tokio::time::Instant;

use super::disk::{self, open_dir_no_follow, Item};
use super::error::CloudError;
use super::path::{CloudPath, RESERVED_PREFIX};
use super::tree::{FlatItem, ItemKind};

/// What one walk may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalkBound {
    /// Directory entries read, in all.
    pub entries: usize,
    /// Time.
    pub time: Duration,
}

/// What background work (the rest of a deleted directory's removal, one sweep of the folder)
/// may spend at a time.
pub(crate) const BACKGROUND: WalkBound = WalkBound {
    entries: 1_000_000,
    time: Duration::from_secs(60),
};

/// The size of one tree page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageSize {
    /// Items.
    pub items: usize,
    /// Bytes of the items once encoded (bounded from above).
    pub bytes: usize,
}

/// The most a [`FlatItem`] adds to an answer beyond its path's bytes: the path's length, the
/// kind, the size and the time, each a postcard varint.
pub(crate) const ITEM_OVERHEAD: usize = 32;

/// Why a walk stopped early.
enum Stop {
    /// A bound was met (which one, in words).
    Bound(String),
    /// The disk failed.
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(err: io::Error) -> Self {
        Stop::Io(err)
    }
}

/// A walk's spending.
struct Budget {
    bound: WalkBound,
    entries: usize,
    deadline: Instant,
}

impl Budget {
    fn new(bound: WalkBound) -> Budget {
        Budget {
            bound,
            entries: 0,
            deadline: crate::timer::after(Instant::now(), bound.time),
        }
    }

    /// One entry more read; checks the time every so often (a clock read per entry would cost
    /// more than the entry).
    fn spend(&mut self) -> Result<(), Stop> {
        self.entries += 1;
        if self.entries > self.bound.entries {
            return Err(Stop::Bound(format!(
                "more than {} entries to read",
                self.bound.entries
            )));
        }
        if self.entries.is_multiple_of(256) {
            self.check_time()?;
        }
        Ok(())
    }

    fn check_time(&self) -> Result<(), Stop> {
        if Instant::now() >= self.deadline {
            return Err(Stop::Bound(format!(
                "more than {:?} to walk",
                self.bound.time
            )));
        }
        Ok(())
    }
}

/// An item of a directory, as a walk keeps it.
struct Child {
    name: String,
    is_dir: bool,
    size: u64,
    modified: SystemTime,
}

/// `rel/name` (or `name` under the owner's root).
fn join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// The items of the directory `rel` under `owner` whose cloud path is `cloud`, sorted by name:
/// files and directories only, none of the server's own, none whose path would be over
/// [`MAX_PATH`](super::MAX_PATH). A directory gone meanwhile lists as empty.
fn list(owner: &Dir, rel: &str, cloud: &str, budget: &mut Budget) -> Result<Vec<Child>, Stop> {
    let dir = match open_dir_no_follow(owner, rel) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut children = Vec::new();
    for entry in dir.entries()? {
        budget.spend()?;
        let Ok(entry) = entry else { continue };
        let Ok(name) = entry.file_name().into_string() else {
            continue; // not a name a cloud path can have
        };
        if name.starts_with(RESERVED_PREFIX) || cloud.len() + 1 + name.len() > super::MAX_PATH {
            continue;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_dir() && !kind.is_file() {
            continue; // symlinks (never followed), sockets, devices
        }
        // Gone since it was listed: skipped, as if listed a moment later.
        let Ok(meta) = entry.metadata() else { continue };
        let meta = disk::ItemMeta::of(&meta);
        children.push(Child {
            name,
            is_dir: meta.is_dir,
            size: if meta.is_dir { 0 } else { meta.len },
            modified: meta.modified,
        });
    }
    children.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(children)
}

/// A directory being walked: its items, and the next one to give.
struct Frame {
    cloud: String,
    rel: String,
    children: Vec<Child>,
    next: usize,
}

fn too_large(path: &CloudPath, reason: String) -> CloudError {
    CloudError::TreeTooLarge {
        path: path.to_string(),
        reason,
    }
}

fn stopped(path: &CloudPath, stop: Stop) -> CloudError {
    match stop {
        Stop::Bound(reason) => too_large(path, reason),
        Stop::Io(err) => disk::error(path, err),
    }
}

/// One page of the tree at `item`: its items in pre-order, from the first (the item itself)
/// if `after` is `None`, else from the one after `after` (a path at or under the item); and
/// whether the tree goes on after the page.
pub(crate) fn tree_page(
    item: &Item,
    after: Option<&CloudPath>,
    size: PageSize,
    bound: WalkBound,
) -> Result<(Vec<FlatItem>, bool), CloudError> {
    let base = item.path();
    let cursor: Vec<&str> = match after {
        None => Vec::new(),
        Some(after) if after.is_within(base) => after
            .as_str()
            .get(base.as_str().len()..)
            .unwrap_or_default()
            .split('/')
            .filter(|c| !c.is_empty())
            .collect(),
        Some(after) => {
            return Err(CloudError::BadRequest(format!(
                "the cursor `{after}` is not in the tree of `{base}`"
            )))
        }
    };
    let meta = item.metadata()?;
    let mut items = Vec::new();
    let mut bytes = 0;
    if after.is_none() {
        bytes += base.as_str().len() + ITEM_OVERHEAD;
        items.push(FlatItem {
            path: base.to_string(),
            kind: if meta.is_dir {
                ItemKind::Directory
            } else {
                ItemKind::File
            },
            size: if meta.is_dir { 0 } else { meta.len },
            modified: meta.modified,
        });
    }
    if !meta.is_dir {
        return Ok((items, false));
    }
    let (owner, base_rel) = item.owner_dir();
    let mut budget = Budget::new(bound);
    // A page that has given something ends early at a bound; one that has given nothing cannot.
    let cut = |items: Vec<FlatItem>, stop: Stop| -> Result<(Vec<FlatItem>, bool), CloudError> {
        match stop {
            Stop::Bound(_) if !items.is_empty() => Ok((items, true)),
            stop => Err(stopped(base, stop)),
        }
    };

    // Down the cursor's path to where the last page stopped.
    let mut stack = Vec::new();
    match list(owner, base_rel, base.as_str(), &mut budget) {
        Ok(children) => stack.push(Frame {
            cloud: base.to_string(),
            rel: base_rel.to_owned(),
            children,
            next: 0,
        }),
        Err(stop) => return cut(items, stop),
    }
    for component in cursor {
        let Some(top) = stack.last_mut() else { break };
        match top
            .children
            .binary_search_by(|child| child.name.as_str().cmp(component))
        {
            Ok(at) => {
                top.next = at + 1;
                let child = &top.children[at];
                if !child.is_dir {
                    break;
                }
                let cloud = format!("{}/{}", top.cloud, child.name);
                let rel = join(&top.rel, &child.name);
                match list(owner, &rel, &cloud, &mut budget) {
                    Ok(children) => stack.push(Frame {
                        cloud,
                        rel,
                        children,
                        next: 0,
                    }),
                    Err(stop) => return cut(items, stop),
                }
            }
            // The cursor's item is gone: go on from where it would be.
            Err(at) => {
                top.next = at;
                break;
            }
        }
    }

    while let Some(top) = stack.last_mut() {
        let Some(child) = top.children.get(top.next) else {
            stack.pop();
            continue;
        };
        top.next += 1;
        let path = format!("{}/{}", top.cloud, child.name);
        let weight = path.len() + ITEM_OVERHEAD;
        if items.len() >= size.items || bytes + weight > size.bytes {
            return Ok((items, true));
        }
        let is_dir = child.is_dir;
        let rel = is_dir.then(|| join(&top.rel, &child.name));
        items.push(FlatItem {
            path: path.clone(),
            kind: if is_dir {
                ItemKind::Directory
            } else {
                ItemKind::File
            },
            size: child.size,
            modified: child.modified,
        });
        bytes += weight;
        if items.len().is_multiple_of(1024) {
            if let Err(stop) = budget.check_time() {
                return cut(items, stop);
            }
        }
        if let Some(rel) = rel {
            match list(owner, &rel, &path, &mut budget) {
                Ok(children) => stack.push(Frame {
                    cloud: path,
                    rel,
                    children,
                    next: 0,
                }),
                // The directory was given: the next page lists it afresh.
                Err(stop) => return cut(items, stop),
            }
        }
    }
    Ok((items, false))
}

/// The bytes of the files under the directory at `item` (none of the server's own, no symlink
/// followed); [`CloudError::TreeTooLarge`] past `bound`.
pub(crate) fn directory_size(item: &Item, bound: WalkBound) -> Result<u64, CloudError> {
    let (owner, base_rel) = item.owner_dir();
    let base = item.path();
    let mut budget = Budget::new(bound);
    let mut total = 0u64;
    let mut pending = vec![(base.to_string(), base_rel.to_owned())];
    while let Some((cloud, rel)) = pending.pop() {
        let children = list(owner, &rel, &cloud, &mut budget).map_err(|s| stopped(base, s))?;
        for child in children {
            if child.is_dir {
                pending.push((format!("{cloud}/{}", child.name), join(&rel, &child.name)));
            } else {
                total = total.saturating_add(child.size);
            }
        }
    }
    Ok(total)
}

/// Removes the directory `rel` under `owner` and everything in it, within `bound`; whether it is
/// all gone (`false`: the rest is left for later). Symlinks inside are removed, never followed.
pub(crate) fn remove_tree(owner: &Dir, rel: &Path, bound: WalkBound) -> io::Result<bool> {
    let mut budget = Budget::new(bound);
    let mut pending: Vec<PathBuf> = vec![rel.to_path_buf()];
    while let Some(top) = pending.last().cloned() {
        let dir = match open_dir_no_follow_path(owner, &top) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                pending.pop();
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut deeper = None;
        for entry in dir.entries()? {
            if budget.spend().is_err() {
                return Ok(false);
            }
            let entry = entry?;
            let name = entry.file_name();
            if entry.file_type()?.is_dir() {
                deeper = Some(top.join(&name));
                break;
            }
            match dir.remove_file(&name) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        match deeper {
            Some(child) => pending.push(child),
            None => {
                match owner.remove_dir(&top) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                pending.pop();
            }
        }
        if budget.check_time().is_err() {
            return Ok(pending.is_empty());
        }
    }
    Ok(true)
}

/// [`open_dir_no_follow`] for a path that may hold names that are not UTF-8.
pub(crate) fn open_dir_no_follow_path(owner: &Dir, rel: &Path) -> io::Result<Dir> {
    match rel.to_str() {
        Some(rel) => open_dir_no_follow(owner, rel),
        None => {
            // Only trash can hold such names; nothing a client names goes through here.
            let mut options = cap_std::fs::OpenOptions::new();
            cap_std::fs::OpenOptionsExt::custom_flags(
                options.read(true),
                i32::try_from(
                    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::DIRECTORY).bits(),
                )
                .unwrap_or(0),
            );
            Ok(Dir::from_std_file(
                owner.open_with(rel, &options)?.into_std(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::disk::Disk;

    fn path(raw: &str) -> CloudPath {
        CloudPath::parse(raw).unwrap()
    }

    fn bound() -> WalkBound {
        WalkBound {
            entries: 10_000,
            time: Duration::from_secs(5),
        }
    }

    /// jack/{a/{x, y/{z}}, b, c/} plus what no tree shows.
    fn jack() -> (tempfile::TempDir, Disk) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cloud");
        std::fs::create_dir_all(root.join("jack/a/y")).unwrap();
        std::fs::create_dir_all(root.join("jack/c")).unwrap();
        std::fs::write(root.join("jack/a/x"), b"xx").unwrap();
        std::fs::write(root.join("jack/a/y/z"), b"zzz").unwrap();
        std::fs::write(root.join("jack/b"), b"b").unwrap();
        std::fs::write(root.join("jack/a/.fluxon-part-1"), b"hidden").unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("jack/a/link")).unwrap();
        let disk = Disk::open(&root).unwrap();
        (tmp, disk)
    }

    fn paths(items: &[FlatItem]) -> Vec<&str> {
        items.iter().map(|i| i.path.as_str()).collect()
    }

    const ALL: [&str; 7] = [
        "jack",
        "jack/a",
        "jack/a/x",
        "jack/a/y",
        "jack/a/y/z",
        "jack/b",
        "jack/c",
    ];

    #[test]
    fn pages_of_any_size_give_the_whole_tree_in_order() {
        let (_tmp, disk) = jack();
        let item = disk.at(&path("jack")).unwrap();
        let big = PageSize {
            items: 100,
            bytes: 1 << 20,
        };
        let (items, more) = tree_page(&item, None, big, bound()).unwrap();
        assert_eq!(paths(&items), ALL);
        assert!(!more);
        assert_eq!(items[4].size, 3);
        for n in 1..=7 {
            let size = PageSize {
                items: n,
                bytes: 1 << 20,
            };
            let mut all = Vec::new();
            let mut after = None;
            for _ in 0..10 {
                let (items, more) = tree_page(&item, after.as_ref(), size, bound()).unwrap();
                assert!(items.len() <= n);
                after = items.last().map(|i| path(&i.path));
                all.extend(items);
                if !more {
                    break;
                }
            }
            assert_eq!(paths(&all), ALL, "pages of {n}");
        }
        // A byte cap cuts pages as well.
        let tight = PageSize {
            items: 100,
            bytes: 2 * (ITEM_OVERHEAD + 8),
        };
        let (items, more) = tree_page(&item, None, tight, bound()).unwrap();
        assert_eq!(paths(&items), ["jack", "jack/a"]);
        assert!(more);
        // A cursor whose item has gone: the walk goes on from where it was.
        let (items, _) = tree_page(&item, Some(&path("jack/a/w")), big, bound()).unwrap();
        assert_eq!(paths(&items), ALL[2..]);
        let (items, _) = tree_page(&item, Some(&path("jack/a/y/zz")), big, bound()).unwrap();
        assert_eq!(paths(&items), ["jack/b", "jack/c"]);
        let err = tree_page(&item, Some(&path("jill/x")), big, bound()).unwrap_err();
        assert!(matches!(err, CloudError::BadRequest(_)), "{err}");
    }

    #[test]
    fn walks_stop_at_their_bounds() {
        let (_tmp, disk) = jack();
        let item = disk.at(&path("jack")).unwrap();
        let few = WalkBound {
            entries: 3,
            time: Duration::from_secs(5),
        };
        let page = PageSize {
            items: 100,
            bytes: 1 << 20,
        };
        // The root's three entries fit; listing `a` does not: the page ends after `a`.
        let (items, more) = tree_page(&item, None, page, few).unwrap();
        assert_eq!(paths(&items), ["jack", "jack/a"]);
        assert!(more);
        let one = WalkBound {
            entries: 1,
            time: Duration::from_secs(5),
        };
        let err = tree_page(&item, Some(&path("jack")), page, one).unwrap_err();
        assert!(matches!(err, CloudError::TreeTooLarge { .. }), "{err}");
        assert_eq!(directory_size(&item, bound()).unwrap(), 6);
        let err = directory_size(&item, few).unwrap_err();
        assert!(err.to_string().contains("more than 3 entries"), "{err}");
    }

    #[test]
    fn removal_goes_in_bounded_steps_and_never_through_symlinks() {
        let (tmp, disk) = jack();
        let item = disk.at(&path("jack")).unwrap();
        let (owner, _) = item.owner_dir();
        let few = WalkBound {
            entries: 2,
            time: Duration::from_secs(5),
        };
        let mut steps = 0;
        while !remove_tree(owner, Path::new("a"), few).unwrap() {
            steps += 1;
            assert!(steps < 20);
        }
        assert!(steps > 0, "two entries at a time take more than one step");
        assert!(!tmp.path().join("cloud/jack/a").exists());
        assert!(tmp.path().join("cloud/jack/b").exists());
        assert!(tmp.path().exists(), "the link's target stays");
    }
}
