//! Upserts on a unique column: insert, or update / leave the row that holds the value.

use fluxon::db::{DbError, Executor, Model};

use crate::models::*;
use crate::rows::Country;

fn insert_or_update_inserts_then_updates_the_same_row(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert_or_update(&teacher("Ada"), Teacher::name).unwrap();
    let grace = db.insert(&teacher("Grace")).unwrap();
    let again = db
        .insert_or_update(
            &Teacher {
                name: "Ada".into(),
                mentor: Some(grace.into()),
            },
            Teacher::name,
        )
        .unwrap();
    assert_eq!(
        again, ada,
        "the row holding the value was updated, not another made"
    );
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 2);
    let row = db.get::<Teacher>(ada).unwrap().unwrap();
    assert_eq!(row.mentor, Some(grace.into()));
}

fn a_key_the_model_gives_is_a_conflict_target(backend: Backend) {
    let (db, _dir) = database_on(backend);
    db.create_tables(&[Country::SCHEMA]).unwrap();
    let fr = Country {
        code: "FR".into(),
        name: "France".into(),
    };
    let id = db.insert_or_update(&fr, Country::code).unwrap();
    let renamed = Country {
        code: "FR".into(),
        name: "République française".into(),
    };
    assert_eq!(db.insert_or_update(&renamed, Country::code).unwrap(), id);
    let row = db.get::<Country>("FR".to_owned()).unwrap().unwrap();
    assert_eq!(row.name, "République française");
    assert_eq!(db.check_all::<Country>().count().unwrap(), 1);
}

fn insert_or_ignore_leaves_the_existing_row_alone(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let grace = db.insert(&teacher("Grace")).unwrap();
    let ada = db.insert_or_ignore(&teacher("Ada"), Teacher::name).unwrap();
    assert!(ada.is_some());
    let ignored = db
        .insert_or_ignore(
            &Teacher {
                name: "Ada".into(),
                mentor: Some(grace.into()),
            },
            Teacher::name,
        )
        .unwrap();
    assert_eq!(ignored, None);
    let row = db.get::<Teacher>(ada.unwrap()).unwrap().unwrap();
    assert_eq!(row.mentor, None, "left as it was");
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 2);
}

fn other_constraints_still_refuse_an_upsert(backend: Backend) {
    let (db, _dir) = database_on(backend);
    // A mentor that does not exist: the foreign key refuses, typed; nothing is written.
    let refused = db.insert_or_update(
        &Teacher {
            name: "Ada".into(),
            mentor: Some(999.into()),
        },
        Teacher::name,
    );
    assert!(
        matches!(refused, Err(DbError::ForeignKey(_))),
        "{refused:?}"
    );
    // A value too long for its column: refused before SQL runs.
    let long = db.insert_or_ignore(&teacher(&"x".repeat(51)), Teacher::name);
    assert!(
        matches!(long, Err(DbError::InvalidValue { .. })),
        "{long:?}"
    );
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 0);
}

async fn concurrent_upserts_of_one_key_make_one_row(backend: Backend) {
    let (db, _dir) = async_database_on(backend).await;
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.insert_or_update(&teacher("Ada"), Teacher::name)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.push(task.await.unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "every upsert found the same row: {ids:?}");
    assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 1);
}

/// Stock of a product in a warehouse: one row per (sku, warehouse).
#[derive(Model, Debug, Clone, PartialEq)]
#[model(unique(sku, warehouse))]
pub struct Stock {
    #[field(max_length = 20)]
    pub sku: String,
    #[field(max_length = 20)]
    pub warehouse: String,
    pub count: u32,
}

fn stock(sku: &str, warehouse: &str, count: u32) -> Stock {
    Stock {
        sku: sku.into(),
        warehouse: warehouse.into(),
        count,
    }
}

fn a_declared_set_of_columns_is_a_conflict_target_and_another_set_is_refused(backend: Backend) {
    let (db, _dir) = database_on(backend);
    db.create_tables(&[Stock::SCHEMA]).unwrap();
    let a = db
        .insert_or_update(&stock("LAMP", "east", 5), (Stock::sku, Stock::warehouse))
        .unwrap();
    let b = db
        .insert_or_update(&stock("LAMP", "west", 2), (Stock::sku, Stock::warehouse))
        .unwrap();
    assert_ne!(a, b, "another warehouse is another row");
    // The same pair, given in the other order: the same row, updated.
    let again = db
        .insert_or_update(&stock("LAMP", "east", 9), (Stock::warehouse, Stock::sku))
        .unwrap();
    assert_eq!(again, a);
    assert_eq!(db.get::<Stock>(a).unwrap().unwrap().count, 9);
    assert_eq!(
        db.insert_or_ignore(&stock("LAMP", "west", 100), (Stock::sku, Stock::warehouse))
            .unwrap(),
        None
    );
    assert_eq!(db.get::<Stock>(b).unwrap().unwrap().count, 2);
    // The table enforces the set on a plain insert too.
    assert!(matches!(
        db.insert(&stock("LAMP", "east", 1)),
        Err(DbError::Unique(_))
    ));
    // A set the model does not declare: typed, before anything runs.
    match db.insert_or_update(&stock("MUG", "east", 1), (Stock::sku, Stock::count)) {
        Err(err @ DbError::NotUnique { .. }) => {
            assert!(err.to_string().contains("sku, count"), "{err}")
        }
        other => panic!("expected NotUnique, got {other:?}"),
    }
    assert_eq!(db.check_all::<Stock>().count().unwrap(), 2);
}

mod stock_v1 {
    use fluxon::db::Model;

    #[derive(Model)]
    #[model(table = "stock")]
    pub struct Stock {
        #[field(max_length = 20)]
        pub sku: String,
        #[field(max_length = 20)]
        pub warehouse: String,
        pub count: u32,
    }
}

// Migrations are SQLite's until `migrate` renders for PostgreSQL.
#[test]
fn migrations_add_and_drop_a_unique_set_in_place() {
    use fluxon::migrate::{self, NoQuestions};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    let db_path = tmp.path().join("stock.sqlite3");
    migrate::make_migrations(&dir, &[stock_v1::Stock::SCHEMA], None, &mut NoQuestions)
        .unwrap()
        .unwrap();
    migrate::apply(&db_path, &dir, None).unwrap();
    // v2: the unique set, added in place (no rebuild of the table).
    let added = migrate::make_migrations(&dir, &[Stock::SCHEMA], None, &mut NoQuestions)
        .unwrap()
        .unwrap();
    assert!(
        added
            .operations
            .iter()
            .any(|o| o.starts_with("add unique (sku, warehouse) on stock")),
        "{:?}",
        added.operations
    );
    migrate::apply(&db_path, &dir, None).unwrap();
    migrate::check_drift(&db_path, &[Stock::SCHEMA]).unwrap();
    // Back to no set: dropped, and the drift check agrees with the models again.
    let dropped =
        migrate::make_migrations(&dir, &[stock_v1::Stock::SCHEMA], None, &mut NoQuestions)
            .unwrap()
            .unwrap();
    assert!(
        dropped
            .operations
            .iter()
            .any(|o| o.starts_with("drop unique (sku, warehouse)")),
        "{:?}",
        dropped.operations
    );
    migrate::apply(&db_path, &dir, None).unwrap();
    migrate::check_drift(&db_path, &[stock_v1::Stock::SCHEMA]).unwrap();
}

crate::backends!(sync: insert_or_update_inserts_then_updates_the_same_row, a_key_the_model_gives_is_a_conflict_target, insert_or_ignore_leaves_the_existing_row_alone, other_constraints_still_refuse_an_upsert, a_declared_set_of_columns_is_a_conflict_target_and_another_set_is_refused; async: concurrent_upserts_of_one_key_make_one_row);
