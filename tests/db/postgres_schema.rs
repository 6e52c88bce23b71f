//! The models' tables as PostgreSQL DDL ([`Dialect::Postgres`]), created on a real server of the
//! test's own: the natural column types, and every constraint enforced by the server itself.

use fluxon::db::{in_reference_order, Dialect};

use crate::models::ALL;
use crate::postgres::{connect, fresh_database};

/// A fresh database with every model's table, made from fluxon's PostgreSQL DDL.
fn database_with_tables() -> postgres::Client {
    let mut client = connect(&fresh_database());
    for table in in_reference_order(&ALL).expect("the models' references are in order") {
        for statement in Dialect::Postgres.create_table(&table) {
            client
                .batch_execute(&statement)
                .unwrap_or_else(|err| panic!("PostgreSQL refused {statement}: {err}"));
        }
    }
    client
}

/// The SQLSTATE of a failed statement.
fn code(result: Result<u64, postgres::Error>) -> String {
    let err = result.expect_err("the server should refuse this");
    err.code()
        .map(|c| c.code().to_owned())
        .unwrap_or_else(|| panic!("no SQLSTATE: {err}"))
}

#[test]
fn every_field_kind_gets_its_natural_type() {
    let mut client = database_with_tables();
    let rows = client
        .query(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns \
             WHERE table_name = 'everything' ORDER BY ordinal_position",
            &[],
        )
        .unwrap();
    let columns: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        ("id", "bigint", "NO"),
        ("char_field", "text", "NO"),
        ("text", "text", "NO"),
        ("int", "integer", "NO"),
        ("big", "bigint", "NO"),
        ("positive", "bigint", "NO"),
        ("float", "double precision", "NO"),
        ("price", "numeric", "NO"),
        ("flag", "boolean", "NO"),
        ("day", "date", "NO"),
        ("at", "time without time zone", "NO"),
        ("when", "timestamp with time zone", "NO"),
        ("maybe", "text", "YES"),
        ("maybe_int", "bigint", "YES"),
        ("created", "timestamp with time zone", "NO"),
        ("updated", "timestamp with time zone", "NO"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into()))
        .collect();
    assert_eq!(columns, expected);
    let precision: (i32, i32) = client
        .query_one(
            "SELECT numeric_precision, numeric_scale FROM information_schema.columns \
             WHERE table_name = 'everything' AND column_name = 'price'",
            &[],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(precision, (10, 3));
    let identity: String = client
        .query_one(
            "SELECT is_identity FROM information_schema.columns \
             WHERE table_name = 'teacher' AND column_name = 'id'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(identity, "YES", "an auto key is an identity column");
}

#[test]
fn the_server_enforces_every_constraint() {
    let mut client = database_with_tables();
    // The identity key is assigned, and the default applies.
    let row = client
        .query_one(
            "INSERT INTO teacher (name) VALUES ('Ada') RETURNING id",
            &[],
        )
        .unwrap();
    let ada: i64 = row.get(0);
    let seats: i64 = client
        .query_one(
            "INSERT INTO course (title, teacher) VALUES ('Logic', $1) RETURNING seats",
            &[&ada],
        )
        .unwrap()
        .get(0);
    assert_eq!(seats, 30);
    // Too long a name is a CHECK violation (23514), as on SQLite, not a truncation error.
    let long = "x".repeat(51);
    assert_eq!(
        code(client.execute("INSERT INTO teacher (name) VALUES ($1)", &[&long])),
        "23514"
    );
    // A negative count for a u32 field.
    assert_eq!(
        code(client.execute(
            "INSERT INTO course (title, teacher, seats) VALUES ('x', $1, -1)",
            &[&ada]
        )),
        "23514"
    );
    // A unique column.
    assert_eq!(
        code(client.execute("INSERT INTO teacher (name) VALUES ('Ada')", &[])),
        "23505"
    );
    // A reference to a missing row is refused, at commit: the key is deferred, as on SQLite.
    let mut tx = client.transaction().unwrap();
    tx.execute(
        "INSERT INTO course (title, teacher) VALUES ('Ghost', 999)",
        &[],
    )
    .expect("deferred until commit");
    let err = tx.commit().expect_err("the commit checks the reference");
    assert_eq!(err.code().map(|c| c.code()), Some("23503"), "{err}");
    // PROTECT: a teacher advising a student cannot be deleted; CASCADE takes the courses along.
    client
        .execute(
            "INSERT INTO student (name, advisor) VALUES ('Bo', $1)",
            &[&ada],
        )
        .unwrap();
    assert_eq!(
        code(client.execute("DELETE FROM teacher WHERE id = $1", &[&ada])),
        "23503"
    );
    client.execute("DELETE FROM student", &[]).unwrap();
    client
        .execute("DELETE FROM teacher WHERE id = $1", &[&ada])
        .unwrap();
    let courses: i64 = client
        .query_one("SELECT count(*) FROM course", &[])
        .unwrap()
        .get(0);
    assert_eq!(courses, 0, "cascaded");
}

#[test]
fn creating_the_tables_twice_changes_nothing() {
    let mut client = database_with_tables();
    for table in in_reference_order(&ALL).unwrap() {
        for statement in Dialect::Postgres.create_table(&table) {
            client.batch_execute(&statement).unwrap();
        }
    }
    let tables: i64 = client
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tables, ALL.len() as i64);
}
