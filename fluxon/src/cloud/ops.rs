//! The cloud operations on the endpoint's side: each checks the grant, the path and the
//! permission, then changes the disk and the metadata together, and is written to the audit log
//! whatever its outcome. Writing and reading files are in [`upload`](super::upload) and
//! [`download`](super::download).

use std::fs::Metadata;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::wire::{BoxRead, BoxWrite};
use tokio::io::BufReader;

use super::access::Permission;
use super::error::CloudError;
use super::grant::GrantError;
use super::metadata;
use super::path::{CloudPath, RESERVED_PREFIX};
use super::protocol::{Request, Response};
use super::server::Endpoint;
use super::tree::{ItemKind, Stat, TreeNode};
use super::{download, upload};
use crate::server::UserId;
use crate::wire::SessionTokenBytes;

/// The most items a tree (or a directory's size) walks before giving up.
const MAX_TREE_ITEMS: usize = 100_000;

/// A failed operation, and whether the peer can still be told why (not once a file's raw bytes
/// have started flowing to it).
pub(crate) struct Failed {
    pub error: CloudError,
    pub tell_peer: bool,
}

impl From<CloudError> for Failed {
    fn from(error: CloudError) -> Self {
        Failed {
            error,
            tell_peer: true,
        }
    }
}

impl From<super::grant::GrantError> for Failed {
    fn from(error: super::grant::GrantError) -> Self {
        CloudError::from(error).into()
    }
}

impl From<super::path::PathError> for Failed {
    fn from(error: super::path::PathError) -> Self {
        CloudError::from(error).into()
    }
}

/// Who asked, for the audit log.
#[derive(Default)]
pub(crate) struct Who {
    user: Option<UserId>,
    session: String,
}

/// Runs one request and writes its audit entry.
pub(crate) async fn handle(
    ep: &Endpoint,
    peer: SocketAddr,
    presented: SessionTokenBytes,
    request: Request,
    reader: &mut BufReader<BoxRead>,
    writer: &mut BoxWrite,
) -> Result<Response, Failed> {
    let operation = request.operation();
    let raw_path = request.path().to_owned();
    let mut who = Who::default();
    let mut bytes = 0u64;
    let outcome = run(ep, presented, request, reader, writer, &mut who, &mut bytes).await;
    let text = match &outcome {
        Ok(_) => "ok".to_owned(),
        Err(failed) => failed.error.to_string(),
    };
    tracing::debug!(%peer, ?operation, path = %raw_path, outcome = %text, bytes, "cloud operation");
    let db = ep.cloud.database();
    let name = format!("{operation:?}");
    let audit = db
        .transaction_with(move |tx| {
            metadata::record_audit(tx, who.user, &who.session, &name, &raw_path, &text, bytes)
        })
        .await;
    if let Err(err) = audit {
        tracing::warn!(%err, "cannot write the cloud audit log");
    }
    outcome
}

async fn run(
    ep: &Endpoint,
    presented: SessionTokenBytes,
    request: Request,
    reader: &mut BufReader<BoxRead>,
    writer: &mut BoxWrite,
    who: &mut Who,
    bytes: &mut u64,
) -> Result<Response, Failed> {
    let operation = request.operation();
    let path = CloudPath::parse(request.path())?;
    let grant = request.grant();
    let (session, user) = ep.server.verify_grant(grant, operation, &path)?;
    if ep.server.verify_session_token(presented) != Some(session) {
        return Err(GrantError::OtherSession.into());
    }
    who.user = user;
    who.session = session.to_string();
    let disk = path.resolve(ep.cloud.folder())?;
    match request {
        Request::CreateDirectory { .. } => {
            create_directory(ep, user, &path, disk).await?;
            Ok(Response::Done)
        }
        Request::WriteFile {
            size,
            resume,
            ref grant,
            ..
        } => {
            let write = upload::Write {
                path: &path,
                disk,
                size,
                resume,
                max_size: grant.max_size(),
            };
            let stat = upload::write_file(ep, user, write, reader, writer, bytes).await?;
            Ok(Response::Stat(stat))
        }
        Request::ReadFile { offset, .. } => {
            download::read_file(ep, user, &path, disk, offset, writer, bytes).await?;
            Ok(Response::Done)
        }
        Request::DeleteItem { .. } => {
            *bytes = delete_item(ep, user, &path, disk).await?;
            Ok(Response::Done)
        }
        Request::ReadTree { .. } => {
            ep.cloud
                .require_path(user, path.clone(), Permission::READ_TREE_DIRECTORY)
                .await?;
            let tree = blocking(move || tree(&disk, &path)).await?;
            Ok(Response::Tree(tree.flatten()))
        }
        Request::Stat { .. } => Ok(Response::Stat(stat(ep, user, &path, disk).await?)),
    }
}

/// Runs disk work off the runtime's threads.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, CloudError> + Send + 'static,
) -> Result<T, CloudError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| CloudError::Io(std::io::Error::other(e.to_string())))?
}

/// What is on disk at `disk`, with "nothing" as [`CloudError::NotFound`].
pub(crate) async fn existing(disk: &Path, path: &CloudPath) -> Result<Metadata, CloudError> {
    let owned = disk.to_path_buf();
    let found = tokio::task::spawn_blocking(move || std::fs::symlink_metadata(owned))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r);
    match found {
        Ok(meta) => Ok(meta),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(CloudError::NotFound(path.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

async fn create_directory(
    ep: &Endpoint,
    user: Option<UserId>,
    path: &CloudPath,
    disk: PathBuf,
) -> Result<(), CloudError> {
    let parent = path.parent().ok_or_else(|| {
        CloudError::BadRequest("an owner's root directory is made with create_owner".into())
    })?;
    ep.cloud
        .require_path(user, parent, Permission::CREATE_SUB_DIRECTORY)
        .await?;
    let path = path.clone();
    ep.cloud
        .database()
        .transaction_with(move |tx| {
            metadata::record_directory(tx, &path)?;
            // The last step, so a failure here rolls the row back.
            std::fs::create_dir(&disk).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => CloudError::AlreadyExists(path.to_string()),
                _ => e.into(),
            })
        })
        .await
}

/// Deletes a file, or a directory with everything under it; returns the bytes freed. The item is
/// renamed out of sight in the same transaction that removes its rows, then removed from disk.
async fn delete_item(
    ep: &Endpoint,
    user: Option<UserId>,
    path: &CloudPath,
    disk: PathBuf,
) -> Result<u64, CloudError> {
    let meta = existing(&disk, path).await?;
    let needed = if meta.is_dir() {
        Permission::DELETE_SUB_DIRECTORY
    } else {
        Permission::DELETE_FILE
    };
    ep.cloud.require_path(user, path.clone(), needed).await?;
    let parent = disk
        .parent()
        .ok_or_else(|| CloudError::Forbidden {
            permission: needed.to_string(),
            path: path.to_string(),
        })?
        .to_path_buf();
    let trash = parent.join(format!("{RESERVED_PREFIX}trash-{}", random_hex()?));
    let moved = trash.clone();
    let path = path.clone();
    let freed = ep
        .cloud
        .database()
        .transaction_with(move |tx| {
            let freed = metadata::record_delete(tx, &path)?;
            std::fs::rename(&disk, &moved)?;
            Ok::<_, CloudError>(freed)
        })
        .await?;
    let is_dir = meta.is_dir();
    blocking(move || {
        if is_dir {
            std::fs::remove_dir_all(&trash)?;
        } else {
            std::fs::remove_file(&trash)?;
        }
        Ok(())
    })
    .await
    .unwrap_or_else(|err| {
        // Hidden and swept later; the delete itself is done.
        tracing::warn!(%err, "cannot remove a deleted item's remains yet");
    });
    Ok(freed)
}

pub(crate) fn random_hex() -> Result<String, CloudError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| CloudError::Io(std::io::Error::other(e.to_string())))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn stat(
    ep: &Endpoint,
    user: Option<UserId>,
    path: &CloudPath,
    disk: PathBuf,
) -> Result<Stat, CloudError> {
    let meta = existing(&disk, path).await?;
    let needed = if meta.is_dir() {
        Permission::READ_TREE_DIRECTORY
    } else {
        Permission::READ_FILE
    };
    ep.cloud.require_path(user, path.clone(), needed).await?;
    let recorded = if meta.is_dir() {
        None
    } else {
        recorded_hash(ep, path, meta.len()).await?
    };
    let path = path.clone();
    blocking(move || {
        if meta.is_dir() {
            let size = total_size(&tree(&disk, &path)?);
            return Ok(stat_of(&path, &meta, size, None));
        }
        // A file the metadata does not know as it is (changed behind the server's back) is hashed.
        let hash = match recorded {
            Some(hash) => hash,
            None => {
                let mut file = std::fs::File::open(&disk)?;
                super::stream::hash_prefix(&mut file, meta.len())?.finalize()
            }
        };
        Ok(stat_of(&path, &meta, meta.len(), Some(hash)))
    })
    .await
}

/// The BLAKE3 the metadata records for the file at `path`, if the record is for a file of the
/// `size` bytes on disk now.
pub(crate) async fn recorded_hash(
    ep: &Endpoint,
    path: &CloudPath,
    size: u64,
) -> Result<Option<blake3::Hash>, CloudError> {
    let recorded = path.clone();
    let row = metadata::read_metadata(ep.cloud.database(), move |conn| {
        metadata::file_row(conn, &recorded)
    })
    .await?;
    Ok(row
        .filter(|row| u64::try_from(row.size).ok() == Some(size))
        .and_then(|row| blake3::Hash::from_hex(&row.blake3).ok()))
}

/// A [`Stat`] from what the disk says.
pub(crate) fn stat_of(
    path: &CloudPath,
    meta: &Metadata,
    size: u64,
    hash: Option<blake3::Hash>,
) -> Stat {
    let is_dir = meta.is_dir();
    let name = path.as_str().rsplit('/').next().unwrap_or_default();
    Stat {
        path: path.to_string(),
        kind: if is_dir {
            ItemKind::Directory
        } else {
            ItemKind::File
        },
        size,
        blake3: hash.map(|h| h.to_hex().to_string()),
        content_type: (!is_dir).then(|| metadata::kind_of(name).to_owned()),
        created: meta.created().ok(),
        modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
    }
}

/// The tree at `disk`, walked without following symlinks and without the server's own files.
fn tree(disk: &Path, path: &CloudPath) -> Result<TreeNode, CloudError> {
    let mut budget = MAX_TREE_ITEMS;
    let meta = std::fs::symlink_metadata(disk)?;
    let name = path.as_str().rsplit('/').next().unwrap_or_default();
    walk(disk, name, path.as_str(), &meta, &mut budget)
}

fn walk(
    disk: &Path,
    name: &str,
    path: &str,
    meta: &Metadata,
    budget: &mut usize,
) -> Result<TreeNode, CloudError> {
    *budget = budget.checked_sub(1).ok_or_else(|| {
        CloudError::BadRequest(format!("more than {MAX_TREE_ITEMS} items under `{path}`"))
    })?;
    let mut node = TreeNode {
        name: name.to_owned(),
        path: path.to_owned(),
        kind: ItemKind::File,
        size: meta.len(),
        modified: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
        children: Vec::new(),
    };
    if meta.is_dir() {
        node.kind = ItemKind::Directory;
        node.size = 0;
        for entry in std::fs::read_dir(disk)? {
            let entry = entry?;
            let Some(child) = entry.file_name().to_str().map(str::to_owned) else {
                continue; // not a name a cloud path can have
            };
            let meta = entry.metadata()?;
            if child.starts_with(RESERVED_PREFIX) || meta.file_type().is_symlink() {
                continue;
            }
            let child_path = format!("{path}/{child}");
            if child_path.len() > super::MAX_PATH {
                continue; // deeper than any cloud path reaches (made behind the server's back)
            }
            node.children
                .push(walk(&entry.path(), &child, &child_path, &meta, budget)?);
        }
        node.children.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(node)
}

fn total_size(node: &TreeNode) -> u64 {
    node.size + node.children.iter().map(total_size).sum::<u64>()
}
