//! What the cloud endpoint reports about items: [`Stat`] for one, [`TreeNode`] for a directory and
//! everything under it.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A file or a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ItemKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
}

/// One item's size, hash, type and times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stat {
    /// Its normalized cloud path.
    pub path: String,
    /// File or directory.
    pub kind: ItemKind,
    /// Bytes (a file's length; the total of the files under a directory).
    pub size: u64,
    /// A file's BLAKE3, in hex; `None` for a directory.
    pub blake3: Option<String>,
    /// A file's content type guessed from its name (`text/plain`, ...); `None` for a directory.
    pub content_type: Option<String>,
    /// When it was created, where the file system records it.
    pub created: Option<SystemTime>,
    /// When it was last changed.
    pub modified: SystemTime,
}

/// A directory's tree: each node is an item, a directory's children sorted by name. The server's
/// own partial uploads never appear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeNode {
    /// The last component of its path.
    pub name: String,
    /// Its normalized cloud path.
    pub path: String,
    /// File or directory.
    pub kind: ItemKind,
    /// A file's length; 0 for a directory.
    pub size: u64,
    /// When it was last changed.
    pub modified: SystemTime,
    /// A directory's items; empty for a file.
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    /// Every file's path under this node (itself, if it is a file), depth first in name order.
    pub fn files(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_files(&mut out);
        out
    }

    fn collect_files<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self.kind {
            ItemKind::File => out.push(&self.path),
            ItemKind::Directory => self.children.iter().for_each(|c| c.collect_files(out)),
        }
    }

    /// The node at `path` under (or at) this one.
    pub fn find(&self, path: &str) -> Option<&TreeNode> {
        if self.path == path {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(path))
    }
}
