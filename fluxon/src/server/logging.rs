//! Logging: optionally to a file per day in a logs directory, as the original Fluxon did; and
//! spans around a connection's tasks that cost nothing when no subscriber wants them.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use super::ServerError;

/// `fut` inside `span`, or as it is when the span is disabled (no subscriber wants it). A
/// disabled span is still entered and left on every poll (and makes a `log` record each time when
/// tracing's `log` feature is on, as some dependency may turn it on), and a connection's tasks are
/// polled for every frame.
pub(crate) fn in_span<F: std::future::Future>(
    fut: F,
    span: tracing::Span,
) -> futures_util::future::Either<F, tracing::instrument::Instrumented<F>> {
    use tracing::Instrument;
    if span.is_disabled() {
        futures_util::future::Either::Left(fut)
    } else {
        futures_util::future::Either::Right(fut.instrument(span))
    }
}

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
