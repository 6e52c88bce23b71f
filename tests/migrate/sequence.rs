//! Each model version is generated and applied to a database holding rows, on both backends;
//! every surviving value is kept, foreign keys stay intact, and no child row is lost to a rebuild
//! (SQLite) or an ALTER (PostgreSQL, which never rebuilds a table).

use std::path::Path;

use fluxon::db::{Database, Dialect, Executor};
use fluxon::migrate::{self, NoQuestions};

use crate::postgres::{place, Backend};
use crate::versions::*;

crate::backends!(
    sync: a_sequence_of_model_versions_keeps_every_row,
    check_passes_when_nothing_changed_and_migrate_is_idempotent,
    a_type_change_a_new_unique_and_a_table_rename_keep_the_rows,
    an_index_is_added_and_dropped_without_a_rebuild,
    a_renamed_table_takes_its_indexes_along,
);

fn step(dir: &Path, db_path: &str, models: &[fluxon::db::TableSchema], expect: &[&str]) {
    let db_path = Path::new(db_path);
    migrate::check(dir, models).expect_err("the models are ahead of the history");
    let written = migrate::make_migrations(dir, models, None, &mut NoQuestions)
        .expect("makemigrations")
        .expect("a migration was written");
    for (operation, wanted) in written.operations.iter().zip(expect) {
        assert!(
            operation.starts_with(wanted),
            "{operation:?} should start with {wanted:?}"
        );
    }
    assert_eq!(
        written.operations.len(),
        expect.len(),
        "{:?}",
        written.operations
    );
    migrate::check(dir, models).expect("the history caught up");
    let applied = migrate::apply(db_path, dir, None).expect("migrate");
    assert_eq!(applied.len(), 1);
    migrate::check_drift(db_path, models).expect("no drift after migrating");
    let version = migrate::list(dir).unwrap().last().unwrap().version;
    let postgres = migrate::sql_of(dir, version, Dialect::Postgres).unwrap();
    assert!(
        !postgres.contains("__fluxon_new") && !postgres.contains("INSERT INTO"),
        "PostgreSQL alters, it does not rebuild: {postgres}"
    );
    if let fluxon::db::Location::Sqlite(path) = fluxon::db::Location::of(db_path) {
        let dangling: i64 = rusqlite::Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(dangling, 0, "foreign keys intact");
    }
}

fn a_sequence_of_model_versions_keeps_every_row(backend: Backend) {
    let (db_path, tmp) = place(backend);
    let dir = tmp.path().join("migrations");

    // v1: create both tables, add rows.
    step(
        &dir,
        &db_path,
        &v1::MODELS,
        &["create table author", "create table book"],
    );
    {
        let db = Database::open(&db_path).unwrap();
        for name in ["Ann", "Bob"] {
            let author = db.insert(&v1::Author { name: name.into() }).unwrap();
            for i in 0..3 {
                db.insert(&v1::Book {
                    title: format!("{name} {i}"),
                    author: author.into(),
                })
                .unwrap();
            }
        }
    }

    // v2: a field with a default, added in place; existing rows get the default.
    step(&dir, &db_path, &v2::MODELS, &["add column author.country"]);
    {
        let db = Database::open(&db_path).unwrap();
        let countries: Vec<(String,)> = db
            .check_all::<v2::Author>()
            .columns((v2::Author::country,))
            .unwrap();
        assert_eq!(countries, vec![("NZ".to_owned(),), ("NZ".to_owned(),)]);
        db.update(
            vec![v2::Author::country.set("UK")],
            v2::Author::name.eq("Bob"),
        )
        .unwrap();
    }

    // v3: drop it again: the author table is rebuilt under six books with ON DELETE CASCADE.
    step(&dir, &db_path, &v3::MODELS, &["rebuild table author"]);
    {
        let db = Database::open(&db_path).unwrap();
        assert_eq!(db.check_all::<v3::Author>().count().unwrap(), 2);
        assert_eq!(
            db.check_all::<v3::Book>().count().unwrap(),
            6,
            "no child row lost to the rebuild"
        );
        let joined = db
            .check(v3::Book::title.eq("Bob 2"))
            .related(v3::Book::author)
            .unwrap();
        assert_eq!(
            joined[0].1.name, "Bob",
            "references still point at the right rows"
        );
    }

    // v4: a declared rename and a wider column.
    step(&dir, &db_path, &v4::MODELS, &["rebuild table author"]);
    {
        let db = Database::open(&db_path).unwrap();
        let names: Vec<(String,)> = db
            .check_all::<v4::Author>()
            .order_by(v4::Author::full_name.asc())
            .columns((v4::Author::full_name,))
            .unwrap();
        assert_eq!(
            names,
            vec![("Ann".to_owned(),), ("Bob".to_owned(),)],
            "values moved to the new name"
        );
        let long = "x".repeat(150);
        db.insert(&v4::Author { full_name: long })
            .expect("the wider limit applies");
        assert_eq!(db.check_all::<v4::Book>().count().unwrap(), 6);
    }

    // v5: a nullable foreign key, added in place.
    step(&dir, &db_path, &v5::MODELS, &["add column book.editor"]);
    {
        let db = Database::open(&db_path).unwrap();
        db.update(vec![v5::Book::editor.set(1)], v5::Book::title.eq("Bob 0"))
            .unwrap();
        assert_eq!(db.check(v5::Book::editor.is_not_null()).count().unwrap(), 1);
    }

    // v6: a many-to-many through a join model.
    step(
        &dir,
        &db_path,
        &v6::MODELS,
        &["create table tag", "create table book_tag"],
    );
    {
        let db = Database::open(&db_path).unwrap();
        let tag = db
            .insert(&v6::Tag {
                label: "classic".into(),
            })
            .unwrap();
        db.execute(v6::Book::tags.add(1, tag)).unwrap();
        assert_eq!(db.execute(v6::Book::tags.list(1)).unwrap().len(), 1);
        assert_eq!(db.check_all::<v6::Book>().count().unwrap(), 6);
    }

    // v7: drop the tag models; books and authors untouched.
    step(&dir, &db_path, &v7::MODELS, &["drop table", "drop table"]);
    {
        let db = Database::open(&db_path).unwrap();
        assert_eq!(db.check_all::<v7::Book>().count().unwrap(), 6);
        assert_eq!(db.check_all::<v7::Author>().count().unwrap(), 3);
        let bob0 = db
            .check(v7::Book::title.eq("Bob 0"))
            .first()
            .unwrap()
            .unwrap();
        assert_eq!(
            bob0.editor,
            Some(1.into()),
            "values from earlier steps survive"
        );
    }

    let files: Vec<String> = migrate::list(&dir)
        .unwrap()
        .iter()
        .map(|m| m.file_stem())
        .collect();
    assert_eq!(files[0], "V1__initial");
    assert_eq!(files.len(), 7);
}

fn check_passes_when_nothing_changed_and_migrate_is_idempotent(backend: Backend) {
    let (db_path, tmp) = place(backend);
    let dir = tmp.path().join("migrations");
    migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions).unwrap();
    assert!(
        migrate::make_migrations(&dir, &v1::MODELS, None, &mut NoQuestions)
            .unwrap()
            .is_none()
    );
    migrate::check(&dir, &v1::MODELS).unwrap();
    assert_eq!(
        migrate::apply(Path::new(&db_path), &dir, None)
            .unwrap()
            .len(),
        1
    );
    assert!(
        migrate::apply(Path::new(&db_path), &dir, None)
            .unwrap()
            .is_empty(),
        "nothing pending"
    );
    let status = migrate::status(Path::new(&db_path), &dir).unwrap();
    assert!(status.iter().all(|(_, applied)| *applied));
}

fn a_type_change_a_new_unique_and_a_table_rename_keep_the_rows(backend: Backend) {
    let (db_path, tmp) = place(backend);
    let dir = tmp.path().join("migrations");
    step(
        &dir,
        &db_path,
        &retype::before::MODELS,
        &["create table edition"],
    );
    {
        let db = Database::open(&db_path).unwrap();
        for (number, code) in [(1, "a"), (2, "b")] {
            db.insert(&retype::before::Edition {
                number,
                code: code.into(),
            })
            .unwrap();
        }
    }
    step(
        &dir,
        &db_path,
        &retype::after::MODELS,
        &["rename table edition to printing", "rebuild table printing"],
    );
    let db = Database::open(&db_path).unwrap();
    let rows: Vec<(String, String)> = db
        .check_all::<retype::after::Printing>()
        .order_by(retype::after::Printing::code.asc())
        .columns((
            retype::after::Printing::number,
            retype::after::Printing::code,
        ))
        .unwrap();
    assert_eq!(
        rows,
        vec![("1".into(), "a".into()), ("2".into(), "b".into())],
        "numbers became text"
    );
    let duplicate = db.insert(&retype::after::Printing {
        number: "3".into(),
        code: "a".into(),
    });
    assert!(
        matches!(duplicate, Err(fluxon::db::DbError::Unique(_))),
        "the new unique holds"
    );
}

fn an_index_is_added_and_dropped_without_a_rebuild(backend: Backend) {
    let (db_path, tmp) = place(backend);
    let dir = tmp.path().join("migrations");
    let index_count = || -> i64 {
        crate::number(
            &db_path,
            match backend {
                Backend::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'event_kind_idx'",
                Backend::Postgres => "SELECT count(*) FROM pg_indexes WHERE indexname = 'event_kind_idx'",
            },
        )
    };
    step(
        &dir,
        &db_path,
        &indexed::without::MODELS,
        &["create table event"],
    );
    assert_eq!(index_count(), 0);
    step(
        &dir,
        &db_path,
        &indexed::with::MODELS,
        &["add index on event.kind"],
    );
    assert_eq!(index_count(), 1);
    step(
        &dir,
        &db_path,
        &indexed::without::MODELS,
        &["drop index on event.kind"],
    );
    assert_eq!(index_count(), 0);
}

fn a_renamed_table_takes_its_indexes_along(backend: Backend) {
    let (db_path, tmp) = place(backend);
    let dir = tmp.path().join("migrations");
    let index_count = |name: &str| -> i64 {
        crate::number(
            &db_path,
            &match backend {
                Backend::Sqlite => format!(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '{name}'"
                ),
                Backend::Postgres => {
                    format!("SELECT count(*) FROM pg_indexes WHERE indexname = '{name}'")
                }
            },
        )
    };
    step(
        &dir,
        &db_path,
        &moved::before::MODELS,
        &["create table event"],
    );
    let db = Database::open(&db_path).unwrap();
    db.insert(&moved::before::Event {
        kind: "a".into(),
        note: "b".into(),
    })
    .unwrap();
    step(
        &dir,
        &db_path,
        &moved::with::MODELS,
        &["rename table event to occurrence"],
    );
    assert_eq!(
        (
            index_count("event_kind_idx"),
            index_count("occurrence_kind_idx"),
            index_count("occurrence_kind_note_key")
        ),
        (0, 1, 1)
    );
    let again = db.insert(&moved::with::Occurrence {
        kind: "a".into(),
        note: "b".into(),
    });
    assert!(
        matches!(again, Err(fluxon::db::DbError::Unique(_))),
        "the unique set holds under the new name: {again:?}"
    );
    step(
        &dir,
        &db_path,
        &moved::without::MODELS,
        &[
            "drop index on occurrence.kind",
            "drop unique (kind, note) on occurrence",
        ],
    );
    assert_eq!(
        (
            index_count("occurrence_kind_idx"),
            index_count("occurrence_kind_note_key")
        ),
        (0, 0)
    );
}
