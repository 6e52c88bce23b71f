//! Optional logging to a file per day in a logs directory, as the original Fluxon did.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use super::ServerError;

/// Keeps the background log writer alive; logs still queued are flushed when it drops.
pub(crate) struct LogGuard {
    _guard: WorkerGuard,
}

/// Installs a global subscriber writing to stderr and to `dir/fluxon.log.YYYY-MM-DD`.
///
/// When the program already installed a subscriber, that one wins and the file is not written.
pub(crate) fn init(dir: &Path) -> Result<LogGuard, ServerError> {
    let logging_error = |reason: String| ServerError::Logging {
        dir: dir.to_owned(),
        reason,
    };
    std::fs::create_dir_all(dir).map_err(|e| logging_error(e.to_string()))?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("fluxon.log")
        .build(dir)
        .map_err(|e| logging_error(e.to_string()))?;
    let (file, guard) = tracing_appender::non_blocking(appender);
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::stderr.and(file.with_max_level(tracing::Level::INFO)))
        .finish();
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        tracing::warn!(dir = %dir.display(), "a tracing subscriber is already installed; not adding the log file");
    }
    Ok(LogGuard { _guard: guard })
}
