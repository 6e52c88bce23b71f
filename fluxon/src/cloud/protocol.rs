//! The cloud endpoint's protocol, byte by byte.
//!
//! The connector opens a TCP connection to the cloud port (not the main one, so bulk transfers
//! never stall calls) and sends requests one at a time. Control messages travel in the same frames
//! as the main protocol (a big-endian `u32` length, then a body encoded with postcard, as described
//! in [`wire`](crate::wire)); file contents travel **raw**, with no framing, because both sides
//! know their length in advance.
//!
//! ## Requests
//!
//! A request frame's body is, in order: magic `[u8; 4]` = `b"FLXC"`; version `u16` = 2; the
//! client's session token (16 bytes of session id and 32 of MAC, as in the main `Hello`); then the
//! request, an enum:
//!
//! | index | request | fields, in order | answered with |
//! |---|---|---|---|
//! | 0 | `CreateDirectory` | grant, path string | `Done` |
//! | 1 | `WriteFile` | grant, path string, size `u64`, resume `bool` | `Ready`, then see *Writing* |
//! | 2 | `ReadFile` | grant, path string, offset `u64` | `Sending`, the bytes, `Done` |
//! | 3 | `DeleteItem` | grant, path string | `Done` |
//! | 4 | `ReadTree` | grant, path string, after `Option<string>` (the cursor, see *Trees*) | `Tree` |
//! | 5 | `Stat` | grant, path string | `Stat` |
//!
//! The endpoint reads the magic and the version before anything else: a request of another
//! version (version 1 had no cursor in `ReadTree`) is answered `Failed` with code `BadRequest`
//! and a message naming both versions, whatever follows them.
//!
//! A grant is the postcard encoding of [`Grant`] as the view returned it. The
//! endpoint checks the token, that the grant was given to that session (and its login, so a
//! logout revokes it), that it is signed, current and for this operation and this normalized path,
//! that the path stays in the cloud folder, the user's permission, and for a write the quota.
//! A request whose grant or token does not verify is answered `Failed` (`BadGrant`, or `BadPath`
//! for a path that does not parse) and leaves no trace in the database; only authorized requests
//! are written to the audit log.
//!
//! ## Responses
//!
//! | index | response | fields, in order |
//! |---|---|---|
//! | 0 | `Ready` | offset `u64`: where the connector sends from |
//! | 1 | `Sending` | size `u64`, offset `u64`, blake3 `Option<[u8; 32]>` (the recorded hash, if it is for what is on disk) |
//! | 2 | `Done` | |
//! | 3 | `Stat` | a [`Stat`] |
//! | 4 | `Tree` | items: a sequence of the tree's items in pre-order (every directory before what is in it, a directory's items by name), each: path string, kind ([`ItemKind`]: 0 file, 1 directory), size `u64`, modified time (seconds `u64`, nanoseconds `u32` since the Unix epoch); then more `bool`: whether the tree goes on after this page |
//! | 5 | `Failed` | code [`CloudErrorCode`], message string |
//!
//! Any request may be answered `Failed` instead; the endpoint then closes the connection. A
//! connection turned away at a connection limit (in all, per peer address, or in their
//! handshake) gets one `Failed` with code `ServerFull` in clear text, or is closed without a word
//! over TLS.
//!
//! ## Trees
//!
//! A tree travels in pages. The first `ReadTree` has `after = None` and is answered with the
//! tree's first items, starting with the directory asked for itself. While `more` is `true`, the
//! connector asks again, on the same connection and with the same grant, with `after` = the path
//! of the last item it received; the endpoint answers the items that follow it in the same order.
//! The endpoint keeps nothing between pages (the cursor says where to go on), and a page holds at
//! most the endpoint's page size in items and in bytes (by default 100,000 items and 8 MiB, so
//! every page fits a response frame). Each page is also bounded in the entries its walk reads and
//! in time; a page cut by those bounds is shorter, and one that could not hold a single item is
//! answered `Failed` with `TreeTooLarge`. Items the tree gains or loses between pages may be
//! missed or seen, never repeated: the order is the same for every page. The connector rebuilds
//! the [`TreeNode`] as the pages come, without recursion, and refuses a tree over its own bound.
//!
//! ## Writing
//!
//! After `Ready { offset }` the connector sends exactly `size - offset` raw bytes (the file from
//! `offset` on), then a frame whose body is the BLAKE3 of the *whole* file (32 raw bytes). The
//! endpoint streams the bytes into a hidden partial file in the target directory, hashing as they
//! arrive; then it compares the hashes, fsyncs, records the file in the metadata and renames it
//! into place in one step, and answers `Stat`. A connection lost mid-stream leaves the partial file
//! hidden; a later `WriteFile` of the same path and size with `resume = true` is answered with the
//! offset the endpoint holds, so only the rest is sent. A path has one partial file at a time: a
//! `WriteFile` of another size (or without `resume`) starts it over. From `Ready` on, the declared
//! size counts against the owner's quota until the file is committed or the partial removed. The
//! endpoint may answer `Failed` while the bytes are still coming (and closes): the connector stops
//! sending. It does so when the bytes come slower than the endpoint's rate floor (by default
//! 16 KiB/s over any 30 s), with code `TooSlow`; what arrived stays for a resume.
//!
//! ## Reading
//!
//! After `Sending { size, offset, .. }` the endpoint sends exactly `size - offset` raw bytes, then
//! `Done`. If it fails once the bytes have started, it closes the connection without a word (a
//! `Failed` frame would be taken for file contents): the connector sees a short read. A reader
//! taking the bytes slower than the rate floor is cut the same way.
//!
//! Request frames are at most 64 KiB; response frames at most 16 MiB.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::CloudErrorCode;
use super::grant::Grant;
use super::tree::{FlatItem, Stat};
#[cfg(doc)]
use super::tree::{ItemKind, TreeNode};
use crate::wire::SessionTokenBytes;

/// The four bytes every request starts with.
pub(crate) const MAGIC: [u8; 4] = *b"FLXC";
/// The protocol version.
pub(crate) const VERSION: u16 = 2;
/// The largest request frame the endpoint reads.
pub(crate) const MAX_REQUEST: usize = 64 * 1024;
/// The largest response frame the connector reads (a big tree).
pub(crate) const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// The size of the buffers file contents move in.
pub(crate) const CHUNK: usize = 256 * 1024;

/// A request with its magic and version.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RequestFrame {
    pub magic: [u8; 4],
    pub version: u16,
    /// The presenting client's session token: a grant works only for the session it was given
    /// to.
    pub session: SessionTokenBytes,
    pub request: Request,
}

/// What the connector asks.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Request {
    CreateDirectory {
        grant: Grant,
        path: String,
    },
    WriteFile {
        grant: Grant,
        path: String,
        size: u64,
        resume: bool,
    },
    ReadFile {
        grant: Grant,
        path: String,
        offset: u64,
    },
    DeleteItem {
        grant: Grant,
        path: String,
    },
    ReadTree {
        grant: Grant,
        path: String,
        /// The last item of the previous page; `None` for the first page.
        after: Option<String>,
    },
    Stat {
        grant: Grant,
        path: String,
    },
}

impl Request {
    /// The operation it asks for (what its grant must allow).
    pub(crate) fn operation(&self) -> super::CloudOperation {
        use super::CloudOperation as Op;
        match self {
            Request::CreateDirectory { .. } => Op::CreateDirectory,
            Request::WriteFile { .. } => Op::WriteFile,
            Request::ReadFile { .. } => Op::ReadFile,
            Request::DeleteItem { .. } => Op::DeleteItem,
            Request::ReadTree { .. } => Op::ReadTree,
            Request::Stat { .. } => Op::Stat,
        }
    }

    /// The path it names, as sent.
    pub(crate) fn path(&self) -> &str {
        match self {
            Request::CreateDirectory { path, .. }
            | Request::WriteFile { path, .. }
            | Request::ReadFile { path, .. }
            | Request::DeleteItem { path, .. }
            | Request::ReadTree { path, .. }
            | Request::Stat { path, .. } => path,
        }
    }

    /// The grant it presents.
    pub(crate) fn grant(&self) -> &Grant {
        match self {
            Request::CreateDirectory { grant, .. }
            | Request::WriteFile { grant, .. }
            | Request::ReadFile { grant, .. }
            | Request::DeleteItem { grant, .. }
            | Request::ReadTree { grant, .. }
            | Request::Stat { grant, .. } => grant,
        }
    }
}

/// The end of a write: the whole file's BLAKE3.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Commit {
    pub blake3: [u8; 32],
}

/// What the endpoint answers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Response {
    Ready {
        offset: u64,
    },
    Sending {
        size: u64,
        offset: u64,
        blake3: Option<[u8; 32]>,
    },
    Done,
    Stat(Stat),
    Tree {
        items: Vec<FlatItem>,
        more: bool,
    },
    Failed {
        code: CloudErrorCode,
        message: String,
    },
}

/// Reads one frame of at most `max` bytes; `None` at a clean end of stream before a frame.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    reader.read_exact(&mut len[1..]).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes is over the limit of {max}"),
        ));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Writes `value` as one frame (not flushed).
pub(crate) async fn write_frame<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    value: &T,
) -> std::io::Result<()> {
    let body = postcard::to_allocvec(value)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let len = u32::try_from(body.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "frame too large"))?;
    let mut framed = Vec::with_capacity(4 + body.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&body);
    writer.write_all(&framed).await
}

/// Decodes a frame's body, refusing trailing bytes.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    crate::wire::from_bytes_exact(body).map_err(|e| e.to_string())
}

/// What every request starts with, read before the rest so that another version is told so
/// whatever its layout.
#[derive(Debug, Deserialize)]
struct Header {
    magic: [u8; 4],
    version: u16,
}

/// Decodes a request frame's body and checks its magic and version: the session token it presents
/// and the request, or what is wrong with it (the endpoint answers `Failed` and closes).
pub(crate) fn decode_request(body: &[u8]) -> Result<(SessionTokenBytes, Request), String> {
    let (header, rest) = postcard::take_from_bytes::<Header>(body).map_err(|e| e.to_string())?;
    if header.magic != MAGIC || header.version != VERSION {
        return Err(format!(
            "not a fluxon cloud request of version {VERSION} (magic {:?}, version {})",
            header.magic, header.version
        ));
    }
    decode::<(SessionTokenBytes, Request)>(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::SessionId;
    use crate::cloud::{CloudOperation, CloudPath, GrantKey};

    fn request_frame(magic: [u8; 4], version: u16) -> Vec<u8> {
        let path = CloudPath::parse("jack/docs").unwrap();
        let grant = GrantKey::from_private_key(&[9; 32])
            .grant(
                CloudOperation::CreateDirectory,
                &path,
                (SessionId::random().unwrap(), (Some(7), 3)),
                std::time::Duration::from_secs(60),
                None,
            )
            .unwrap();
        postcard::to_allocvec(&RequestFrame {
            magic,
            version,
            session: SessionTokenBytes {
                id: [1; 16],
                mac: [2; 32],
            },
            request: Request::CreateDirectory {
                grant,
                path: path.as_str().to_owned(),
            },
        })
        .unwrap()
    }

    #[test]
    fn a_request_header_is_checked_before_the_request_is_looked_at() {
        let (session, request) = decode_request(&request_frame(MAGIC, VERSION)).unwrap();
        assert_eq!(session.id, [1; 16]);
        assert!(
            matches!(request, Request::CreateDirectory { ref path, .. } if path == "jack/docs")
        );

        let err = decode_request(&request_frame(*b"FLXN", VERSION)).unwrap_err();
        assert!(err.contains("not a fluxon cloud request"), "{err}");
        // Another version is named as such, though its layout is not this one's.
        let err = decode_request(&request_frame(MAGIC, 1)).unwrap_err();
        assert!(
            err.contains("version 2") && err.contains("version 1"),
            "{err}"
        );
        let mut old = postcard::to_allocvec(&(MAGIC, 1u16)).unwrap();
        old.extend_from_slice(b"anything at all");
        let err = decode_request(&old).unwrap_err();
        assert!(err.contains("version 1"), "{err}");
        let mut trailing = request_frame(MAGIC, VERSION);
        trailing.push(0);
        assert!(decode_request(&trailing).is_err());
        assert!(decode_request(&[]).is_err());
    }
}
