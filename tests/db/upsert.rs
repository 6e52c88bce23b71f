//! Upserts on a unique column: insert, or update / leave the row that holds the value.

use fluxon::db::{DbError, Executor, Model};

use crate::models::*;
use crate::rows::Country;

#[test]
fn insert_or_update_inserts_then_updates_the_same_row() {
    let (db, _dir) = database();
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

#[test]
fn a_key_the_model_gives_is_a_conflict_target() {
    let (db, _dir) = database();
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

#[test]
fn insert_or_ignore_leaves_the_existing_row_alone() {
    let (db, _dir) = database();
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

#[test]
fn other_constraints_still_refuse_an_upsert() {
    let (db, _dir) = database();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upserts_of_one_key_make_one_row() {
    let (db, _dir) = async_database().await;
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
