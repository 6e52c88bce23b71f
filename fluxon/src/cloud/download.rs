//! `read_file` on the endpoint's side: the file opened through the owner's directory handle
//! (never through a symlink) and streamed from an offset, in constant memory. Once its bytes
//! start flowing nothing else can be said on the connection, so a failure then (a reader gone,
//! quiet for the idle timeout, or under the rate floor) closes it and the connector sees a short
//! read.

use std::io::{Seek, SeekFrom};

use crate::wire::BoxWrite;
use tokio::io::AsyncWriteExt;

use super::access::Permission;
use super::error::CloudError;
use super::ops::{blocking, item_at, recorded_hash, Failed};
use super::path::CloudPath;
use super::protocol::{self, Response};
use super::server::Endpoint;
use super::stream::{self, PumpError};
use crate::admission::Counters;
use crate::auth::UserId;

pub(crate) async fn read_file(
    ep: &Endpoint,
    user: Option<UserId>,
    path: &CloudPath,
    offset: u64,
    writer: &mut BoxWrite,
    moved: &mut u64,
) -> Result<(), Failed> {
    ep.cloud
        .require_path(user, path.clone(), Permission::READ_FILE)
        .await?;
    let item = item_at(ep, path).await?;
    let name = path.to_string();
    let (file, size) = blocking(move || {
        let file = item.open_read()?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(CloudError::AlreadyExists(name));
        }
        Ok((file, meta.len()))
    })
    .await?;
    if offset > size {
        let message = format!("offset {offset} is past the end of a {size}-byte file");
        return Err(CloudError::BadRequest(message).into());
    }
    let blake3 = recorded_hash(ep, path, size)
        .await?
        .map(|hash| *hash.as_bytes());
    let file = blocking(move || {
        let mut file = file;
        file.seek(SeekFrom::Start(offset))?;
        Ok(file)
    })
    .await?;

    protocol::write_frame(
        writer,
        &Response::Sending {
            size,
            offset,
            blake3,
        },
    )
    .await
    .map_err(CloudError::Io)?;
    let mut progress = |n: u64| *moved = n;
    let sent =
        stream::source_to_socket(writer, size - offset, file, ep.bounds(), &mut progress).await;
    sent.map_err(|err| {
        let error = match err {
            PumpError::TooSlow(slow) => {
                Counters::bump(&ep.counters().cloud_transfers_too_slow);
                CloudError::from(slow)
            }
            other => CloudError::Io(std::io::Error::other(other.to_string())),
        };
        Failed {
            error,
            tell_peer: false,
        }
    })?;
    writer.flush().await.map_err(|err| Failed {
        error: CloudError::Io(err),
        tell_peer: false,
    })?;
    Ok(())
}
