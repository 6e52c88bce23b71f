//! What the tools refuse: drift, divergent or missing history, ambiguous changes.

use std::path::Path;

use fluxon::migrate::{self, MigrateError, NoQuestions, Questioner};

use crate::postgres::{place, Backend};
use crate::versions::*;

crate::backends!(
    sync: a_drifted_database_is_refused_with_the_command_that_fixes_it,
    a_divergent_or_missing_migration_is_refused,
    an_undeclared_rename_is_asked_and_refused_without_a_terminal,
    a_not_null_column_without_default_needs_a_value_for_existing_rows,
    a_migration_that_leaves_a_dangling_reference_is_rolled_back,
    an_empty_migration_is_refused_where_its_section_has_no_sql,
);

/// The text `sql` returns from the database at `place`.
fn text(place: &str, sql: &str) -> String {
    use fluxon::db::Executor;
    let db = fluxon::db::Database::open(place).unwrap();
    let rows: Vec<(String,)> = db.execute(fluxon::db::Raw::query(sql)).unwrap();
    rows[0].0.clone()
}

fn a_drifted_database_is_refused_with_the_command_that_fixes_it(backend: Backend) {
    let (db_path, tmp) = place(backend);
    let db_path = Path::new(&db_path);
    let dir = tmp.path().join("migrations");
    migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions).unwrap();
    migrate::apply(db_path, &dir, None).unwrap();
    migrate::make_migrations(&dir, &v2::MODELS, None, &mut NoQuestions).unwrap();
    // The models say v2, the database is still at v1.
    let err = migrate::check_drift(db_path, &v2::MODELS).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, MigrateError::Drift { .. }), "{text}");
    assert!(
        text.contains("author.country is missing") && text.contains("cargo run -- migrate"),
        "{text}"
    );
    // An empty database drifts too.
    let (empty, _empty_dir) = place(backend);
    assert!(migrate::check_drift(Path::new(&empty), &v1::MODELS)
        .unwrap_err()
        .to_string()
        .contains("table author is missing"));
    migrate::apply(db_path, &dir, None).unwrap();
    migrate::check_drift(db_path, &v2::MODELS).unwrap();
}

fn a_divergent_or_missing_migration_is_refused(backend: Backend) {
    let (db_path, tmp) = place(backend);
    let db_path = Path::new(&db_path);
    let dir = tmp.path().join("migrations");
    let first = migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions)
        .unwrap()
        .unwrap();
    migrate::apply(db_path, &dir, None).unwrap();
    // Someone edits a migration that already ran.
    let edited = std::fs::read_to_string(&first.path)
        .unwrap()
        .replace("CREATE TABLE", "CREATE  TABLE");
    std::fs::write(&first.path, edited).unwrap();
    let err = migrate::apply(db_path, &dir, None).unwrap_err().to_string();
    assert!(err.contains("must not be edited"), "{err}");
    // Or deletes it.
    std::fs::remove_file(&first.path).unwrap();
    let err = migrate::apply(db_path, &dir, None).unwrap_err().to_string();
    assert!(err.contains("missing"), "{err}");
}

/// Answers from a script, and records the questions.
struct Script {
    renames: bool,
    default: &'static str,
    asked: Vec<String>,
}

impl Questioner for Script {
    fn is_rename(&mut self, what: &str) -> Result<bool, MigrateError> {
        self.asked.push(what.to_owned());
        Ok(self.renames)
    }
    fn default_for(&mut self, table: &str, column: &str) -> Result<String, MigrateError> {
        self.asked.push(format!("default for {table}.{column}"));
        Ok(self.default.to_owned())
    }
}

/// A v1 history applied to a database holding one author, Ann.
fn v1_with_ann(backend: Backend) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let (db_path, tmp) = place(backend);
    let dir = tmp.path().join("migrations");
    migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions).unwrap();
    migrate::apply(Path::new(&db_path), &dir, None).unwrap();
    fluxon::db::Database::open(&db_path)
        .and_then(|db| fluxon::db::Executor::insert(&db, &v1::Author { name: "Ann".into() }))
        .unwrap();
    (tmp, dir, db_path)
}

mod undeclared {
    use fluxon::db::Model;

    /// v1's author with `name` renamed to `full_name`, without `renamed_from`.
    #[derive(Model)]
    #[model(table = "author")]
    pub struct Author {
        #[field(max_length = 50)]
        pub full_name: String,
    }

    /// v1's author with a NOT NULL column and no default.
    #[derive(Model)]
    #[model(table = "author")]
    pub struct Strict {
        #[field(max_length = 50)]
        pub name: String,
        pub born: i32,
    }
}

fn an_undeclared_rename_is_asked_and_refused_without_a_terminal(backend: Backend) {
    use fluxon::db::Model;
    // The temp dir lives (and is removed) with `_tmp`.
    let (_tmp, dir, db_path) = v1_with_ann(backend);
    let models = [undeclared::Author::SCHEMA, v1::Book::SCHEMA];

    let err = migrate::make_migrations(&dir, &models, None, &mut NoQuestions)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("renamed to full_name") && err.contains("renamed_from"),
        "{err}"
    );

    let mut script = Script {
        renames: true,
        default: "0",
        asked: vec![],
    };
    let written = migrate::make_migrations(&dir, &models, None, &mut script)
        .unwrap()
        .unwrap();
    assert_eq!(script.asked, ["was author.name renamed to full_name"]);
    assert!(
        written.operations[0].contains("rename column name to full_name"),
        "{:?}",
        written.operations
    );
    migrate::apply(Path::new(&db_path), &dir, None).unwrap();
    assert_eq!(text(&db_path, "SELECT full_name FROM author"), "Ann");
}

fn a_not_null_column_without_default_needs_a_value_for_existing_rows(backend: Backend) {
    use fluxon::db::Model;
    // The temp dir lives (and is removed) with `_tmp`.
    let (_tmp, dir, db_path) = v1_with_ann(backend);
    let models = [undeclared::Strict::SCHEMA, v1::Book::SCHEMA];
    let err = migrate::make_migrations(&dir, &models, None, &mut NoQuestions)
        .unwrap_err()
        .to_string();
    assert!(err.contains("author.born is NOT NULL"), "{err}");
    let mut script = Script {
        renames: false,
        default: "1815",
        asked: vec![],
    };
    migrate::make_migrations(&dir, &models, None, &mut script)
        .unwrap()
        .unwrap();
    migrate::apply(Path::new(&db_path), &dir, None).unwrap();
    let born = crate::number(&db_path, "SELECT born FROM author WHERE name = 'Ann'");
    assert_eq!(born, 1815);
    migrate::check_drift(Path::new(&db_path), &models).unwrap();
}

fn a_migration_that_leaves_a_dangling_reference_is_rolled_back(backend: Backend) {
    let (db_path, tmp) = place(backend);
    let db = Path::new(&db_path);
    let dir = tmp.path().join("migrations");
    migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions).unwrap();
    migrate::apply(db, &dir, None).unwrap();
    // SQL of one's own that points a book at an author who does not exist.
    let custom = migrate::make_empty_migration(&dir, &v1::MODELS, Some("bad_data")).unwrap();
    let bad = "INSERT INTO author (name) VALUES ('Real');\nINSERT INTO book (title, author) VALUES ('Orphan', 999);";
    crate::fill_sections(&custom.path, bad, bad);
    let err = migrate::apply(db, &dir, None).unwrap_err().to_string();
    assert!(
        err.to_lowercase().contains("foreign key")
            && err.contains("book")
            && err.contains("V2__bad_data"),
        "{err}"
    );
    let rows = crate::number(
        &db_path,
        "SELECT (SELECT count(*) FROM book) + (SELECT count(*) FROM author)",
    );
    assert_eq!(rows, 0, "the whole migration was rolled back");
    let status = migrate::status(db, &dir).unwrap();
    assert_eq!(
        status.iter().filter(|(_, applied)| *applied).count(),
        1,
        "V2 not recorded as applied"
    );
}

fn an_empty_migration_is_refused_where_its_section_has_no_sql(backend: Backend) {
    let (db_path, tmp) = place(backend);
    let db = Path::new(&db_path);
    let dir = tmp.path().join("migrations");
    migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions).unwrap();
    let custom = migrate::make_empty_migration(&dir, &v1::MODELS, Some("seed")).unwrap();
    let err = migrate::apply(db, &dir, None).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, MigrateError::NoSqlFor { .. })
            && text.contains("V2__seed")
            && text.contains("section holds no statement"),
        "{text}"
    );
    assert_eq!(
        migrate::status(db, &dir)
            .unwrap()
            .iter()
            .filter(|(_, a)| *a)
            .count(),
        1,
        "V1 was applied before V2 was refused"
    );
    // With SQL for each backend, it runs on either; the other backend's SQL is never run.
    crate::fill_sections(
        &custom.path,
        "INSERT INTO author (name) VALUES ('from sqlite');",
        "INSERT INTO author (name) VALUES ('from postgres');",
    );
    migrate::apply(db, &dir, None).unwrap();
    let wanted = match backend {
        Backend::Sqlite => "from sqlite",
        Backend::Postgres => "from postgres",
    };
    assert_eq!(text_of(&db_path), wanted);
}

fn text_of(db_path: &str) -> String {
    text(db_path, "SELECT name FROM author")
}
