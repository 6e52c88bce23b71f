//! `write_file` on the endpoint's side: permission, quota and item limit checked before any byte
//! is taken, the declared size reserved against the quota ([`uploads`](super::uploads)) in the
//! step that answers `Ready`, the bytes streamed into the path's one hidden partial file next to
//! the target while BLAKE3 is computed, the hash compared with the one the connector declares,
//! then fsync, and the metadata row, the end of the reservation and the rename into place in
//! one transaction.
//!
//! An upload cut by the peer (a lost connection, the idle timeout, the rate floor) keeps its
//! partial file and its reservation, and a resumed one of the same size continues from the
//! partial file's length; one of another size starts the partial over. An upload that fails on
//! the server's side, or whose hash does not match, loses both.

use std::fs::File;
use std::io::{Seek, SeekFrom};

use crate::wire::{BoxRead, BoxWrite};
use tokio::io::{AsyncWriteExt, BufReader};

use super::access::Permission;
use super::disk::Item;
use super::error::CloudError;
use super::metadata;
use super::ops::{blocking, existing, item_at, stat_of, Failed};
use super::path::{CloudPath, RESERVED_PREFIX};
use super::protocol::{self, Commit, Response, MAX_REQUEST};
use super::server::Endpoint;
use super::stream::{self, Hashing, PumpError};
use super::tree::Stat;
use super::uploads;
use crate::admission::Counters;
use crate::auth::UserId;

/// One write, as asked.
pub(crate) struct Write<'a> {
    pub path: &'a CloudPath,
    pub size: u64,
    pub resume: bool,
    pub max_size: Option<u64>,
}

/// The hidden file an upload of `path` streams into: one name per path, whatever the size, so
/// a path never has more than one.
pub(crate) fn partial_name(path: &str) -> String {
    let id = blake3::hash(path.as_bytes()).to_hex();
    format!("{RESERVED_PREFIX}part-{}", &id[..32])
}

pub(crate) async fn write_file(
    ep: &Endpoint,
    user: Option<UserId>,
    write: Write<'_>,
    reader: &mut BufReader<BoxRead>,
    writer: &mut BoxWrite,
    moved: &mut u64,
) -> Result<Stat, Failed> {
    let Write {
        path,
        size,
        resume,
        max_size,
    } = write;
    if let Some(limit) = max_size.filter(|&limit| size > limit) {
        return Err(CloudError::TooLarge { size, limit }.into());
    }
    let parent = path.parent().ok_or_else(|| {
        CloudError::BadRequest("a file cannot be an owner's root directory".into())
    })?;
    let target = item_at(ep, path).await?;
    match existing(&target).await {
        Ok(meta) if meta.is_dir => return Err(CloudError::AlreadyExists(path.to_string()).into()),
        Ok(_) => {
            ep.cloud
                .require_path(user, path.clone(), Permission::WRITE_FILE)
                .await?
        }
        Err(CloudError::NotFound(_)) => {
            ep.cloud
                .require_path(user, parent, Permission::CREATE_FILE)
                .await?
        }
        Err(err) => return Err(err.into()),
    }
    let _writing = ep
        .cloud
        .start_writing(path)
        .ok_or_else(|| CloudError::Busy(path.to_string()))?;
    // The quota and the item limit, before a single byte is accepted; from here the declared
    // size is reserved.
    let (reserved, max_items) = (path.clone(), ep.settings.max_items_per_owner);
    let resumable = ep
        .cloud
        .database()
        .transaction_with(move |tx| uploads::reserve_upload(tx, &reserved, size, max_items))
        .await?;

    let partial = target.sibling(&partial_name(path.as_str()));
    let opened = partial.clone();
    let keep = resume && resumable;
    let (file, offset, hasher) = match blocking(move || open_partial(&opened, size, keep)).await {
        Ok(opened) => opened,
        Err(err) => {
            abandon(ep, path, &partial).await;
            return Err(err.into());
        }
    };

    protocol::write_frame(writer, &Response::Ready { offset })
        .await
        .map_err(CloudError::Io)?;
    writer.flush().await.map_err(CloudError::Io)?;

    let sink = Hashing {
        inner: file,
        hasher,
    };
    let mut progress = |n: u64| *moved = n;
    let pumped =
        stream::socket_to_sink(reader, size - offset, sink, ep.bounds(), &mut progress).await;
    let sink = match pumped {
        Ok(sink) => sink,
        // The partial file keeps what arrived, and its reservation, for a resume.
        Err(PumpError::Peer(err)) => {
            let message = format!("the upload stopped after {} bytes: {err}", offset + *moved);
            return Err(CloudError::BadRequest(message).into());
        }
        Err(PumpError::TooSlow(slow)) => {
            Counters::bump(&ep.counters().cloud_transfers_too_slow);
            return Err(CloudError::from(slow).into());
        }
        Err(PumpError::Local(err)) => {
            abandon(ep, path, &partial).await;
            return Err(CloudError::Io(err).into());
        }
    };

    let commit = tokio::time::timeout(
        ep.settings.idle_timeout,
        protocol::read_frame(reader, MAX_REQUEST),
    )
    .await
    .map_err(|_| CloudError::BadRequest("no commit after the file's bytes".into()))?
    .map_err(CloudError::Io)?
    .ok_or_else(|| CloudError::BadRequest("the connection closed before the commit".into()))?;
    let commit: Commit = protocol::decode(&commit).map_err(CloudError::BadRequest)?;
    let received = sink.hasher.finalize();
    if received != blake3::Hash::from(commit.blake3) {
        abandon(ep, path, &partial).await;
        return Err(CloudError::HashMismatch {
            declared: blake3::Hash::from(commit.blake3).to_hex().to_string(),
            received: received.to_hex().to_string(),
        }
        .into());
    }

    let file = sink.inner;
    blocking(move || Ok(file.sync_all()?)).await?;
    let (recorded, from, to) = (path.clone(), partial.clone(), target.clone());
    let displaced = target.sibling(&format!(
        "{RESERVED_PREFIX}trash-{}",
        super::ops::random_hex()?
    ));
    let hex = received.to_hex().to_string();
    let placed = ep
        .cloud
        .database()
        // Files are renamed inside: never run twice.
        .transaction_once(move |tx| {
            metadata::record_write(tx, &recorded, size, &hex)?;
            // A file being replaced steps aside first, so freeing its blocks happens after the
            // answer, not before it.
            let displaced = to.rename_to(&displaced)?.then_some(displaced);
            // The last step: if the rename fails, the old file goes back and the rows are rolled
            // back with it.
            if let Err(err) = from.rename_to(&to).and_then(|moved| {
                moved
                    .then_some(())
                    .ok_or_else(|| CloudError::NotFound(recorded.to_string()))
            }) {
                if let Some(displaced) = &displaced {
                    let _ = displaced.rename_to(&to);
                }
                return Err(err);
            }
            Ok::<_, CloudError>(displaced)
        })
        .await;
    match placed {
        Ok(Some(displaced)) => {
            // Hidden already; if this fails, the sweeper removes it later.
            drop(tokio::task::spawn_blocking(move || displaced.remove_file()));
        }
        Ok(None) => {}
        Err(err) => {
            abandon(ep, path, &partial).await;
            return Err(err.into());
        }
    }
    let path = path.clone();
    let stat = blocking(move || {
        // The rename is durable once the directory is.
        target.sync_directory()?;
        let meta = target.metadata()?;
        Ok(stat_of(&path, &meta, size, Some(received)))
    })
    .await?;
    Ok(stat)
}

/// Opens the partial file: continued from its end when resuming (its bytes hashed again), else
/// empty.
fn open_partial(
    partial: &Item,
    size: u64,
    resume: bool,
) -> Result<(File, u64, blake3::Hasher), CloudError> {
    let mut file = partial.open_partial()?;
    let held = file.metadata()?.len();
    if resume && held <= size {
        let hasher = stream::hash_prefix(&mut file, held)?;
        file.seek(SeekFrom::Start(held))?;
        return Ok((file, held, hasher));
    }
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    Ok((file, 0, blake3::Hasher::new()))
}

/// Gives up on an upload for good: its partial file and its reservation go.
async fn abandon(ep: &Endpoint, path: &CloudPath, partial: &Item) {
    let removed = partial.clone();
    if let Err(err) = blocking(move || removed.remove_file()).await {
        tracing::warn!(%err, %path, "cannot remove a partial upload");
    }
    let forgotten = path.clone();
    let forgot = ep
        .cloud
        .database()
        .transaction_with(move |tx| uploads::forget_upload(tx, &forgotten))
        .await;
    if let Err(err) = forgot {
        tracing::warn!(%err, %path, "cannot forget an upload in progress");
    }
}
