//! The cloud operations on the endpoint's side. Each request is first authorized (its path
//! parsed, its grant verified, its session token checked): one that is not costs the database
//! nothing ([`unauthorized`](super::unauthorized)). An authorized one checks the permission, then
//! changes the disk (through the owner's directory handle, [`disk`](super::disk)) and the
//! metadata together, and is written to the audit log whatever its outcome. Writing and reading
//! files are in [`upload`](super::upload) and [`download`](super::download); walks of the disk,
//! each bounded, in [`walk`](super::walk).

use std::net::SocketAddr;

use crate::wire::{BoxRead, BoxWrite};
use tokio::io::BufReader;

use super::access::Permission;
use super::disk::{Item, ItemMeta};
use super::error::CloudError;
use super::grant::GrantError;
use super::metadata;
use super::path::{CloudPath, RESERVED_PREFIX};
use super::protocol::{Request, Response};
use super::server::Endpoint;
use super::tree::{ItemKind, Stat};
use super::walk::{self, WalkBound};
use super::{download, upload};
use crate::admission::Counters;
use crate::auth::SessionId;
use crate::auth::UserId;
use crate::wire::SessionTokenBytes;

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

/// An authorized request: its path, and who asked.
struct Authorized {
    path: CloudPath,
    session: SessionId,
    user: Option<UserId>,
}

/// The path, grant and token checks, in memory: nothing is read from or written to the
/// database before they pass.
fn authorize(
    ep: &Endpoint,
    presented: SessionTokenBytes,
    request: &Request,
) -> Result<Authorized, CloudError> {
    let path = CloudPath::parse(request.path())?;
    let (session, user) = super::check_grant(
        &ep.grant_key,
        &*ep.sessions,
        request.grant(),
        request.operation(),
        &path,
    )?;
    let token = crate::auth::SessionToken::from_wire(presented);
    if ep.sessions.session_of(&token) != Some(session) {
        return Err(GrantError::OtherSession.into());
    }
    Ok(Authorized {
        path,
        session,
        user,
    })
}

/// Runs one request: refused before authorization without a trace in the database, else run
/// and written to the audit log.
pub(crate) async fn handle(
    ep: &Endpoint,
    peer: SocketAddr,
    presented: SessionTokenBytes,
    request: Request,
    reader: &mut BufReader<BoxRead>,
    writer: &mut BoxWrite,
) -> Result<Response, Failed> {
    let operation = request.operation();
    // A session made on another node of a cluster is looked up first (no-op on one node).
    ep.sessions
        .look_up(&crate::auth::SessionToken::from_wire(presented))
        .await;
    let who = match authorize(ep, presented, &request) {
        Ok(who) => who,
        Err(error) => {
            Counters::bump(&ep.counters().cloud_grants_refused);
            ep.unauthorized.note(peer, operation, &error);
            return Err(error.into());
        }
    };
    let mut bytes = 0u64;
    let outcome = run(ep, who.user, &who.path, request, reader, writer, &mut bytes).await;
    let text = match &outcome {
        Ok(_) => "ok".to_owned(),
        Err(failed) => failed.error.to_string(),
    };
    tracing::debug!(%peer, ?operation, path = %who.path, outcome = %text, bytes, "cloud operation");
    let name = format!("{operation:?}");
    let (user, session, path) = (who.user, who.session.to_string(), who.path.to_string());
    let audit = ep
        .cloud
        .database()
        .transaction_with(move |tx| {
            metadata::record_audit(tx, user, &session, &name, &path, &text, bytes)
        })
        .await;
    if let Err(err) = audit {
        tracing::warn!(%err, "cannot write the cloud audit log");
    }
    outcome
}

async fn run(
    ep: &Endpoint,
    user: Option<UserId>,
    path: &CloudPath,
    request: Request,
    reader: &mut BufReader<BoxRead>,
    writer: &mut BoxWrite,
    bytes: &mut u64,
) -> Result<Response, Failed> {
    match request {
        Request::CreateDirectory { .. } => {
            create_directory(ep, user, path).await?;
            Ok(Response::Done)
        }
        Request::WriteFile {
            size,
            resume,
            ref grant,
            ..
        } => {
            let write = upload::Write {
                path,
                size,
                resume,
                max_size: grant.max_size(),
            };
            let stat = upload::write_file(ep, user, write, reader, writer, bytes).await?;
            Ok(Response::Stat(stat))
        }
        Request::ReadFile { offset, .. } => {
            download::read_file(ep, user, path, offset, writer, bytes).await?;
            Ok(Response::Done)
        }
        Request::DeleteItem { .. } => {
            *bytes = delete_item(ep, user, path).await?;
            Ok(Response::Done)
        }
        Request::ReadTree { after, .. } => {
            ep.cloud
                .require_path(user, path.clone(), Permission::READ_TREE_DIRECTORY)
                .await?;
            let after = after.as_deref().map(CloudPath::parse).transpose()?;
            let item = item_at(ep, path).await?;
            let (size, bound) = (ep.settings.tree_page, ep.settings.walk);
            let (items, more) =
                blocking(move || walk::tree_page(&item, after.as_ref(), size, bound)).await?;
            Ok(Response::Tree { items, more })
        }
        Request::Stat { .. } => Ok(Response::Stat(stat(ep, user, path).await?)),
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

/// The item at `path`, its owner's root opened.
pub(crate) async fn item_at(ep: &Endpoint, path: &CloudPath) -> Result<Item, CloudError> {
    let (disk, path) = (ep.cloud.disk().clone(), path.clone());
    blocking(move || disk.at(&path)).await
}

/// What is on disk at `item`, with "nothing" as [`CloudError::NotFound`].
pub(crate) async fn existing(item: &Item) -> Result<ItemMeta, CloudError> {
    let item = item.clone();
    blocking(move || item.metadata()).await
}

async fn create_directory(
    ep: &Endpoint,
    user: Option<UserId>,
    path: &CloudPath,
) -> Result<(), CloudError> {
    let parent = path.parent().ok_or_else(|| {
        CloudError::BadRequest("an owner's root directory is made with create_owner".into())
    })?;
    ep.cloud
        .require_path(user, parent, Permission::CREATE_SUB_DIRECTORY)
        .await?;
    let item = item_at(ep, path).await?;
    let path = path.clone();
    let max_items = ep.settings.max_items_per_owner;
    ep.cloud
        .database()
        .transaction_with(move |tx| {
            metadata::check_item_limit(tx, &path, max_items)?;
            metadata::record_directory(tx, &path)?;
            // The last step, so a failure here rolls the row back.
            item.create_dir()
        })
        .await
}

/// Deletes a file, or a directory with everything under it; returns the bytes freed. It takes
/// the permission on the parent, as creating does: a role on a directory lets its holder delete
/// what is in it, not the directory itself. The item is renamed out of sight in the same
/// transaction that removes its rows; its remains are then removed within the walk bound
/// (at most a second of it) before the answer, the rest after it, and whatever is still left
/// by the sweeper.
async fn delete_item(
    ep: &Endpoint,
    user: Option<UserId>,
    path: &CloudPath,
) -> Result<u64, CloudError> {
    let item = item_at(ep, path).await?;
    let meta = existing(&item).await?;
    let needed = if meta.is_dir {
        Permission::DELETE_SUB_DIRECTORY
    } else {
        Permission::DELETE_FILE
    };
    // An owner's root has no parent, and goes only with its owner.
    let parent = path.parent().ok_or_else(|| CloudError::Forbidden {
        permission: needed.to_string(),
        path: path.to_string(),
    })?;
    ep.cloud.require_path(user, parent, needed).await?;
    let trash = item.sibling(&format!("{RESERVED_PREFIX}trash-{}", random_hex()?));
    let moved = trash.clone();
    let recorded = path.clone();
    let freed = ep
        .cloud
        .database()
        .transaction_with(move |tx| {
            let freed = metadata::record_delete(tx, &recorded)?;
            if !item.rename_to(&moved)? {
                return Err(CloudError::NotFound(recorded.to_string()));
            }
            Ok::<_, CloudError>(freed)
        })
        .await?;
    if !meta.is_dir {
        let removed = blocking(move || trash.remove_file()).await;
        if let Err(err) = removed {
            // Hidden and swept later; the delete itself is done.
            tracing::warn!(%err, "cannot remove a deleted file's remains yet");
        }
        return Ok(freed);
    }
    let now = WalkBound {
        entries: ep.settings.walk.entries,
        time: ep.settings.walk.time.min(std::time::Duration::from_secs(1)),
    };
    let first = trash.clone();
    let done = blocking(move || {
        let (owner, rel) = first.owner_dir();
        Ok(walk::remove_tree(owner, std::path::Path::new(rel), now)?)
    })
    .await;
    match done {
        Ok(true) => {}
        Ok(false) => match std::sync::Arc::clone(&ep.removals).try_acquire_owned() {
            Ok(permit) => {
                drop(tokio::task::spawn_blocking(move || {
                    let (owner, rel) = trash.owner_dir();
                    let _ = walk::remove_tree(owner, std::path::Path::new(rel), walk::BACKGROUND);
                    drop(permit);
                }));
            }
            Err(_) => tracing::debug!("a deleted directory's remains are left for the sweeper"),
        },
        Err(err) => tracing::warn!(%err, "cannot remove a deleted directory's remains yet"),
    }
    Ok(freed)
}

pub(crate) fn random_hex() -> Result<String, CloudError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| CloudError::Io(std::io::Error::other(e.to_string())))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

async fn stat(ep: &Endpoint, user: Option<UserId>, path: &CloudPath) -> Result<Stat, CloudError> {
    let item = item_at(ep, path).await?;
    let meta = existing(&item).await?;
    let needed = if meta.is_dir {
        Permission::READ_TREE_DIRECTORY
    } else {
        Permission::READ_FILE
    };
    ep.cloud.require_path(user, path.clone(), needed).await?;
    let recorded = if meta.is_dir {
        None
    } else {
        recorded_hash(ep, path, meta.len).await?
    };
    let path = path.clone();
    let bound = ep.settings.walk;
    blocking(move || {
        if meta.is_dir {
            let size = walk::directory_size(&item, bound)?;
            return Ok(stat_of(&path, &meta, size, None));
        }
        // A file the metadata does not know as it is (changed behind the server's back) is hashed.
        let hash = match recorded {
            Some(hash) => hash,
            None => {
                let mut file = item.open_read()?;
                super::stream::hash_prefix(&mut file, meta.len)?.finalize()
            }
        };
        Ok(stat_of(&path, &meta, meta.len, Some(hash)))
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
    meta: &ItemMeta,
    size: u64,
    hash: Option<blake3::Hash>,
) -> Stat {
    let name = path.as_str().rsplit('/').next().unwrap_or_default();
    Stat {
        path: path.to_string(),
        kind: if meta.is_dir {
            ItemKind::Directory
        } else {
            ItemKind::File
        },
        size,
        blake3: hash.map(|h| h.to_hex().to_string()),
        content_type: (!meta.is_dir).then(|| super::content_type::kind_of(name).to_owned()),
        created: meta.created,
        modified: meta.modified,
    }
}
