//! What the tools refuse: drift, divergent or missing history, ambiguous changes.

use fluxon::migrate::{self, MigrateError, NoQuestions, Questioner};

use crate::versions::*;

#[test]
fn a_drifted_database_is_refused_with_the_command_that_fixes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    let db_path = tmp.path().join("app.sqlite3");
    migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions).unwrap();
    migrate::apply(&db_path, &dir, None).unwrap();
    migrate::make_migrations(&dir, &v2::MODELS, None, &mut NoQuestions).unwrap();
    // The models say v2, the database is still at v1.
    let err = migrate::check_drift(&db_path, &v2::MODELS).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, MigrateError::Drift { .. }), "{text}");
    assert!(
        text.contains("author.country is missing") && text.contains("cargo run -- migrate"),
        "{text}"
    );
    // An empty database drifts too.
    let empty = tmp.path().join("empty.sqlite3");
    assert!(migrate::check_drift(&empty, &v1::MODELS)
        .unwrap_err()
        .to_string()
        .contains("table author is missing"));
    migrate::apply(&db_path, &dir, None).unwrap();
    migrate::check_drift(&db_path, &v2::MODELS).unwrap();
}

#[test]
fn a_divergent_or_missing_migration_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    let db_path = tmp.path().join("app.sqlite3");
    let first = migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions)
        .unwrap()
        .unwrap();
    migrate::apply(&db_path, &dir, None).unwrap();
    // Someone edits a migration that already ran.
    let edited = std::fs::read_to_string(&first.path)
        .unwrap()
        .replace("CREATE TABLE", "CREATE  TABLE");
    std::fs::write(&first.path, edited).unwrap();
    let err = migrate::apply(&db_path, &dir, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must not be edited"), "{err}");
    // Or deletes it.
    std::fs::remove_file(&first.path).unwrap();
    let err = migrate::apply(&db_path, &dir, None)
        .unwrap_err()
        .to_string();
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
fn v1_with_ann() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    let db_path = tmp.path().join("app.sqlite3");
    migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions).unwrap();
    migrate::apply(&db_path, &dir, None).unwrap();
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

#[test]
fn an_undeclared_rename_is_asked_and_refused_without_a_terminal() {
    use fluxon::db::Model;
    // The temp dir lives (and is removed) with `_tmp`.
    let (_tmp, dir, db_path) = v1_with_ann();
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
    migrate::apply(&db_path, &dir, None).unwrap();
    let name: String = rusqlite::Connection::open(&db_path)
        .unwrap()
        .query_row("SELECT full_name FROM author", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "Ann");
}

#[test]
fn a_not_null_column_without_default_needs_a_value_for_existing_rows() {
    use fluxon::db::Model;
    // The temp dir lives (and is removed) with `_tmp`.
    let (_tmp, dir, db_path) = v1_with_ann();
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
    migrate::apply(&db_path, &dir, None).unwrap();
    let born: i64 = rusqlite::Connection::open(&db_path)
        .unwrap()
        .query_row("SELECT born FROM author WHERE name = 'Ann'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(born, 1815);
}

#[test]
fn a_migration_that_leaves_a_dangling_reference_is_rolled_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    let db_path = tmp.path().join("app.sqlite3");
    migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions).unwrap();
    migrate::apply(&db_path, &dir, None).unwrap();
    // SQL of one's own that points a book at an author who does not exist.
    let custom = migrate::make_empty_migration(&dir, &v1::MODELS, Some("bad_data")).unwrap();
    let text = std::fs::read_to_string(&custom.path).unwrap();
    let text = text.replacen(
        "\n\n",
        "\n\nINSERT INTO author (name) VALUES ('Real');\nINSERT INTO book (title, author) VALUES ('Orphan', 999);\n",
        1,
    );
    std::fs::write(&custom.path, text).unwrap();
    let err = migrate::apply(&db_path, &dir, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("foreign key check failed") && err.contains("book"),
        "{err}"
    );
    let conn = rusqlite::Connection::open(&db_path).unwrap();
    let rows: i64 = conn
        .query_row(
            "SELECT (SELECT count(*) FROM book) + (SELECT count(*) FROM author)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0, "the whole migration was rolled back");
    let status = migrate::status(&db_path, &dir).unwrap();
    assert_eq!(
        status.iter().filter(|(_, applied)| *applied).count(),
        1,
        "V2 not recorded as applied"
    );
}
