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

/// The URL of a fresh database with `tls` in place of the tests' `sslmode=disable`, dialling
/// `host` (which the server's certificate names only as `localhost`).
fn tls_url(host: &str, tls: &str) -> String {
    let url = crate::postgres::fresh_database();
    url.replace("127.0.0.1", host)
        .replace("sslmode=disable", tls)
}

/// Whether the connection a query ran on is encrypted, as the server sees it.
fn encrypted(db: &Database) -> bool {
    let rows: Vec<(bool,)> = db
        .execute(fluxon::db::Raw::query(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ))
        .unwrap();
    rows[0].0
}

#[test]
fn sslmode_verify_full_checks_the_root_and_the_name() {
    let root = crate::postgres::server().certificate();
    let root = root.display();
    // The certificate's own name, and its root: encrypted.
    let db = Database::open(tls_url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .unwrap();
    assert!(encrypted(&db));
    // The right root, but an address the certificate does not name: refused before any query.
    let err = Database::open(tls_url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .unwrap_err();
    assert!(matches!(err, DbError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");
    // verify-ca checks the chain only: the same address is accepted.
    let db = Database::open(tls_url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={root}"),
    ))
    .unwrap();
    assert!(encrypted(&db));
    // A root the server's certificate does not chain to: refused, whatever the name.
    let dir = tempfile::tempdir().unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other_root = dir.path().join("other.crt");
    std::fs::write(&other_root, other.cert.pem()).unwrap();
    let err = Database::open(tls_url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={}", other_root.display()),
    ))
    .unwrap_err();
    assert!(matches!(err, DbError::Connect { .. }), "{err:?}");
    // verify-full without a root: refused, saying what is missing.
    let err = Database::open(tls_url("localhost", "sslmode=verify-full")).unwrap_err();
    assert!(err.to_string().contains("sslrootcert"), "{err}");
}

#[test]
fn sslmode_require_encrypts_without_checking_and_disable_does_not_encrypt() {
    let db = Database::open(tls_url("127.0.0.1", "sslmode=require")).unwrap();
    assert!(encrypted(&db));
    let db = Database::open(tls_url("127.0.0.1", "sslmode=disable")).unwrap();
    assert!(!encrypted(&db));
    // No sslmode at all: libpq's `prefer`, and this server offers TLS.
    let db = Database::open(tls_url("127.0.0.1", "connect_timeout=10")).unwrap();
    assert!(encrypted(&db));
}

/// A task awaiting one-statement queries: a current-thread runtime opens the database and its
/// connections, then ends (taking their tasks with it); a second runtime's queries find those
/// connections closed and get new ones, with no error seen.
#[test]
fn awaited_statements_outlive_the_runtime_that_opened_their_connections() {
    let (place, _dir) = place(Backend::Postgres);
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = first.block_on(async {
        let db = AsyncDatabase::open_with_readers(&place, 2).unwrap();
        db.create_tables(&ALL).await.unwrap();
        let ada = db.insert(&teacher("Ada")).await.unwrap();
        assert_eq!(db.get::<Teacher>(ada).await.unwrap().unwrap().name, "Ada");
        db
    });
    drop(first);
    let second = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let bo = db.insert(&teacher("Bo")).await.unwrap();
        assert_eq!(db.get::<Teacher>(bo).await.unwrap().unwrap().name, "Bo");
        assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 2);
        // Still typed: a unique name taken.
        let err = db.insert(&teacher("Bo")).await.unwrap_err();
        assert!(matches!(err, DbError::Unique(_)), "{err:?}");
    });
}

/// An awaited read runs on a read-only connection: a write slipped into raw SQL read as rows is
/// refused there and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_read_refuses_a_write() {
    let (place, _dir) = place(Backend::Postgres);
    let db = AsyncDatabase::open(&place).unwrap();
    db.create_tables(&ALL).await.unwrap();
    let slipped: Result<Vec<(i64,)>, _> = db
        .execute(
            fluxon::db::Raw::query("INSERT INTO teacher (name) VALUES (?) RETURNING id")
                .bind("Eve"),
        )
        .await;
    assert!(slipped.is_err(), "{slipped:?}");
    assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 0);
    // The same statement as a write goes through.
    let written = db
        .execute(fluxon::db::Raw::statement("INSERT INTO teacher (name) VALUES (?)").bind("Eve"))
        .await
        .unwrap();
    assert_eq!(written, 1);
}

/// An awaited statement dropped while the server works on it (a timed-out task) leaves its
/// connection usable: with one connection of each kind, the next queries still answer, right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_awaited_statement_leaves_its_connection_usable() {
    let (place, _dir) = place(Backend::Postgres);
    let db = AsyncDatabase::open_with_readers(&place, 1).unwrap();
    db.create_tables(&ALL).await.unwrap();
    db.insert(&teacher("Ada")).await.unwrap();
    let slow = db.execute(fluxon::db::Raw::<Vec<(i64,)>>::query(
        "SELECT 1 FROM pg_sleep(0.3)",
    ));
    let cut = tokio::time::timeout(std::time::Duration::from_millis(30), slow).await;
    assert!(cut.is_err(), "the sleep answered within 30 ms: {cut:?}");
    let started = std::time::Instant::now();
    for _ in 0..3 {
        assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 1);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    db.insert(&teacher("Bo")).await.unwrap();
    assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 2);
}

/// A one-statement query is awaited, not run by blocking the thread in place: it works even
/// where tokio forbids blocking in place (a `LocalSet` that a multi-threaded runtime's
/// `block_on` drives), which a query that blocks cannot do.
#[test]
fn awaited_statements_run_where_blocking_in_place_is_forbidden() {
    let (place, _dir) = place(Backend::Postgres);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = runtime.block_on(async {
        let db = AsyncDatabase::open(&place).unwrap();
        let made = db.clone();
        // Several statements (not awaited): in a task of the runtime, where blocking is allowed.
        tokio::spawn(async move { made.create_tables(&ALL).await })
            .await
            .unwrap()
            .unwrap();
        db
    });
    let local = tokio::task::LocalSet::new();
    runtime.block_on(local.run_until(async {
        let ada = db.insert(&teacher("Ada")).await.unwrap();
        assert_eq!(db.get::<Teacher>(ada).await.unwrap().unwrap().name, "Ada");
        let renamed = db
            .update(vec![Teacher::name.set("Ada L.")], Teacher::name.eq("Ada"))
            .await
            .unwrap();
        assert_eq!(renamed, 1);
        assert_eq!(
            db.check(Teacher::name.eq("Ada L.")).count().await.unwrap(),
            1
        );
    }));
}

/// Ends every connection of the database at `url` but the asking one, as an administrator (or a
/// server restart) would, and waits until they are gone.
fn terminate_connections(url: &str) {
    let mut admin = crate::postgres::connect(url);
    admin
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .unwrap();
    for _ in 0..100 {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0);
        if left == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("the connections outlived pg_terminate_backend");
}

/// Idle pooled connections the server ended (a restart, an administrator) are replaced: the
/// awaited path notices when it takes one, a blocking read runs again on a new connection, a
/// blocking write fails once with `ConnectionLost`, a transaction begins again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_server_ended_are_replaced() {
    let (place, _dir) = place(Backend::Postgres);
    let db = AsyncDatabase::open_with_readers(&place, 2).unwrap();
    db.create_tables(&ALL).await.unwrap();
    db.insert(&teacher("Ada")).await.unwrap();
    assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 1);
    let blocking = db.blocking();
    assert_eq!(blocking.check_all::<Teacher>().count().unwrap(), 1);
    let url = place.clone();
    tokio::task::spawn_blocking(move || terminate_connections(&url))
        .await
        .unwrap();
    db.insert(&teacher("Bo")).await.unwrap();
    assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 2);
    assert_eq!(blocking.check_all::<Teacher>().count().unwrap(), 2);
    blocking.insert(&teacher("Cy")).unwrap();
    assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 3);

    // A blocking write is not run again (it may have run before its connection went): the
    // first one after the server ended its connection says so, typed, and the next one works.
    let url = place.clone();
    tokio::task::spawn_blocking(move || terminate_connections(&url))
        .await
        .unwrap();
    let lost = blocking.insert(&teacher("Di"));
    assert!(matches!(lost, Err(DbError::ConnectionLost(_))), "{lost:?}");
    blocking.insert(&teacher("Di")).unwrap();
    assert_eq!(blocking.check_all::<Teacher>().count().unwrap(), 4);
    assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 4);

    // A transaction finds its connection lost at BEGIN, before its body ran: it begins again.
    let url = place.clone();
    tokio::task::spawn_blocking(move || terminate_connections(&url))
        .await
        .unwrap();
    db.transaction(|tx| tx.insert(&teacher("Ed")))
        .await
        .unwrap();
    assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 5);
}

/// A row reader that panics on the awaited path is the query's error, not the task's panic,
/// and its connection goes back whole: with one connection, three panics, then a query that
/// answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_row_reader_on_the_awaited_path_is_an_error() {
    struct Refuses;
    impl fluxon::db::FromSqlRow for Refuses {
        fn from_sql_row(_: &fluxon::db::SqlRow<'_>) -> Result<Self, DbError> {
            panic!("this row reader gives up")
        }
    }
    let (place, _dir) = place(Backend::Postgres);
    let db = AsyncDatabase::open_with_readers(&place, 1).unwrap();
    db.create_tables(&ALL).await.unwrap();
    db.insert(&teacher("Ada")).await.unwrap();
    for _ in 0..3 {
        let err = db
            .execute(fluxon::db::Raw::<Vec<Refuses>>::query(
                "SELECT name FROM teacher",
            ))
            .await
            .err()
            .expect("a reader that panics gives no rows");
        assert!(
            matches!(&err, DbError::Panicked(text) if text.contains("gives up")),
            "{err:?}"
        );
    }
    assert_eq!(db.check_all::<Teacher>().count().await.unwrap(), 1);
}
