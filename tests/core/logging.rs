//! The optional dated log file, as the original Fluxon wrote.

use fluxon::AsyncServer;

use crate::common::*;

#[tokio::test]
async fn log_dir_gets_a_file_named_for_today_with_the_server_log() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let server = start(AsyncServer::new(0).log_dir(&logs)).await;
    let addr = server.local_addr().to_string();
    let conn = connect(&server).await;
    assert_eq!(conn.call(add, &(1, 1)).await.unwrap(), 2);
    // A panic: the client is told an incident id, the log has the id with the panic's text.
    let panicked = conn.call(boom, &()).await.unwrap_err().to_string();
    let incident = panicked
        .split("incident ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("an incident id")
        .to_owned();
    assert!(!panicked.contains("boom goes the view"), "{panicked}");
    // An internal error (`?` on an I/O error): the same, with the error and its path in the log.
    let failed = conn
        .call(read_secret, &"keys.txt".to_owned())
        .await
        .unwrap_err()
        .to_string();
    let failed_incident = failed
        .split("incident ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("an incident id")
        .to_owned();
    assert!(!failed.contains("keys.txt"), "{failed}");
    conn.close().await;
    server.shutdown().await; // flushes the log writer

    let files: Vec<_> = std::fs::read_dir(&logs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    let date = name.strip_prefix("fluxon.log.").expect("fluxon.log.<date>");
    let parts: Vec<&str> = date.split('-').collect();
    assert!(
        parts.len() == 3 && parts[0].len() == 4 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "dated YYYY-MM-DD: {name}"
    );
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("fluxon server listening") && text.contains(&addr),
        "{text}"
    );
    let line = text
        .lines()
        .find(|line| line.contains(&incident))
        .unwrap_or_else(|| panic!("incident {incident} not in the log:\n{text}"));
    assert!(line.contains("boom goes the view"), "{line}");
    let line = text
        .lines()
        .find(|line| line.contains(&failed_incident))
        .unwrap_or_else(|| panic!("incident {failed_incident} not in the log:\n{text}"));
    assert!(line.contains("/nonexistent-fluxon-dir/keys.txt"), "{line}");
}
