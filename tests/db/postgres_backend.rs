//! What only the PostgreSQL backend has to get right: the URL rule's errors, its pool (bounded,
//! and whole again after a panic), where its blocking client may run, and transactions that end
//! on the server's word.

use std::panic::AssertUnwindSafe;

use fluxon::db::{AsyncDatabase, Database, DbError, Executor};

use crate::models::*;

fn on_postgres(connections: usize) -> (Database, tempfile::TempDir) {
    let (place, dir) = place(Backend::Postgres);
    let db = Database::open_with_readers(&place, connections).unwrap();
    db.create_tables(&ALL).unwrap();
    (db, dir)
}

#[test]
fn an_unreachable_server_is_a_typed_error_that_keeps_the_password_out() {
    // A port nothing listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://jack:s3cr3t-word@127.0.0.1:{port}/app?connect_timeout=5");
    let err = Database::open(&url).unwrap_err();
    assert!(matches!(err, DbError::Connect { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("s3cr3t-word"), "{text}");
    // Not a URL PostgreSQL takes: typed too, not a panic.
    let err = Database::open("postgres://[not a host/db").unwrap_err();
    assert!(matches!(err, DbError::Connect { .. }), "{err:?}");
}

#[test]
fn a_panic_inside_a_query_gives_its_connection_back() {
    // At most 2 connections: three panics in a row would use them all up if they leaked.
    let (db, _dir) = on_postgres(1);
    for name in ["a", "b", "c"] {
        db.insert(&teacher(name)).unwrap();
    }
    for _ in 0..3 {
        let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
            db.check_all::<Teacher>()
                .for_each(|_| panic!("the callback gave up"))
        }));
        assert!(panicked.is_err());
        let in_tx = std::panic::catch_unwind(AssertUnwindSafe(|| {
            db.transaction(|tx| -> Result<(), DbError> {
                tx.insert(&teacher("never"))?;
                panic!("the body gave up")
            })
        }));
        assert!(in_tx.is_err());
    }
    assert_eq!(
        db.check_all::<Teacher>().count().unwrap(),
        3,
        "nothing half-written"
    );
    db.insert(&teacher("d")).unwrap();
}

#[test]
fn a_transaction_commits_rolls_back_and_reports_a_deferred_key_at_commit() {
    let (db, _dir) = on_postgres(2);
    let ada = db
        .transaction(|tx| {
            let ada = tx.insert(&teacher("Ada"))?;
            tx.insert(&course("Logic", ada))?;
            Ok(ada)
        })
        .unwrap();
    let failed = db.transaction(|tx| -> Result<(), DbError> {
        tx.insert(&teacher("Bo"))?;
        Err(DbError::NotFound)
    });
    assert!(matches!(failed, Err(DbError::NotFound)));
    // A reference to a missing row passes each statement and fails the COMMIT.
    let dangling = db.transaction(|tx| tx.insert(&course("Ghost", ada + 1000)));
    assert!(
        matches!(dangling, Err(DbError::ForeignKey(_))),
        "{dangling:?}"
    );
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 1);
    assert_eq!(db.check_all::<Course>().count().unwrap(), 1);
    // Every connection is still good.
    for _ in 0..4 {
        db.insert(&student("after")).unwrap();
    }
}

#[test]
fn a_current_thread_runtime_takes_the_async_database_and_refuses_the_blocking_one() {
    let (place, _dir) = place(Backend::Postgres);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = AsyncDatabase::open(&place).unwrap();
        db.create_tables(&ALL).await.unwrap();
        let ada = db.insert(&teacher("Ada")).await.unwrap();
        assert_eq!(db.get::<Teacher>(ada).await.unwrap().unwrap().name, "Ada");
        // The blocking client cannot borrow this runtime's only thread.
        let err = db.blocking().check_all::<Teacher>().count().unwrap_err();
        assert!(matches!(err, DbError::BlockingInAsync), "{err:?}");
    });
}
