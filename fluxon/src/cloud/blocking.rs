//! The blocking form of [`CloudStorageConnector`](super::CloudStorageConnector), for scripts and
//! GUI programs without an async runtime: the same operations, each waiting for its answer on a
//! small runtime of its own. Do not use it from inside an async runtime.

use std::path::Path;
use std::sync::Arc;

use tokio::runtime::Runtime;

use super::connector::{ConnectorError, Progress};
use super::grant::Grant;
use super::tree::{Stat, TreeNode};

/// A blocking cloud connector (see [`CloudStorageConnector`](super::CloudStorageConnector)),
/// exported as `fluxon::blocking::CloudStorageConnector`.
///
/// ```no_run
/// # fn run(conn: fluxon::blocking::ConnectionHandler, grant: fluxon::cloud::Grant) -> Result<(), fluxon::cloud::ConnectorError> {
/// let cloud = conn.cloud_connector("127.0.0.1:8888");
/// cloud.write_path(&grant, "notes.txt")?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CloudStorageConnector {
    inner: super::CloudStorageConnector,
    runtime: Arc<Runtime>,
}

impl CloudStorageConnector {
    /// Made by [`blocking::ConnectionHandler::cloud_connector`](crate::blocking::ConnectionHandler::cloud_connector),
    /// on that client's runtime.
    pub(crate) fn new(inner: super::CloudStorageConnector, runtime: Arc<Runtime>) -> Self {
        CloudStorageConnector { inner, runtime }
    }

    /// Calls `report` as a transfer moves.
    pub fn on_progress(mut self, report: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.inner = self.inner.on_progress(report);
        self
    }

    /// See [`CloudStorageConnector::create_directory`](super::CloudStorageConnector::create_directory).
    pub fn create_directory(&self, grant: &Grant) -> Result<(), ConnectorError> {
        self.runtime.block_on(self.inner.create_directory(grant))
    }

    /// See [`CloudStorageConnector::write_bytes`](super::CloudStorageConnector::write_bytes).
    pub fn write_bytes(&self, grant: &Grant, bytes: &[u8]) -> Result<Stat, ConnectorError> {
        self.runtime.block_on(self.inner.write_bytes(grant, bytes))
    }

    /// See [`CloudStorageConnector::write_path`](super::CloudStorageConnector::write_path).
    pub fn write_path(
        &self,
        grant: &Grant,
        local: impl AsRef<Path>,
    ) -> Result<Stat, ConnectorError> {
        self.runtime.block_on(self.inner.write_path(grant, local))
    }

    /// Uploads `size` bytes read from `reader` (a blocking reader, read on this thread in
    /// chunks).
    pub fn write_reader(
        &self,
        grant: &Grant,
        reader: impl std::io::Read + Send + 'static,
        size: u64,
    ) -> Result<Stat, ConnectorError> {
        self.runtime
            .block_on(self.inner.write_std_reader(grant, reader, size))
    }

    /// See [`CloudStorageConnector::read_bytes`](super::CloudStorageConnector::read_bytes).
    pub fn read_bytes(&self, grant: &Grant) -> Result<Vec<u8>, ConnectorError> {
        self.runtime.block_on(self.inner.read_bytes(grant))
    }

    /// See [`CloudStorageConnector::read_to_path`](super::CloudStorageConnector::read_to_path).
    pub fn read_to_path(
        &self,
        grant: &Grant,
        local: impl AsRef<Path>,
    ) -> Result<u64, ConnectorError> {
        self.runtime.block_on(self.inner.read_to_path(grant, local))
    }

    /// Downloads into a blocking writer, from `offset` on; returns the bytes written.
    pub fn read_to_writer(
        &self,
        grant: &Grant,
        writer: impl std::io::Write + Send + 'static,
        offset: u64,
    ) -> Result<u64, ConnectorError> {
        self.runtime
            .block_on(self.inner.read_to_std_writer(grant, writer, offset))
    }

    /// See [`CloudStorageConnector::delete_item`](super::CloudStorageConnector::delete_item).
    pub fn delete_item(&self, grant: &Grant) -> Result<(), ConnectorError> {
        self.runtime.block_on(self.inner.delete_item(grant))
    }

    /// See [`CloudStorageConnector::read_tree`](super::CloudStorageConnector::read_tree).
    pub fn read_tree(&self, grant: &Grant) -> Result<TreeNode, ConnectorError> {
        self.runtime.block_on(self.inner.read_tree(grant))
    }

    /// See [`CloudStorageConnector::stat`](super::CloudStorageConnector::stat).
    pub fn stat(&self, grant: &Grant) -> Result<Stat, ConnectorError> {
        self.runtime.block_on(self.inner.stat(grant))
    }
}
