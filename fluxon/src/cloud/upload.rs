//! `write_file` on the endpoint's side: permission and quota checked before any byte is taken,
//! the bytes streamed into a hidden partial file next to the target while BLAKE3 is computed, the
//! hash compared with the one the connector declares, then fsync, and the metadata row and the
//! rename into place in one transaction. An interrupted upload keeps its partial file, and a
//! resumed one continues from the partial file's length.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::wire::{BoxRead, BoxWrite};
use tokio::io::{AsyncWriteExt, BufReader};

use super::access::Permission;
use super::error::CloudError;
use super::metadata;
use super::ops::{blocking, existing, stat_of, Failed};
use super::path::{CloudPath, RESERVED_PREFIX};
use super::protocol::{self, Commit, Response, MAX_REQUEST};
use super::server::Endpoint;
use super::stream::{self, Hashing, PumpError};
use super::tree::Stat;
use crate::server::UserId;

/// One write, as asked.
pub(crate) struct Write<'a> {
    pub path: &'a CloudPath,
    pub disk: PathBuf,
    pub size: u64,
    pub resume: bool,
    pub max_size: Option<u64>,
}

/// The hidden file an upload of `path` with `size` bytes streams into: the same name for the
/// same upload, so a resume finds it.
fn partial_name(path: &CloudPath, size: u64) -> String {
    let id = blake3::hash(path.as_str().as_bytes()).to_hex();
    format!("{RESERVED_PREFIX}part-{}-{size}", &id[..32])
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
        disk,
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
    match existing(&disk, path).await {
        Ok(meta) if meta.is_dir() => return Err(CloudError::AlreadyExists(path.to_string()).into()),
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
    // The quota, before a single byte is accepted.
    let checked = path.clone();
    ep.cloud
        .database()
        .transaction_with(move |tx| metadata::reserve_write(tx, &checked, size))
        .await?;

    let dir = disk
        .parent()
        .ok_or_else(|| CloudError::NotFound(path.to_string()))?
        .to_path_buf();
    let partial = dir.join(partial_name(path, size));
    let opened = partial.clone();
    let (file, offset, hasher) = blocking(move || open_partial(&opened, size, resume)).await?;

    protocol::write_frame(writer, &Response::Ready { offset })
        .await
        .map_err(CloudError::Io)?;
    writer.flush().await.map_err(CloudError::Io)?;

    let sink = Hashing {
        inner: file,
        hasher,
    };
    let mut progress = |n: u64| *moved = n;
    let sink =
        match stream::socket_to_sink(reader, size - offset, sink, ep.idle, &mut progress).await {
            Ok(sink) => sink,
            Err(PumpError::Peer(err)) => {
                // The partial file keeps what arrived, for a resume.
                let message = format!("the upload stopped after {} bytes: {err}", offset + *moved);
                return Err(CloudError::BadRequest(message).into());
            }
            Err(PumpError::Local(err)) => {
                remove_quietly(&partial).await;
                return Err(CloudError::Io(err).into());
            }
        };

    let commit = tokio::time::timeout(ep.idle, protocol::read_frame(reader, MAX_REQUEST))
        .await
        .map_err(|_| CloudError::BadRequest("no commit after the file's bytes".into()))?
        .map_err(CloudError::Io)?
        .ok_or_else(|| CloudError::BadRequest("the connection closed before the commit".into()))?;
    let commit: Commit = protocol::decode(&commit).map_err(CloudError::BadRequest)?;
    let received = sink.hasher.finalize();
    if received != blake3::Hash::from(commit.blake3) {
        remove_quietly(&partial).await;
        return Err(CloudError::HashMismatch {
            declared: blake3::Hash::from(commit.blake3).to_hex().to_string(),
            received: received.to_hex().to_string(),
        }
        .into());
    }

    let file = sink.inner;
    blocking(move || Ok(file.sync_all()?)).await?;
    let (recorded, from, to) = (path.clone(), partial.clone(), disk.clone());
    let displaced_name = dir.join(format!(
        "{RESERVED_PREFIX}trash-{}",
        super::ops::random_hex()?
    ));
    let hex = received.to_hex().to_string();
    let placed = ep
        .cloud
        .database()
        .transaction_with(move |tx| {
            metadata::record_write(tx, &recorded, size, &hex)?;
            // A file being replaced steps aside first, so freeing its blocks happens after the
            // answer, not before it.
            let displaced = match std::fs::rename(&to, &displaced_name) {
                Ok(()) => Some(displaced_name),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(e.into()),
            };
            // The last step: if the rename fails, the old file goes back and the row is rolled
            // back with it.
            if let Err(err) = std::fs::rename(&from, &to) {
                if let Some(displaced) = &displaced {
                    let _ = std::fs::rename(displaced, &to);
                }
                return Err(CloudError::Io(err));
            }
            Ok::<_, CloudError>(displaced)
        })
        .await;
    match placed {
        Ok(Some(displaced)) => {
            // Hidden already; if this fails, the sweeper removes it later.
            drop(tokio::task::spawn_blocking(move || {
                std::fs::remove_file(displaced)
            }));
        }
        Ok(None) => {}
        Err(err) => {
            remove_quietly(&partial).await;
            return Err(err.into());
        }
    }
    let path = path.clone();
    let stat = blocking(move || {
        // The rename is durable once the directory is.
        File::open(&dir)?.sync_all()?;
        let meta = std::fs::metadata(&disk)?;
        Ok(stat_of(&path, &meta, size, Some(received)))
    })
    .await?;
    Ok(stat)
}

/// Opens the partial file: continued from its end when resuming (its bytes hashed again), else
/// empty.
fn open_partial(
    partial: &Path,
    size: u64,
    resume: bool,
) -> Result<(File, u64, blake3::Hasher), CloudError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(partial)?;
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

async fn remove_quietly(path: &Path) {
    let owned = path.to_path_buf();
    if let Err(err) = blocking(move || Ok(std::fs::remove_file(owned)?)).await {
        tracing::warn!(%err, path = %path.display(), "cannot remove a partial upload");
    }
}
