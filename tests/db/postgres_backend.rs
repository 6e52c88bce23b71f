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
