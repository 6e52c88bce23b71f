//! The example apps' command line, as a user's `main.rs` would look: `cargo run` serves the school
//! on 127.0.0.1:8080 (after checking its database against the models), `cargo run --
//! makemigrations` writes the repository's `migrations/`, `cargo run -- migrate` applies them.
//!
//! One command is the app's own: `cargo run -- createstaff NAME` makes a staff member, the
//! password read from the first line of standard input. That is the administrator's step: the
//! school has no view anyone could call to make themselves staff.

use std::io::BufRead;
use std::process::ExitCode;

use fluxon::cli::App;
use fluxon::db::AsyncDatabase;
use fluxon::AsyncServer;
use fluxon_apps::school;

fn main() -> ExitCode {
    // The database: `school.sqlite3`, or where FLUXON_DATABASE_URL says (a `postgres://` URL).
    let app = App::new("school")
        .models(&school::MODELS)
        .migrations(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .serve_with(|db| Ok(AsyncServer::new(8080).router(school::router(db)?)));
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("createstaff") {
        return match create_staff(app.database_place(), args.get(2).map(String::as_str)) {
            Ok(id) => {
                println!("staff member {id} created");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    fluxon::cli::run(app)
}

/// `createstaff NAME`: the password from standard input, so it is in no shell history.
fn create_staff(database: &std::path::Path, name: Option<&str>) -> anyhow::Result<i64> {
    let name =
        name.ok_or_else(|| anyhow::anyhow!("usage: createstaff NAME (password on stdin)"))?;
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(password.len() >= 8, "the password must be at least 8 bytes");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        fluxon::migrate::check_drift(database, &school::MODELS)?;
        let db = AsyncDatabase::open(database)?;
        school::create_staff(&db, name, password)
            .await
            .map_err(|err| anyhow::anyhow!(err))
    })
}
