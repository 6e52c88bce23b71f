//! Large results with bounded memory (a million rows, resident memory measured), and keyset
//! pagination.

use crate::models::Backend;
use fluxon::db::{AsyncDatabase, DbError, Executor, Model};

use crate::support::{mib, rss, PeakRss};

#[derive(Model, Debug)]
pub struct Reading {
    pub sensor: i64,
    #[field(max_length = 40)]
    pub label: String,
    pub value: f64,
}

const ROWS: i64 = 1_000_000;

fn reading(i: i64) -> Reading {
    Reading {
        sensor: i % 97,
        label: format!("reading number {i:>12}"),
        value: i as f64 / 8.0,
    }
}

/// Set in the process a memory test runs alone in.
const ALONE: &str = "FLUXON_TEST_MEASURING_ALONE";

/// Runs the test `name` of this binary in a process of its own (resident memory is the whole
/// process's: other tests allocating and freeing meanwhile would show in its figures); passes if
/// it passed there.
async fn in_a_process_of_its_own(name: String) {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().expect("this test binary"))
            .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env(ALONE, "1")
            .output()
            .expect("run the test binary")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{stdout}\n{stderr}"
    );
}

async fn a_million_rows_stream_through_in_bounded_memory(backend: Backend) {
    if std::env::var_os(ALONE).is_none() {
        let backend = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        let name = format!("stream::{backend}::a_million_rows_stream_through_in_bounded_memory");
        return in_a_process_of_its_own(name).await;
    }
    let (place, _dir) = crate::models::place(backend);
    let db = AsyncDatabase::open(&place).unwrap();
    db.create_tables(&[Reading::SCHEMA]).await.unwrap();
    for start in (0..ROWS).step_by(20_000) {
        let chunk: Vec<Reading> = (start..start + 20_000).map(reading).collect();
        db.insert_many(&chunk).await.unwrap();
    }

    // The async stream: every row, in key order, through a queue of 256.
    let before = rss();
    let peak = PeakRss::start();
    let mut stream = db
        .check_all::<Reading>()
        .order_by(Reading::id.asc())
        .stream(256);
    let (mut seen, mut last, mut sum) = (0i64, 0i64, 0f64);
    while let Some(row) = stream.next().await {
        let row = row.unwrap();
        assert!(row.id > last, "in key order");
        last = row.id;
        sum += row.value;
        seen += 1;
    }
    let grew = peak.finish().await.saturating_sub(before);
    assert_eq!(seen, ROWS);
    assert_eq!(sum, (0..ROWS).map(|i| i as f64 / 8.0).sum::<f64>());
    assert!(grew < 64 << 20, "streaming grew {:.1} MiB", mib(grew));

    // The callback form, on the database's own threads: the same bound.
    let before = rss();
    let peak = PeakRss::start();
    let counted = db
        .check(Reading::sensor.eq(5))
        .for_each(|row| {
            if row.sensor != 5 {
                return Err(DbError::NotFound);
            }
            Ok(())
        })
        .await
        .unwrap();
    let grew_each = peak.finish().await.saturating_sub(before);
    assert_eq!(counted, (0..ROWS).filter(|i| i % 97 == 5).count() as u64);
    assert!(
        grew_each < 64 << 20,
        "for_each grew {:.1} MiB",
        mib(grew_each)
    );
    // The measurement can tell: the same rows loaded whole take far more than the bound.
    let before = rss();
    let peak = PeakRss::start();
    let all = db.check_all::<Reading>().all().await.unwrap();
    assert_eq!(all.len() as i64, ROWS);
    drop(all);
    let grew_all = peak.finish().await.saturating_sub(before);
    assert!(
        grew_all > 64 << 20,
        "loading all grew only {:.1} MiB (streaming {:.1} MiB, for_each {:.1} MiB)",
        mib(grew_all),
        mib(grew),
        mib(grew_each)
    );
    println!(
        "1,000,000 rows: stream grew {:.1} MiB, for_each {:.1} MiB, all() {:.1} MiB",
        mib(grew),
        mib(grew_each),
        mib(grew_all)
    );
}

async fn dropping_a_stream_stops_its_query_and_an_error_ends_for_each(backend: Backend) {
    let (place, _dir) = crate::models::place(backend);
    let db = AsyncDatabase::open(&place).unwrap();
    db.create_tables(&[Reading::SCHEMA]).await.unwrap();
    let rows: Vec<Reading> = (0..5_000).map(reading).collect();
    db.insert_many(&rows).await.unwrap();
    let mut stream = db.check_all::<Reading>().stream(4);
    for _ in 0..10 {
        stream.next().await.unwrap().unwrap();
    }
    drop(stream);
    // The database is still fully usable (the stream's thread let go of its connection).
    db.insert(&reading(9)).await.unwrap();
    assert_eq!(db.check_all::<Reading>().count().await.unwrap(), 5_001);
    // An error from the callback stops the walk and is the call's error.
    let mut calls = 0;
    let stopped = db
        .check_all::<Reading>()
        .for_each(move |_| {
            calls += 1;
            if calls == 3 {
                Err(DbError::NotFound)
            } else {
                Ok(())
            }
        })
        .await;
    assert!(matches!(stopped, Err(DbError::NotFound)), "{stopped:?}");
}

fn keyset_pages_walk_every_row_once(backend: Backend) {
    let (db, _dir) = crate::models::database_on(backend);
    let ada = db.insert(&crate::models::teacher("Ada")).unwrap();
    let courses: Vec<crate::models::Course> = (0..95)
        .map(|i| crate::models::course(&format!("c{i:03}"), ada))
        .collect();
    db.insert_many(&courses).unwrap();
    use crate::models::Course;
    let mut last = 0;
    let mut pages = 0;
    let mut titles = Vec::new();
    loop {
        let page = db
            .check_all::<Course>()
            .after(last)
            .limit(20)
            .all()
            .unwrap();
        let Some(end) = page.last() else { break };
        last = end.id;
        pages += 1;
        titles.extend(page.into_iter().map(|c| c.fields.title));
    }
    assert_eq!(pages, 5);
    assert_eq!(titles.len(), 95);
    assert_eq!(titles.first().map(String::as_str), Some("c000"));
    assert_eq!(titles.last().map(String::as_str), Some("c094"));
    // With a filter: the page is of the matching rows only.
    let page = db
        .check(Course::title.ge("c050"))
        .after(last - 10)
        .limit(100)
        .all()
        .unwrap();
    assert_eq!(page.len(), 10);
}

crate::backends!(sync: keyset_pages_walk_every_row_once; async: a_million_rows_stream_through_in_bounded_memory, dropping_a_stream_stops_its_query_and_an_error_ends_for_each);
