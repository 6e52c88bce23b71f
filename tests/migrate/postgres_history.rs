//! What only PostgreSQL does with a history: runs files written before migrations had a section
//! per backend (made again from their schema lines), refuses the ones it cannot make again, rolls
//! back DDL with the rest of a failed migration, and converts a column's values with `USING`.

use std::path::Path;

use fluxon::db::{Database, Dialect, Executor, Model};
use fluxon::migrate::{self, MigrateError, NoQuestions, Questioner};

use crate::postgres::{place, Backend};
use crate::versions::*;

/// Rewrites a migration file as makemigrations wrote it before sections existed: the header, SQLite's
/// statements, the schema line.
fn to_old_format(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.replacen("-- fluxon-backend: sqlite\n", "", 1);
    let start = text.find("-- fluxon-backend: postgres\n").unwrap();
    let end = text.find("-- fluxon-schema: ").unwrap();
    let text = format!("{}{}", &text[..start], &text[end..]);
    std::fs::write(path, text).unwrap();
}

/// The history v1..v4 (a column added, dropped under rows that point at its table, renamed and
/// widened), written in the old format.
fn old_history(dir: &Path) {
    for models in [&v1::MODELS[..], &v2::MODELS, &v3::MODELS, &v4::MODELS] {
        let written = migrate::make_migrations(dir, models, None, &mut NoQuestions)
            .unwrap()
            .unwrap();
        to_old_format(&written.path);
    }
}

#[test]
fn an_old_history_reaches_postgres_from_its_schema_lines_with_the_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    old_history(&dir);
    let v1_text = std::fs::read_to_string(dir.join("V1__initial.sql")).unwrap();
    assert!(
        v1_text.contains("AUTOINCREMENT") && !v1_text.contains("fluxon-backend"),
        "{v1_text}"
    );
    let postgres = migrate::sql_of(&dir, 4, Dialect::Postgres).unwrap();
    assert!(
        postgres.contains("RENAME COLUMN \"name\" TO \"full_name\"")
            && postgres.contains("char_length(\"full_name\") <= 200")
            && !postgres.contains("__fluxon_new"),
        "{postgres}"
    );
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (place, _guard) = place(backend);
        let db_path = Path::new(&place);
        migrate::apply(db_path, &dir, Some(1)).unwrap();
        {
            let db = Database::open(&place).unwrap();
            let ann = db.insert(&v1::Author { name: "Ann".into() }).unwrap();
            db.insert(&v1::Book {
                title: "Ann 1".into(),
                author: ann.into(),
            })
            .unwrap();
        }
        assert_eq!(migrate::apply(db_path, &dir, None).unwrap().len(), 3);
        migrate::check_drift(db_path, &v4::MODELS).unwrap();
        let db = Database::open(&place).unwrap();
        let names: Vec<(String,)> = db
            .check_all::<v4::Author>()
            .columns((v4::Author::full_name,))
            .unwrap();
        assert_eq!(names, [("Ann".to_owned(),)], "{backend:?}");
        assert_eq!(
            db.check_all::<v4::Book>().count().unwrap(),
            1,
            "{backend:?}"
        );
    }
}

#[test]
fn old_files_postgres_cannot_make_again_are_refused_with_the_reason() {
    // A value typed at a prompt for existing rows is in SQLite's SQL only.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions).unwrap();
    struct Answer;
    impl Questioner for Answer {
        fn is_rename(&mut self, _: &str) -> Result<bool, MigrateError> {
            Ok(false)
        }
        fn default_for(&mut self, _: &str, _: &str) -> Result<String, MigrateError> {
            Ok("1815".to_owned())
        }
    }
    let strict = [strict::Author::SCHEMA, v1::Book::SCHEMA];
    migrate::make_migrations(&dir, &strict, None, &mut Answer)
        .unwrap()
        .unwrap();
    for file in migrate::list(&dir).unwrap() {
        to_old_format(&file.path);
    }
    let (url, _guard) = place(Backend::Postgres);
    let err = migrate::apply(Path::new(&url), &dir, None).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, MigrateError::NoSqlFor { .. })
            && text.contains("V2__")
            && text.contains("postgres")
            && text.contains("author.born"),
        "{text}"
    );
    assert_eq!(
        migrate::status(Path::new(&url), &dir)
            .unwrap()
            .iter()
            .filter(|(_, applied)| *applied)
            .count(),
        1,
        "V1 applied, V2 refused"
    );

    // An old empty migration: nothing in it runs everywhere; SQL in it is SQLite's alone.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions).unwrap();
    let v1 = migrate::list(&dir).unwrap().remove(0);
    to_old_format(&v1.path);
    let schema_line = std::fs::read_to_string(&v1.path)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("-- fluxon-schema: "))
        .unwrap()
        .to_owned();
    let old_empty = |sql: &str| {
        format!(
            "-- V2__custom: generated by fluxon makemigrations\n--\n-- (empty: write your own SQL below)\n\n{sql}\n{schema_line}\n"
        )
    };
    std::fs::write(dir.join("V2__custom.sql"), old_empty("")).unwrap();
    let (url, _guard) = place(Backend::Postgres);
    assert_eq!(
        migrate::apply(Path::new(&url), &dir, None).unwrap().len(),
        2
    );
    std::fs::write(
        dir.join("V3__pragma.sql"),
        old_empty("PRAGMA user_version = 3;").replace("V2__custom", "V3__pragma"),
    )
    .unwrap();
    let err = migrate::apply(Path::new(&url), &dir, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("V3__pragma") && err.contains("written by hand"),
        "{err}"
    );
    let (sqlite, _guard) = place(Backend::Sqlite);
    assert_eq!(
        migrate::apply(Path::new(&sqlite), &dir, None)
            .unwrap()
            .len(),
        3,
        "SQLite runs it as it always did"
    );
}

mod strict {
    use fluxon::db::Model;

    /// v1's author with a NOT NULL column and no default.
    #[derive(Model)]
    #[model(table = "author")]
    pub struct Author {
        #[field(max_length = 50)]
        pub name: String,
        pub born: i32,
    }
}

#[test]
fn a_failed_migration_leaves_no_table_behind() {
    let (url, tmp) = place(Backend::Postgres);
    let dir = tmp.path().join("migrations");
    migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions).unwrap();
    let custom = migrate::make_empty_migration(&dir, &v1::MODELS, Some("half")).unwrap();
    crate::fill_sections(
        &custom.path,
        "SELECT 1;",
        "CREATE TABLE half_made (x INTEGER);\nALTER TABLE author ADD COLUMN extra TEXT;\nSELECT 1 / 0;",
    );
    let err = migrate::apply(Path::new(&url), &dir, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("V2__half"), "{err}");
    assert_eq!(
        crate::number(
            &url,
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'half_made'"
        ),
        0,
        "the CREATE TABLE was rolled back with the rest"
    );
    migrate::check_drift(Path::new(&url), &v1::MODELS).expect("author has no extra column");
}

mod digits {
    pub mod before {
        use fluxon::db::Model;

        #[derive(Model, Debug)]
        #[model(table = "ticket")]
        pub struct Ticket {
            #[field(max_length = 10, default = "7")]
            pub code: String,
            pub paid: i64,
        }

        pub const MODELS: [fluxon::db::TableSchema; 1] = [Ticket::SCHEMA];
    }

    pub mod after {
        use fluxon::db::Model;

        #[derive(Model, Debug)]
        #[model(table = "ticket")]
        pub struct Ticket {
            #[field(default = 7)]
            pub code: i64,
            pub paid: bool,
        }

        pub const MODELS: [fluxon::db::TableSchema; 1] = [Ticket::SCHEMA];
    }
}

#[test]
fn a_type_change_converts_the_values_in_place() {
    let (url, tmp) = place(Backend::Postgres);
    let dir = tmp.path().join("migrations");
    migrate::make_migrations(&dir, &digits::before::MODELS, None, &mut NoQuestions).unwrap();
    migrate::apply(Path::new(&url), &dir, None).unwrap();
    {
        let db = Database::open(&url).unwrap();
        for (code, paid) in [("12", 0), ("34", 1)] {
            db.insert(&digits::before::Ticket {
                code: code.into(),
                paid,
            })
            .unwrap();
        }
    }
    migrate::make_migrations(&dir, &digits::after::MODELS, None, &mut NoQuestions).unwrap();
    let sql = migrate::sql_of(&dir, 2, Dialect::Postgres).unwrap();
    assert!(
        sql.contains("TYPE BIGINT USING \"code\"::BIGINT")
            && sql.contains("TYPE BOOLEAN USING \"paid\" <> 0")
            && sql.contains("SET DEFAULT 7"),
        "{sql}"
    );
    migrate::apply(Path::new(&url), &dir, None).unwrap();
    migrate::check_drift(Path::new(&url), &digits::after::MODELS).unwrap();
    let db = Database::open(&url).unwrap();
    let rows: Vec<(i64, bool)> = db
        .check_all::<digits::after::Ticket>()
        .order_by(digits::after::Ticket::code.asc())
        .columns((digits::after::Ticket::code, digits::after::Ticket::paid))
        .unwrap();
    assert_eq!(rows, [(12, false), (34, true)]);
    db.execute(fluxon::db::Raw::statement(
        "INSERT INTO ticket (paid) VALUES (TRUE)",
    ))
    .unwrap();
    assert_eq!(
        crate::number(&url, "SELECT code FROM ticket WHERE code NOT IN (12, 34)"),
        7,
        "the new default"
    );
}

#[test]
fn two_nodes_migrating_at_once_apply_each_migration_once() {
    let (url, tmp) = place(Backend::Postgres);
    let dir = tmp.path().join("migrations");
    for models in [&v1::MODELS[..], &v2::MODELS, &v3::MODELS, &v4::MODELS] {
        migrate::make_migrations(&dir, models, None, &mut NoQuestions).unwrap();
    }
    let applied: Vec<usize> = std::thread::scope(|scope| {
        let nodes: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| migrate::apply(Path::new(&url), &dir, None).map(|a| a.len())))
            .collect();
        nodes
            .into_iter()
            .map(|node| node.join().unwrap().expect("both nodes' migrate succeeds"))
            .collect()
    });
    assert_eq!(applied.iter().sum::<usize>(), 4, "{applied:?}");
    assert_eq!(
        crate::number(&url, "SELECT count(*) FROM refinery_schema_history"),
        4
    );
    migrate::check_drift(Path::new(&url), &v4::MODELS).unwrap();
}
