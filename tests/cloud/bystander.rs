//! A well-behaved user of the cloud endpoint who keeps working while a test attacks it: every
//! round asks the main port for a grant, stats its own file on the cloud port (and, if asked,
//! replaces another), and calls a view; each step must be answered within [`PROMPT`] *while*
//! the attack goes on, not only once it is over.

use std::time::Duration;

use fluxon::cloud::CloudOperation::*;

use crate::common::{grant, Cloud};

/// The longest one step of the bystander may take during an attack. Loopback operations take
/// milliseconds; a second leaves room for a debug build on a shared two-core machine.
pub const PROMPT: Duration = Duration::from_secs(1);

/// The owner root the bystander works in (user 99).
pub const ROOT: &str = "bystander";

/// A bystander of the cloud endpoint (see the module docs): the shared round loop with cloud
/// rounds.
pub type Bystander = crate::support::Bystander;

/// `step` within [`PROMPT`], or a panic naming it.
async fn prompt<T>(what: &str, round: u64, step: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PROMPT, step)
        .await
        .unwrap_or_else(|_| {
            panic!("bystander round {round}: {what} not answered within {PROMPT:?}")
        })
}

/// Starts working as user 99 in its own root; with `writes`, each round also uploads.
pub async fn start(cloud: &Cloud, writes: bool) -> Bystander {
    let (conn, connector) = cloud.owner(99, ROOT, 1 << 30).await;
    let seen = format!("{ROOT}/seen.txt");
    connector
        .write_bytes(&grant(&conn, WriteFile, &seen).await, b"seen")
        .await
        .unwrap();
    // Each step has its own bound; a round has at most five.
    Bystander::rounds(5 * PROMPT, move |n| {
        let (conn, connector, seen) = (conn.clone(), connector.clone(), seen.clone());
        async move {
            let g = prompt("a stat grant", n, grant(&conn, Stat, &seen)).await;
            let stat = prompt("a stat", n, connector.stat(&g))
                .await
                .unwrap_or_else(|err| panic!("bystander round {n}: stat failed: {err}"));
            assert_eq!(stat.size, 4, "bystander round {n}: stat answered wrongly");
            if writes {
                let path = format!("{ROOT}/w.txt");
                let g = prompt("a write grant", n, grant(&conn, WriteFile, &path)).await;
                let body = n.to_le_bytes();
                let stat = prompt("a write", n, connector.write_bytes(&g, &body))
                    .await
                    .unwrap_or_else(|e| panic!("bystander round {n}: write failed: {e}"));
                assert_eq!(stat.size, 8);
            }
            let echoed: String = prompt("a call", n, conn.send_request("echo", "here"))
                .await
                .unwrap_or_else(|err| panic!("bystander round {n}: call failed: {err}"));
            assert_eq!(echoed, "here");
        }
    })
}
