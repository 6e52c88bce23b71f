//! Cloud paths: what a client may name, normalized (no `..`, no absolute paths, no NUL or
//! backslash, no name of the server's own). The text is all this module checks: on disk the
//! endpoint resolves every path inside a directory handle of the owner's root
//! ([`disk`](super::disk)), where no symlink can lead out whatever changes between a check and an
//! operation.

use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Empty, or only slashes.
    #[error("empty path")]
    Empty,
    /// A `..` component.
    #[error("`..` is not allowed in a cloud path")]
    ParentDirectory,
    /// Starts with `/` (or a drive letter).
    #[error("absolute paths are not allowed; cloud paths are relative to the cloud folder")]
    Absolute,
    /// Contains a NUL byte.
    #[error("NUL bytes are not allowed in a cloud path")]
    Nul,
    /// Contains a backslash.
    #[error("backslashes are not allowed; separate components with `/`")]
    Backslash,
    /// A component that is `.`, or a control character.
    #[error("invalid path component `{0}`")]
    InvalidComponent(String),
    /// Longer than the limit.
    #[error("the path is longer than {0} bytes")]
    TooLong(usize),
    /// On disk, it leads out of the cloud folder (through a symlink).
    #[error("the path leads out of the cloud folder")]
    Escapes,
    /// The file system could not be asked.
    #[error("cannot check the path: {0}")]
    Io(String),
}

/// File names starting with this are the server's own (partial uploads, deletions in progress):
/// no client path may name them, and trees never show them.
pub(crate) const RESERVED_PREFIX: &str = ".fluxon-";

/// The longest cloud path accepted, in bytes.
pub const MAX_PATH: usize = 4096;

/// A checked, normalized cloud path: `owner/dir/file`, components separated by single `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloudPath(String);

impl CloudPath {
    /// Checks and normalizes `raw` (repeated and trailing slashes collapse; everything else
    /// questionable is refused).
    pub fn parse(raw: &str) -> Result<CloudPath, PathError> {
        if raw.len() > MAX_PATH {
            return Err(PathError::TooLong(MAX_PATH));
        }
        if raw.contains('\0') {
            return Err(PathError::Nul);
        }
        if raw.contains('\\') {
            return Err(PathError::Backslash);
        }
        if raw.starts_with('/') || raw.as_bytes().get(1) == Some(&b':') {
            return Err(PathError::Absolute);
        }
        let mut parts = Vec::new();
        for part in raw.split('/').filter(|p| !p.is_empty()) {
            match part {
                ".." => return Err(PathError::ParentDirectory),
                "." => return Err(PathError::InvalidComponent(part.to_owned())),
                // Names the server keeps for its own partial uploads and trash.
                _ if part.starts_with(RESERVED_PREFIX) => {
                    return Err(PathError::InvalidComponent(part.to_owned()))
                }
                _ if part.chars().any(char::is_control) => {
                    return Err(PathError::InvalidComponent(
                        part.escape_default().to_string(),
                    ))
                }
                _ => parts.push(part),
            }
        }
        if parts.is_empty() {
            return Err(PathError::Empty);
        }
        Ok(CloudPath(parts.join("/")))
    }

    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first component: the owner whose root this path is in.
    pub fn owner(&self) -> &str {
        self.0.split('/').next().unwrap_or(&self.0)
    }

    /// Whether `self` is `other` or lies under it.
    pub fn is_within(&self, other: &CloudPath) -> bool {
        self.0 == other.0 || self.0.starts_with(&format!("{}/", other.0))
    }

    /// The path's parent, if it has one.
    pub fn parent(&self) -> Option<CloudPath> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| CloudPath(parent.to_owned()))
    }

    /// The file on disk under `root` (which must exist), refusing a path whose existing part
    /// leads out of `root` through a symlink.
    ///
    /// A check of how things are now, not a guarantee: the file system can change between it
    /// and whatever is done with the result. The cloud endpoint does not use it; it resolves
    /// every path inside a directory handle instead.
    pub fn resolve(&self, root: &Path) -> Result<PathBuf, PathError> {
        let io = |e: std::io::Error| PathError::Io(e.to_string());
        let root = root.canonicalize().map_err(io)?;
        let mut resolved = root.clone();
        for part in self.0.split('/') {
            resolved.push(part);
            match std::fs::symlink_metadata(&resolved) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let target = resolved.canonicalize().map_err(io)?;
                    if !target.starts_with(&root) {
                        return Err(PathError::Escapes);
                    }
                    resolved = target;
                }
                Ok(_) => {}
                // The rest does not exist yet: it will be created under what has been checked.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(e)),
            }
        }
        let inside = resolved
            .components()
            .all(|c| !matches!(c, Component::ParentDir))
            && resolved.starts_with(&root);
        if inside {
            Ok(resolved)
        } else {
            Err(PathError::Escapes)
        }
    }
}

impl std::fmt::Display for CloudPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_normalize() {
        assert_eq!(
            CloudPath::parse("jack/docs/a.txt").unwrap().as_str(),
            "jack/docs/a.txt"
        );
        assert_eq!(
            CloudPath::parse("jack//docs///a.txt/").unwrap().as_str(),
            "jack/docs/a.txt"
        );
        assert_eq!(
            CloudPath::parse("jack/ünï cødé ✓.txt").unwrap().owner(),
            "jack"
        );
        let docs = CloudPath::parse("jack/docs").unwrap();
        assert!(CloudPath::parse("jack/docs/a").unwrap().is_within(&docs));
        assert!(!CloudPath::parse("jack/docs2/a").unwrap().is_within(&docs));
        assert_eq!(
            CloudPath::parse("jack/docs/a").unwrap().parent(),
            Some(docs)
        );
    }

    #[test]
    fn every_kind_of_escape_is_refused() {
        for (raw, expected) in [
            ("", PathError::Empty),
            ("///", PathError::Absolute),
            ("jack/../jill/x", PathError::ParentDirectory),
            ("..", PathError::ParentDirectory),
            ("jack/docs/..", PathError::ParentDirectory),
            ("/etc/passwd", PathError::Absolute),
            ("C:/Windows", PathError::Absolute),
            ("jack/a\0b", PathError::Nul),
            ("jack\\..\\jill", PathError::Backslash),
            ("jack/./x", PathError::InvalidComponent(".".into())),
            (
                "jack/.fluxon-part-1",
                PathError::InvalidComponent(".fluxon-part-1".into()),
            ),
        ] {
            assert_eq!(CloudPath::parse(raw).unwrap_err(), expected, "{raw:?}");
        }
        assert!(matches!(
            CloudPath::parse("a\u{7}b"),
            Err(PathError::InvalidComponent(_))
        ));
        assert!(matches!(
            CloudPath::parse(&"a".repeat(5000)),
            Err(PathError::TooLong(_))
        ));
    }

    #[test]
    fn resolving_stays_inside_and_refuses_symlinks_out() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cloud");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("jack/docs")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let inside = CloudPath::parse("jack/docs/new.txt")
            .unwrap()
            .resolve(&root)
            .unwrap();
        assert!(inside.starts_with(root.canonicalize().unwrap()));

        // Made behind the server's back: a link from inside the cloud folder to outside it.
        std::os::unix::fs::symlink(&outside, root.join("jack/escape")).unwrap();
        let err = CloudPath::parse("jack/escape/secret.txt")
            .unwrap()
            .resolve(&root)
            .unwrap_err();
        assert_eq!(err, PathError::Escapes);
        // A link that stays inside is fine.
        std::os::unix::fs::symlink(root.join("jack/docs"), root.join("jack/alias")).unwrap();
        assert!(CloudPath::parse("jack/alias/x")
            .unwrap()
            .resolve(&root)
            .is_ok());
    }
}
