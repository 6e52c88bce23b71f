//! The hourly sweep (and one at start-up): audit lines past their retention, uploads nobody
//! resumed within the partial TTL (their reservation and their partial file together), and the
//! disk's leftovers (the remains of deletions whose removal was cut short, partial files no
//! upload holds any more). Each part is bounded: audit lines go in batches, stale uploads a
//! batch at a time, and one pass over the disk reads at most a bounded number of entries in a
//! bounded time (what it misses, the next sweep finds).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cap_std::fs::Dir;

use super::metadata;
use super::path::{CloudPath, RESERVED_PREFIX};
use super::server::Endpoint;
use super::upload::partial_name;
use super::uploads;
use super::walk::{self, WalkBound, BACKGROUND};
use crate::db::OffsetDateTime;

/// How often the folder is swept (and once at start-up).
const EVERY: Duration = Duration::from_secs(3600);

/// Rows removed per transaction.
const BATCH: i64 = 10_000;

/// Batches per sweep, for each table: a sweep gets through at most this many times [`BATCH`]
/// rows and leaves the rest for the next one.
const MAX_BATCHES: usize = 100;

/// The start of the names deletions leave.
pub(crate) const TRASH_PREFIX: &str = ".fluxon-trash-";

pub(crate) async fn sweep_loop(endpoint: Arc<Endpoint>) {
    loop {
        sweep_once(&endpoint).await;
        tokio::select! {
            () = endpoint.shutdown.cancelled() => break,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// `now` less `age`, in the database's time.
fn cutoff(age: Duration) -> OffsetDateTime {
    let age = time::Duration::try_from(age).unwrap_or(time::Duration::MAX);
    OffsetDateTime::now_utc()
        .checked_sub(age)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

async fn sweep_once(ep: &Endpoint) {
    let db = ep.cloud.database();
    let settings = ep.settings;

    let before = cutoff(settings.audit_retention);
    let mut audits = 0;
    for _ in 0..MAX_BATCHES {
        let batch = db
            .transaction_with(move |tx| metadata::forget_audit_before(tx, before, BATCH))
            .await;
        match batch {
            Ok(n) => {
                audits += n;
                if i64::try_from(n).unwrap_or(0) < BATCH {
                    break;
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot prune the cloud audit log");
                break;
            }
        }
    }

    let before = cutoff(settings.partial_ttl);
    let stale = metadata::read_metadata(db, move |conn| uploads::stale(conn, before, BATCH)).await;
    let mut abandoned = 0;
    for upload in stale.unwrap_or_default() {
        let Ok(path) = CloudPath::parse(&upload.path) else {
            continue;
        };
        // Held as a writer would be, so no upload of the path starts while it goes.
        let Some(_writing) = ep.cloud.start_writing(&path) else {
            continue;
        };
        let id = upload.id;
        let forgot = db
            .transaction_with(move |tx| uploads::forget_stale(tx, id, before))
            .await;
        if !matches!(forgot, Ok(true)) {
            continue;
        }
        let disk = ep.cloud.disk().clone();
        let removed = tokio::task::spawn_blocking(move || {
            let partial = disk.at(&path)?.sibling(&partial_name(path.as_str()));
            partial.remove_file()
        })
        .await;
        abandoned += usize::from(matches!(removed, Ok(Ok(()))));
    }

    let live = metadata::read_metadata(db, uploads::every_path).await;
    let Ok(live) = live else {
        // Without the live uploads no partial file can be told abandoned: skip the disk.
        return;
    };
    let live: HashSet<String> = live.iter().map(|path| partial_name(path)).collect();
    let root = ep.cloud.disk().clone();
    let ttl = settings.partial_ttl;
    let swept = tokio::task::spawn_blocking(move || {
        sweep_disk(root.root(), &live, ttl, SystemTime::now(), BACKGROUND)
    })
    .await
    .unwrap_or(0);
    if audits + abandoned + swept > 0 {
        tracing::info!(
            audit_lines = audits,
            abandoned_uploads = abandoned,
            leftovers = swept,
            "swept the cloud storage"
        );
    }
}

/// Removes the server's own leftovers under `root`: every deletion's remains, and every other
/// file of the server's own last changed more than `ttl` before `now` but the partial files
/// named in `live`. Returns how many went. Reads at most `bound`; errors on single entries are
/// skipped (the next sweep tries again). Symlinks are neither followed nor removed.
pub(crate) fn sweep_disk(
    root: &Dir,
    live: &HashSet<String>,
    ttl: Duration,
    now: SystemTime,
    bound: WalkBound,
) -> usize {
    let deadline = std::time::Instant::now() + bound.time;
    let mut read = 0usize;
    let mut removed = 0;
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let Ok(dir) = walk::open_dir_no_follow_path(root, &rel) else {
            continue;
        };
        let Ok(entries) = dir.entries() else { continue };
        for entry in entries.flatten() {
            read += 1;
            if read > bound.entries || std::time::Instant::now() >= deadline {
                return removed;
            }
            let name = entry.file_name();
            let Some(text) = name.to_str() else { continue };
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_symlink() {
                continue;
            }
            let child = rel.join(&name);
            if !text.starts_with(RESERVED_PREFIX) {
                if kind.is_dir() {
                    pending.push(child);
                }
                continue;
            }
            if live.contains(text) {
                continue;
            }
            let old = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|m| now.duration_since(m.into_std()).ok())
                .is_some_and(|age| age >= ttl);
            if !text.starts_with(TRASH_PREFIX) && !old {
                continue;
            }
            let gone = if kind.is_dir() {
                let left = WalkBound {
                    entries: bound.entries.saturating_sub(read),
                    time: deadline.saturating_duration_since(std::time::Instant::now()),
                };
                matches!(walk::remove_tree(root, &child, left), Ok(true))
            } else {
                root.remove_file(&child).is_ok()
            };
            removed += usize::from(gone);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_own_leftovers_go_and_live_partials_stay() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("jack/docs");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join(".fluxon-part-abc"), b"partial").unwrap();
        std::fs::write(deep.join(".fluxon-part-live"), b"resumable").unwrap();
        std::fs::create_dir(deep.join(".fluxon-trash-1")).unwrap();
        std::fs::write(deep.join(".fluxon-trash-1/x"), b"deleted").unwrap();
        std::fs::write(deep.join("user.txt"), b"keep").unwrap();
        std::fs::write(dir.path().join("jack/.hidden-by-user"), b"keep").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join(".fluxon-part-x"), b"not ours").unwrap();
        std::os::unix::fs::symlink(outside.path(), deep.join("link")).unwrap();
        let root = Dir::open_ambient_dir(dir.path(), cap_std::ambient_authority()).unwrap();
        let live: HashSet<String> = [".fluxon-part-live".to_owned()].into();
        let hour = Duration::from_secs(3600);

        let now = SystemTime::now();
        assert_eq!(
            sweep_disk(&root, &live, hour, now, BACKGROUND),
            1,
            "a deletion's remains go at once, a young partial stays"
        );
        assert!(!deep.join(".fluxon-trash-1").exists());
        assert!(deep.join(".fluxon-part-abc").exists());
        let later = now + 2 * hour;
        assert_eq!(sweep_disk(&root, &live, hour, later, BACKGROUND), 1);
        assert!(!deep.join(".fluxon-part-abc").exists());
        assert!(
            deep.join(".fluxon-part-live").exists(),
            "an upload holds it"
        );
        assert!(deep.join("user.txt").exists());
        assert!(dir.path().join("jack/.hidden-by-user").exists());
        assert!(outside.path().join(".fluxon-part-x").exists());
        // A pass that may read nothing removes nothing.
        std::fs::create_dir(deep.join(".fluxon-trash-2")).unwrap();
        let none = WalkBound {
            entries: 0,
            time: hour,
        };
        assert_eq!(sweep_disk(&root, &live, hour, later, none), 0);
        assert!(deep.join(".fluxon-trash-2").exists());
    }
}
