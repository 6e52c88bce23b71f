//! Many writers at once: nobody sees "database is locked", nothing is lost.

use fluxon::db::{DbError, Executor};

use crate::models::*;

async fn hundred_tasks_times_hundred_inserts_all_land(backend: Backend) {
    let (db, _dir) = async_database_on(backend).await;
    let tasks: Vec<_> = (0..100)
        .map(|task| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    db.insert(&student(&format!("s{task}-{i}"))).await?;
                }
                Ok::<(), fluxon::db::DbError>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(db.check_all::<Student>().count().await.unwrap(), 10_000);
    assert_eq!(
        db.check(Student::name.eq("s99-99")).count().await.unwrap(),
        1
    );
}

fn blocking_writers_on_many_threads_and_readers_meanwhile(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let db = db.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    db.insert(&student(&format!("t{t}-{i}"))).unwrap();
                    // Reads in between never block on the writer (WAL).
                    db.check(Student::name.like("t%")).count().unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(db.check_all::<Student>().count().unwrap(), 800);
}

/// 16 tasks each run 20 transactions that read a counter and write it back plus one: on SQLite
/// they take turns; on PostgreSQL they are SERIALIZABLE and collide, and the losers run again.
/// Every increment that was answered `Ok` is in the counter, exactly once; any that gave up
/// after its last attempt says so with a typed `Conflict` and left nothing behind.
async fn conflicting_read_modify_write_transactions_lose_nothing(backend: Backend) {
    let (db, _dir) = async_database_on(backend).await;
    let ada = db.insert(&teacher("Ada")).await.unwrap();
    let counter = db
        .insert(&Course {
            seats: 0,
            ..course("Counter", ada)
        })
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let (mut done, mut gave_up) = (0u32, 0u32);
                for _ in 0..20 {
                    let result = db
                        .transaction(move |tx| {
                            let mut row = tx.get::<Course>(counter)?.ok_or(DbError::NotFound)?;
                            row.seats += 1;
                            tx.save(&row)
                        })
                        .await;
                    match result {
                        Ok(()) => done += 1,
                        Err(DbError::Conflict(_)) => gave_up += 1,
                        Err(err) => panic!("{err}"),
                    }
                }
                (done, gave_up)
            })
        })
        .collect();
    let (mut done, mut gave_up) = (0, 0);
    for task in tasks {
        let (d, g) = task.await.unwrap();
        done += d;
        gave_up += g;
    }
    let seats = db.get::<Course>(counter).await.unwrap().unwrap().seats;
    assert_eq!(
        seats, done,
        "every committed increment, once ({gave_up} gave up)"
    );
    assert_eq!(done + gave_up, 320);
    assert!(
        done >= 300,
        "retries carry nearly all through: {done} of 320"
    );
}

/// The thread a query's closure ran on: its id and name.
async fn where_it_ran(db: &fluxon::db::AsyncDatabase) -> (std::thread::ThreadId, Option<String>) {
    db.read(|_| {
        let here = std::thread::current();
        Ok((here.id(), here.name().map(str::to_owned)))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_multi_thread_runtime_queries_run_on_the_awaiting_thread() {
    let (db, _dir) = async_database().await;
    // On the runtime's entry thread and on a worker alike: no hop to a database thread.
    let (ran, _) = where_it_ran(&db).await;
    assert_eq!(ran, std::thread::current().id());
    let in_task = tokio::spawn({
        let db = db.clone();
        async move {
            let awaiting = std::thread::current().id();
            let (ran, _) = where_it_ran(&db).await;
            (awaiting, ran)
        }
    });
    let (awaiting, ran) = in_task.await.unwrap();
    assert_eq!(ran, awaiting);
    // A write too, and its answer is there for the next read.
    db.insert(&student("inline")).await.unwrap();
    assert_eq!(
        db.check(Student::name.eq("inline")).count().await.unwrap(),
        1
    );
}

#[test]
fn on_a_current_thread_runtime_queries_go_to_the_database_threads() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (db, _dir) = async_database().await;
        let (ran, name) = where_it_ran(&db).await;
        assert_ne!(ran, std::thread::current().id());
        assert_eq!(name.as_deref(), Some("fluxon-db-reader"));
        db.insert(&student("hop")).await.unwrap();
        assert_eq!(db.check(Student::name.eq("hop")).count().await.unwrap(), 1);
    });
}

async fn a_query_that_is_never_awaited_does_nothing(backend: Backend) {
    let (db, _dir) = async_database_on(backend).await;
    let unpolled = db.insert(&student("never"));
    drop(unpolled);
    db.insert(&student("awaited")).await.unwrap();
    assert_eq!(db.check_all::<Student>().count().await.unwrap(), 1);
    assert_eq!(
        db.check(Student::name.eq("never")).count().await.unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_query_closure_is_an_error_and_the_next_query_runs() {
    let (db, _dir) = async_database().await;
    let err = db
        .read(|_| -> Result<(), fluxon::db::DbError> { panic!("closure gave up") })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, fluxon::db::DbError::Panicked(text) if text.contains("closure gave up")),
        "{err:?}"
    );
    db.insert(&student("after")).await.unwrap();
    assert_eq!(db.check_all::<Student>().count().await.unwrap(), 1);
}

crate::backends!(sync: blocking_writers_on_many_threads_and_readers_meanwhile; async: conflicting_read_modify_write_transactions_lose_nothing, hundred_tasks_times_hundred_inserts_all_land, a_query_that_is_never_awaited_does_nothing);
