//! The example apps' command line, as a user's `main.rs` would look: `cargo run` serves the school
//! on 127.0.0.1:8080 (after checking its database against the models), `cargo run --
//! makemigrations` writes the repository's `migrations/`, `cargo run -- migrate` applies them.

use std::process::ExitCode;

use fluxon::cli::App;
use fluxon::AsyncServer;
use fluxon_apps::school;

fn main() -> ExitCode {
    let app = App::new("school")
        .models(&school::MODELS)
        .migrations(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .serve_with(|db| Ok(AsyncServer::new(8080).router(school::router(db)?)));
    fluxon::cli::run(app)
}
