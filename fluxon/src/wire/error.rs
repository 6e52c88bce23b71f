//! Errors of the wire layer.

/// Why bytes could not become an envelope, or an envelope bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The socket failed, or a frame was over the maximum size.
    #[error("i/o error on the connection: {0}")]
    Io(#[from] std::io::Error),
    /// A frame body that is not a valid envelope.
    #[error("malformed message: {0}")]
    Decode(postcard::Error),
    /// An envelope that could not be encoded.
    #[error("could not encode message: {0}")]
    Encode(postcard::Error),
}
