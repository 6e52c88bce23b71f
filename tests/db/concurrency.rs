//! Many writers at once: nobody sees "database is locked", nothing is lost.

use fluxon::db::Executor;

use crate::models::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_tasks_times_hundred_inserts_all_land() {
    let (db, _dir) = async_database().await;
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

#[test]
fn blocking_writers_on_many_threads_and_readers_meanwhile() {
    let (db, _dir) = database();
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
