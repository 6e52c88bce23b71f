//! Migrations end to end: a sequence of model versions, each generated into real files and applied
//! with refinery to a real database holding rows, on both backends: a SQLite file in a temp dir,
//! and a fresh database on a throwaway PostgreSQL server.

#[path = "../support/postgres.rs"]
mod postgres;

mod versions;

mod postgres_history;

mod history;
mod repository;
mod sequence;

use fluxon::db::{Database, Executor, Raw};

/// The one integer `sql` returns from the database at `place`, on either backend.
pub fn number(place: &str, sql: &str) -> i64 {
    let db = Database::open(place).expect("open the database");
    let rows: Vec<(i64,)> = db.execute(Raw::query(sql)).expect(sql);
    rows[0].0
}

/// Each backend's SQL in a fresh empty migration (written by `makemigrations --empty`).
pub fn fill_sections(path: &std::path::Path, sqlite: &str, postgres: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text
        .replacen(
            "-- fluxon-backend: sqlite\n",
            &format!("-- fluxon-backend: sqlite\n{sqlite}\n"),
            1,
        )
        .replacen(
            "-- fluxon-backend: postgres\n",
            &format!("-- fluxon-backend: postgres\n{postgres}\n"),
            1,
        );
    std::fs::write(path, text).unwrap();
}
