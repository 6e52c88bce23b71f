//! Errors of starting and running a server.

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// `secure(true)` was asked for without a certificate to present.
    #[error("secure(true) needs a certificate: give AsyncServer::tls (or CloudStorageServer::tls) a TlsIdentity; refusing to serve in clear text instead")]
    NoTlsIdentity,
    /// The certificate and key could not be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// No router was given.
    #[error("the server has no router: call AsyncServer::router")]
    NoRouter,
    /// A limit is set to a value that cannot work.
    #[error("invalid limit: {0}")]
    InvalidLimit(&'static str),
    /// The session key could not be made.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The mailbox's table could not be made.
    #[error("cannot open the mailbox: {0}")]
    Mailbox(crate::db::DbError),
    /// A cloud endpoint was asked for, but there is no database for its metadata.
    #[error("the cloud storage needs a database: give the router an AsyncDatabase state, or CloudStorageServer::database")]
    CloudWithoutDatabase,
    /// The cloud folder or its metadata could not be opened.
    #[error("cannot open the cloud storage: {0}")]
    Cloud(crate::cloud::CloudError),
    /// A cluster node was asked for without a private key: each node would make a random one,
    /// and the tokens and grants one node made would fail on the others.
    #[error("a cluster node needs the private key every node shares: call Router::private_key (a random key per node would make each node's tokens and grants fail on the others)")]
    ClusterWithoutKey,
    /// The cluster could not be joined (Redis unreachable, a bad URL or setting).
    #[error("cannot join the cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The log directory could not be set up.
    #[error("cannot log to {dir}: {reason}")]
    Logging {
        /// The directory.
        dir: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl From<crate::cloud::StartError> for ServerError {
    fn from(err: crate::cloud::StartError) -> Self {
        use crate::cloud::StartError;
        match err {
            StartError::InvalidLimit(why) => ServerError::InvalidLimit(why),
            StartError::NoTlsIdentity => ServerError::NoTlsIdentity,
            StartError::Tls(err) => ServerError::Tls(err),
            StartError::NoDatabase => ServerError::CloudWithoutDatabase,
            StartError::Open(err) => ServerError::Cloud(err),
            StartError::Bind { addr, source } => ServerError::Bind { addr, source },
        }
    }
}
