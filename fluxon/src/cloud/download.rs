//! `read_file` on the endpoint's side: the file streamed from an offset, in constant memory. Once
//! its bytes start flowing nothing else can be said on the connection, so a failure then closes
//! it and the connector sees a short read.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::path::PathBuf;

use crate::wire::BoxWrite;
use tokio::io::AsyncWriteExt;

use super::access::Permission;
use super::error::CloudError;
use super::ops::{blocking, recorded_hash, Failed};
use super::path::CloudPath;
use super::protocol::{self, Response};
use super::server::Endpoint;
use super::stream;
use crate::server::UserId;

pub(crate) async fn read_file(
    ep: &Endpoint,
    user: Option<UserId>,
    path: &CloudPath,
    disk: PathBuf,
    offset: u64,
    writer: &mut BoxWrite,
    moved: &mut u64,
) -> Result<(), Failed> {
    ep.cloud
        .require_path(user, path.clone(), Permission::READ_FILE)
        .await?;
    let name = path.to_string();
    let (file, size) = blocking(move || {
        let file = File::open(&disk).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => CloudError::NotFound(name.clone()),
            _ => e.into(),
        })?;
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
    let sent = stream::source_to_socket(writer, size - offset, file, ep.idle, &mut progress).await;
    sent.map_err(|err| Failed {
        error: CloudError::Io(std::io::Error::other(err.to_string())),
        tell_peer: false,
    })?;
    writer.flush().await.map_err(|err| Failed {
        error: CloudError::Io(err),
        tell_peer: false,
    })?;
    Ok(())
}
