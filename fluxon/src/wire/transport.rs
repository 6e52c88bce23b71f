//! What frames travel over: a TCP stream in clear text, or the same wrapped in TLS, split into a
//! read half and a write half for the reader and writer tasks.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

/// A read half, whatever carries it.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// A write half, whatever carries it.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// An established connection.
pub(crate) enum Stream {
    /// Clear text.
    Plain(TcpStream),
    /// TLS, as the server accepted it.
    TlsServer(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// TLS, as a client connected it.
    TlsClient(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// A stream's two halves.
pub(crate) struct Halves {
    pub read: BoxRead,
    pub write: BoxWrite,
    /// A clear-text socket can also be written from any thread without its writer task
    /// ([`super::DirectWrite`]); TLS cannot (its records are made by one writer).
    pub direct: Option<Arc<OwnedWriteHalf>>,
}

impl Stream {
    /// Splits the stream: owned halves for clear text (no lock between them), tokio's split
    /// for TLS.
    pub fn split(self) -> Halves {
        match self {
            Stream::Plain(stream) => {
                let (read, write) = stream.into_split();
                let write = Arc::new(write);
                Halves {
                    read: Box::new(read),
                    write: Box::new(super::SharedWriteHalf(Arc::clone(&write))),
                    direct: Some(write),
                }
            }
            Stream::TlsServer(stream) => {
                let (read, write) = tokio::io::split(*stream);
                Halves {
                    read: Box::new(read),
                    write: Box::new(write),
                    direct: None,
                }
            }
            Stream::TlsClient(stream) => {
                let (read, write) = tokio::io::split(*stream);
                Halves {
                    read: Box::new(read),
                    write: Box::new(write),
                    direct: None,
                }
            }
        }
    }
}
