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

/// One item of a tree as it travels: the tree flattened in pre-order (every directory before what
/// is in it), so that decoding it never recurses, whatever a peer sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FlatItem {
    pub path: String,
    pub kind: ItemKind,
    pub size: u64,
    pub modified: SystemTime,
}

/// A tree rebuilt from its pre-order items as they come (page after page), without recursion:
/// the directories from the root to the last item stay open, every other node is done.
#[derive(Debug, Default)]
pub(crate) struct TreeBuilder {
    open: Vec<TreeNode>,
    count: usize,
}

impl TreeBuilder {
    fn node(item: FlatItem, name: &str) -> TreeNode {
        TreeNode {
            name: name.to_owned(),
            path: item.path,
            kind: item.kind,
            size: item.size,
            modified: item.modified,
            children: Vec::new(),
        }
    }

    /// Closes the last open node into its parent.
    fn close(&mut self) -> Option<()> {
        let done = self.open.pop()?;
        let parent = self.open.last_mut()?;
        (parent.kind == ItemKind::Directory).then_some(())?;
        parent.children.push(done);
        Some(())
    }

    /// Items taken so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// The last item taken (where the next page starts after).
    pub fn last_path(&self) -> Option<&str> {
        self.open.last().map(|node| node.path.as_str())
    }

    /// Takes the next item; `None` if it does not continue the tree.
    pub fn push(&mut self, item: FlatItem) -> Option<()> {
        if item.path.len() > super::MAX_PATH {
            return None;
        }
        self.count += 1;
        if self.open.is_empty() {
            if self.count > 1 {
                return None;
            }
            let name = item.path.rsplit('/').next().unwrap_or_default().to_owned();
            self.open.push(Self::node(item, &name));
            return Some(());
        }
        let (parent, name) = item.path.rsplit_once('/')?;
        let name = name.to_owned();
        while self.open.last()?.path != parent {
            self.close()?;
        }
        // The parent is still open: at the bottom, only the root can be a parent without one.
        (self.open.last()?.kind == ItemKind::Directory).then_some(())?;
        self.open.push(Self::node(item, &name));
        Some(())
    }

    /// The tree; `None` if no item came.
    pub fn finish(mut self) -> Option<TreeNode> {
        while self.open.len() > 1 {
            self.close()?;
        }
        self.open.pop()
    }
}

impl TreeNode {
    /// The tree in pre-order, as the endpoint sends it.
    #[cfg(test)]
    pub(crate) fn flatten(&self) -> Vec<FlatItem> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            out.push(FlatItem {
                path: node.path.clone(),
                kind: node.kind,
                size: node.size,
                modified: node.modified,
            });
            stack.extend(node.children.iter().rev());
        }
        out
    }

    /// Rebuilds a tree from its pre-order items, without recursion; `None` if they do not form
    /// one (an item whose parent is not an open directory before it, a path over
    /// [`MAX_PATH`](super::MAX_PATH), no items).
    #[cfg(test)]
    pub(crate) fn from_flat(items: Vec<FlatItem>) -> Option<TreeNode> {
        let mut builder = TreeBuilder::default();
        for item in items {
            builder.push(item)?;
        }
        builder.finish()
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn item(path: &str, kind: ItemKind) -> FlatItem {
        FlatItem {
            path: path.into(),
            kind,
            size: 1,
            modified: SystemTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn trees_travel_flat_and_come_back_the_same() {
        use ItemKind::*;
        let flat = vec![
            item("jack", Directory),
            item("jack/a", Directory),
            item("jack/a/x.txt", File),
            item("jack/a/y", Directory),
            item("jack/a/y/z", File),
            item("jack/b.txt", File),
        ];
        let tree = TreeNode::from_flat(flat.clone()).unwrap();
        assert_eq!(tree.files(), ["jack/a/x.txt", "jack/a/y/z", "jack/b.txt"]);
        assert_eq!(tree.find("jack/a/y").unwrap().name, "y");
        assert_eq!(tree.flatten(), flat);
    }

    #[test]
    fn what_does_not_form_a_tree_is_refused_and_depth_is_bounded() {
        use ItemKind::*;
        for bad in [
            vec![],
            vec![item("jack", Directory), item("jill/x", File)],
            vec![
                item("jack", Directory),
                item("jack/a", File),
                item("jack/a/b", File),
            ],
            vec![item("jack", File), item("jack/x", File)],
            vec![item("jack", Directory), item("jack", File)],
        ] {
            assert!(TreeNode::from_flat(bad.clone()).is_none(), "{bad:?}");
        }
        // A hostile peer's very deep tree: refused by the path limit, not by the stack.
        let mut deep = vec![item("a", Directory)];
        let mut path = String::from("a");
        for _ in 0..3_000 {
            path.push_str("/a");
            deep.push(item(&path, Directory));
        }
        assert!(TreeNode::from_flat(deep).is_none());
    }
}
