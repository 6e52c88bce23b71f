//! Each constraint is enforced, with a typed error, and a refused change leaves nothing behind.

use fluxon::db::{DbError, Executor};

use crate::models::*;

fn unique_is_enforced(backend: Backend) {
    let (db, _dir) = database_on(backend);
    db.insert(&teacher("Ada")).unwrap();
    let err = db.insert(&teacher("Ada")).unwrap_err();
    assert!(matches!(err, DbError::Unique(_)), "{err}");
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 1);
}

fn max_length_is_checked_before_and_inside_the_database(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let err = db.insert(&teacher(&"x".repeat(51))).unwrap_err();
    assert!(
        matches!(err, DbError::InvalidValue { column: "name", .. }),
        "{err}"
    );
    // Behind the library's back, the table's CHECK still refuses it.
    let raw = db.execute(
        fluxon::db::Raw::statement("INSERT INTO teacher (name) VALUES (?)").bind("y".repeat(51)),
    );
    assert!(matches!(raw, Err(DbError::Check(_))), "{raw:?}");
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 0);
}

fn positive_integer_check_holds_in_the_database(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let raw = db.execute(
        fluxon::db::Raw::statement(
            "INSERT INTO course (title, teacher, seats) VALUES ('x', ?, -1)",
        )
        .bind(ada),
    );
    assert!(matches!(raw, Err(DbError::Check(_))), "{raw:?}");
}

fn foreign_key_to_a_missing_row_is_refused(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let err = db.insert(&course("Ghost", 999)).unwrap_err();
    assert!(matches!(err, DbError::ForeignKey(_)), "{err}");
    assert_eq!(db.check_all::<Course>().count().unwrap(), 0);
}

fn protect_refuses_to_delete_a_referenced_row(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    db.insert(&Student {
        name: "Bo".into(),
        advisor: Some(ada.into()),
    })
    .unwrap();
    let err = db.delete(Teacher::id.eq(ada)).unwrap_err();
    assert!(matches!(err, DbError::ForeignKey(_)), "{err}");
    assert_eq!(
        db.check_all::<Teacher>().count().unwrap(),
        1,
        "nothing deleted"
    );
    // Once nobody refers to it, it goes.
    db.update(vec![Student::advisor.set(None)], Student::name.eq("Bo"))
        .unwrap();
    assert_eq!(db.delete(Teacher::id.eq(ada)).unwrap(), 1);
}

fn a_failing_transaction_leaves_nothing_behind(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let result = db.transaction(|tx| {
        tx.insert(&teacher("One"))?;
        tx.insert(&teacher("Two"))?;
        tx.insert(&teacher("One"))?; // unique: fails
        Ok(())
    });
    assert!(matches!(result, Err(DbError::Unique(_))));
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 0);

    let result: Result<(), DbError> = db.transaction(|tx| {
        tx.insert(&teacher("Three"))?;
        Err(DbError::NotFound) // the closure's own error rolls back too
    });
    assert!(matches!(result, Err(DbError::NotFound)));
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 0);

    // And a transaction that succeeds keeps everything.
    db.transaction(|tx| {
        let ada = tx.insert(&teacher("Ada"))?;
        tx.insert(&course("Engines", ada))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(db.check_all::<Course>().count().unwrap(), 1);
}

async fn a_panicking_transaction_is_rolled_back_and_the_database_carries_on(backend: Backend) {
    let (db, _dir) = async_database_on(backend).await;
    let result = db
        .transaction(|tx| {
            tx.insert(&teacher("Doomed"))?;
            panic!("boom inside a transaction");
            #[allow(unreachable_code)]
            Ok(())
        })
        .await;
    assert!(
        matches!(result, Err(DbError::Panicked(ref m)) if m.contains("boom")),
        "{result:?}"
    );
    assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 0);
    db.insert(&teacher("After")).await.unwrap();
    assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 1);
}

fn injection_shaped_values_are_stored_literally(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let evil = "Robert'); DROP TABLE student;--";
    let quoted = "\" OR 1=1 --";
    db.insert(&student(evil)).unwrap();
    db.insert(&student(quoted)).unwrap();
    db.insert(&student("plain")).unwrap();
    let found = db.check(Student::name.eq(evil)).all().unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].name, evil);
    assert_eq!(db.check(Student::name.eq(quoted)).count().unwrap(), 1);
    assert_eq!(
        db.check(Student::name.like("%' OR '1'='1"))
            .count()
            .unwrap(),
        0
    );
    assert_eq!(
        db.check_all::<Student>().count().unwrap(),
        3,
        "table intact"
    );
}

fn writing_through_the_database_inside_its_own_transaction_is_refused_not_a_deadlock(
    backend: Backend,
) {
    let (db, _dir) = database_on(backend);
    let inner = db.clone();
    let result = db.transaction(move |tx| {
        tx.insert(&teacher("Ada"))?;
        inner.insert(&teacher("Grace")) // should have been tx.insert
    });
    assert!(matches!(result, Err(DbError::NestedWrite)), "{result:?}");
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 0, "rolled back");
    db.insert(&teacher("Later")).unwrap();
}

crate::backends!(sync: unique_is_enforced, max_length_is_checked_before_and_inside_the_database, positive_integer_check_holds_in_the_database, foreign_key_to_a_missing_row_is_refused, protect_refuses_to_delete_a_referenced_row, a_failing_transaction_leaves_nothing_behind, injection_shaped_values_are_stored_literally, writing_through_the_database_inside_its_own_transaction_is_refused_not_a_deadlock; async: a_panicking_transaction_is_rolled_back_and_the_database_carries_on);
