//! The server console: commands typed at the terminal while the server runs (the original's
//! `saveschema` / `updateschema`, without arbitrary code execution and without wiping data).

use std::io::BufRead;
use std::path::PathBuf;

use crate::db::TableSchema;
use crate::migrate;
use crate::server::ServerHandle;

/// What the console works on.
pub(super) struct Console {
    pub server: ServerHandle,
    pub models: Vec<TableSchema>,
    pub database: PathBuf,
    pub migrations: PathBuf,
}

const HELP: &str =
    "commands: help, status, sessions, makemigrations, migrate, showmigrations, terminate";

impl Console {
    /// Runs one command line; returns the text to print and whether to stop the server.
    pub fn command(&self, line: &str) -> (String, bool) {
        match line.trim() {
            "" => (String::new(), false),
            "help" => (HELP.to_owned(), false),
            "status" => (
                format!(
                    "listening on {}; {} connections; {} sessions{}",
                    self.server.local_addr(),
                    self.server.connection_count(),
                    self.server.session_count(),
                    if self.server.is_shutting_down() {
                        "; shutting down"
                    } else {
                        ""
                    }
                ),
                false,
            ),
            "sessions" => {
                let list = self.server.sessions_list();
                let mut text = format!("{} sessions", list.len());
                for (id, user, connections) in list {
                    let user = user.map_or("not logged in".to_owned(), |u| format!("user {u}"));
                    text.push_str(&format!("\n  {id}  {user}  {connections} connection(s)"));
                }
                (text, false)
            }
            "makemigrations" => {
                let result = migrate::make_migrations(
                    &self.migrations,
                    &self.models,
                    None,
                    &mut migrate::NoQuestions,
                );
                let text = match result {
                    Ok(Some(written)) => format!(
                        "wrote {}: {}",
                        written.path.display(),
                        written.operations.join("; ")
                    ),
                    Ok(None) => "no changes".to_owned(),
                    Err(err) => format!("error: {err}"),
                };
                (text, false)
            }
            "migrate" => {
                let text = match migrate::apply(&self.database, &self.migrations, None) {
                    Ok(applied) if applied.is_empty() => "no migrations to apply".to_owned(),
                    Ok(applied) => applied
                        .iter()
                        .map(|(v, n)| format!("applied V{v}__{n}"))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    Err(err) => format!("error: {err}"),
                };
                (text, false)
            }
            "showmigrations" => {
                let text = match migrate::status(&self.database, &self.migrations) {
                    Ok(list) => list
                        .iter()
                        .map(|(m, applied)| {
                            format!("[{}] {}", if *applied { "X" } else { " " }, m.file_stem())
                        })
                        .collect::<Vec<_>>()
                        .join("\n"),
                    Err(err) => format!("error: {err}"),
                };
                (text, false)
            }
            "terminate" => ("shutting down".to_owned(), true),
            other => (format!("unknown command `{other}`; {HELP}"), false),
        }
    }
}

/// Reads commands from stdin on a thread of its own until `terminate` or end of input.
pub(super) fn spawn(console: Console) {
    let spawned = std::thread::Builder::new()
        .name("fluxon-console".to_owned())
        .spawn(move || {
            println!("console ready; {HELP}");
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                let (text, stop) = console.command(&line);
                if !text.is_empty() {
                    println!("{text}");
                }
                if stop {
                    console.server.shutdown();
                    break;
                }
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(%err, "no console: cannot start its thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Model;

    #[derive(Model)]
    struct Note {
        text: String,
    }

    #[tokio::test]
    async fn console_commands_report_and_manage_migrations() {
        let tmp = tempfile::tempdir().unwrap();
        let running = crate::AsyncServer::new(0)
            .router(crate::Router::new())
            .start()
            .await
            .unwrap();
        let console = Console {
            server: running.handle(),
            models: vec![Note::SCHEMA],
            database: tmp.path().join("db.sqlite3"),
            migrations: tmp.path().join("migrations"),
        };
        assert!(console.command("help").0.contains("terminate"));
        assert!(console.command("status").0.contains("0 connections"));
        let conn = crate::ConnectionHandler::connect(running.local_addr().to_string())
            .await
            .unwrap();
        let listed = console.command("sessions").0;
        assert!(
            listed.starts_with("1 sessions") && listed.contains("not logged in  1 connection"),
            "{listed}"
        );
        conn.close().await;
        let (made, stop) = console.command("makemigrations");
        assert!(
            made.contains("V1__initial.sql") && made.contains("create table note"),
            "{made}"
        );
        assert!(!stop);
        assert_eq!(console.command("makemigrations").0, "no changes");
        assert_eq!(console.command("showmigrations").0, "[ ] V1__initial");
        assert_eq!(console.command("migrate").0, "applied V1__initial");
        assert_eq!(console.command("showmigrations").0, "[X] V1__initial");
        assert!(console
            .command("drop database")
            .0
            .starts_with("unknown command"));
        let (_, stop) = console.command("terminate");
        assert!(stop);
        running.shutdown().await;
    }
}
