//! Sweeping the cloud folder of what interrupted operations left behind: partial uploads nobody
//! resumed within the partial TTL, and deleted items whose removal was cut short.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::path::RESERVED_PREFIX;
use super::server::Endpoint;

/// How often the folder is swept (and once at start-up).
const EVERY: Duration = Duration::from_secs(3600);

pub(crate) async fn sweep_partials(endpoint: Arc<Endpoint>) {
    loop {
        let root = endpoint.cloud.folder().to_path_buf();
        let ttl = endpoint.partial_ttl;
        let swept = tokio::task::spawn_blocking(move || sweep(&root, ttl, SystemTime::now())).await;
        match swept {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "swept abandoned partial uploads"),
            Err(err) => tracing::warn!(%err, "sweeping the cloud folder failed"),
        }
        tokio::select! {
            () = endpoint.shutdown.cancelled() => break,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// Removes the server's own leftovers under `dir` last changed more than `ttl` before `now`;
/// returns how many. Errors on single entries are skipped (the next sweep tries again).
pub(crate) fn sweep(dir: &Path, ttl: Duration, now: SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let name = entry.file_name();
        let ours = name
            .to_str()
            .is_some_and(|n| n.starts_with(RESERVED_PREFIX));
        if ours {
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age >= ttl);
            if old {
                let gone = if meta.is_dir() {
                    std::fs::remove_dir_all(entry.path())
                } else {
                    std::fs::remove_file(entry.path())
                };
                removed += usize::from(gone.is_ok());
            }
        } else if meta.is_dir() {
            removed += sweep(&entry.path(), ttl, now);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_own_old_leftovers_go() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("jack/docs");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join(".fluxon-part-abc-10"), b"partial").unwrap();
        std::fs::create_dir(deep.join(".fluxon-trash-1")).unwrap();
        std::fs::write(deep.join(".fluxon-trash-1/x"), b"deleted").unwrap();
        std::fs::write(deep.join("user.txt"), b"keep").unwrap();
        std::fs::write(dir.path().join("jack/.hidden-by-user"), b"keep").unwrap();

        let now = SystemTime::now();
        assert_eq!(
            sweep(dir.path(), Duration::from_secs(3600), now),
            0,
            "too young"
        );
        let later = now + Duration::from_secs(7200);
        assert_eq!(sweep(dir.path(), Duration::from_secs(3600), later), 2);
        assert!(!deep.join(".fluxon-part-abc-10").exists());
        assert!(!deep.join(".fluxon-trash-1").exists());
        assert!(deep.join("user.txt").exists());
        assert!(dir.path().join("jack/.hidden-by-user").exists());
    }
}
