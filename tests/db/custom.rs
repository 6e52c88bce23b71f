//! Field types beyond the built-in ones: `Json<T>`, enums (`FieldEnum`), a custom type through
//! the `SqlType` trait, and the raw-SQL escape hatch; each through migrations too.

use fluxon::db::{
    ColumnSchema, ColumnType, Database, DbError, Executor, FieldEnum, FieldKind, Json, Model, Raw,
    Row, SqlType, Value, ValueRef,
};
use fluxon::migrate::{self, NoQuestions};
use serde::{Deserialize, Serialize};

use crate::models::Backend;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dimensions {
    pub width: u32,
    pub height: u32,
    pub tags: Vec<String>,
}

#[derive(FieldEnum, Debug, Clone, Copy, PartialEq)]
pub enum Status {
    Draft,
    Live,
    Retired,
}

#[derive(FieldEnum, Debug, Clone, Copy, PartialEq)]
#[field_enum(integer)]
pub enum Priority {
    Low = 1,
    High = 9,
}

/// A temperature kept in tenths of a degree: a custom field type of the app's own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Celsius(pub f64);

impl SqlType for Celsius {
    const KIND: FieldKind = FieldKind::Integer;
    fn to_sql(&self, column: &ColumnSchema) -> Result<Value, DbError> {
        if !self.0.is_finite() || self.0.abs() > 1e6 {
            return Err(DbError::InvalidValue {
                column: column.name,
                reason: format!("{} is not a temperature", self.0),
            });
        }
        Ok(Value::Integer((self.0 * 10.0).round() as i64))
    }
    fn from_sql(value: ValueRef<'_>, column: &ColumnSchema) -> Result<Self, DbError> {
        let tenths = value.as_i64().map_err(|e| DbError::Decode {
            column: column.name,
            expected: "tenths of a degree",
            reason: e.to_string(),
        })?;
        Ok(Celsius(tenths as f64 / 10.0))
    }
}

impl ColumnType for Celsius {
    type Inner = Celsius;
}

#[derive(Model, Debug, Clone, PartialEq)]
pub struct Item {
    #[field(max_length = 40)]
    pub name: String,
    pub size: Json<Dimensions>,
    pub extra: Option<Json<Vec<u32>>>,
    pub status: Status,
    pub priority: Priority,
    pub stored_at: Celsius,
}

fn item(name: &str, status: Status) -> Item {
    Item {
        name: name.into(),
        size: Json(Dimensions {
            width: 3,
            height: 4,
            tags: vec!["a\"quote".into(), "ü".into()],
        }),
        extra: None,
        status,
        priority: Priority::High,
        stored_at: Celsius(-18.5),
    }
}

fn items(backend: Backend) -> (Database, tempfile::TempDir) {
    let (place, dir) = crate::models::place(backend);
    let db = Database::open(&place).unwrap();
    db.create_tables(&[Item::SCHEMA]).unwrap();
    (db, dir)
}

fn json_enums_and_a_custom_type_round_trip_and_filter(backend: Backend) {
    let (db, _dir) = items(backend);
    let mut first = item("fridge", Status::Live);
    first.extra = Some(Json(vec![1, 2, 3]));
    let id = db.insert(&first).unwrap();
    db.insert(&item("stove", Status::Draft)).unwrap();
    let back = db.get::<Item>(id).unwrap().unwrap();
    assert_eq!(back.fields, first);
    assert_eq!(back.size.tags[0], "a\"quote");
    let live = db.check(Item::status.eq(Status::Live)).all().unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].name, "fridge");
    assert_eq!(
        db.check(Item::priority.eq(Priority::Low)).count().unwrap(),
        0
    );
    assert_eq!(
        db.check(Item::stored_at.lt(Celsius(-10.0)))
            .count()
            .unwrap(),
        2
    );
    // How they are stored: names, numbers, tenths, JSON text.
    let raw: Vec<(String, i64, i64, String)> = db
        .execute(
            Raw::query("SELECT status, priority, stored_at, size FROM item WHERE id = ?").bind(id),
        )
        .unwrap();
    assert_eq!(raw[0].0, "Live");
    assert_eq!((raw[0].1, raw[0].2), (9, -185));
    match backend {
        Backend::Sqlite => assert!(raw[0].3.starts_with("{\"width\":3"), "{}", raw[0].3),
        // JSONB keeps the value, not the text: its own spacing and key order.
        Backend::Postgres => assert!(raw[0].3.contains("\"width\": 3"), "{}", raw[0].3),
    }
}

fn bad_stored_values_are_typed_errors_not_panics(backend: Backend) {
    let (db, _dir) = items(backend);
    let id = db.insert(&item("fridge", Status::Live)).unwrap();
    // Another program writes a status no variant has, and JSON of another shape.
    db.execute(Raw::statement("UPDATE item SET status = 'Gone' WHERE id = ?").bind(id))
        .unwrap();
    let read = db.get::<Item>(id);
    assert!(
        matches!(
            &read,
            Err(DbError::Decode {
                column: "status",
                ..
            })
        ),
        "{read:?}"
    );
    db.execute(
        Raw::statement("UPDATE item SET status = 'Live', size = '[1, 2]' WHERE id = ?").bind(id),
    )
    .unwrap();
    let read = db.get::<Item>(id);
    assert!(
        matches!(&read, Err(DbError::Decode { column: "size", .. })),
        "{read:?}"
    );
    // Not JSON at all: the column's CHECK refuses it.
    let refused =
        db.execute(Raw::statement("UPDATE item SET size = 'not json' WHERE id = ?").bind(id));
    assert!(matches!(refused, Err(DbError::Check(_))), "{refused:?}");
    // An integer enum with an unknown number, and a custom type's own refusal.
    db.execute(Raw::statement("UPDATE item SET size = '{\"width\":1,\"height\":1,\"tags\":[]}', priority = 5 WHERE id = ?").bind(id))
        .unwrap();
    assert!(matches!(
        db.get::<Item>(id),
        Err(DbError::Decode {
            column: "priority",
            ..
        })
    ));
    let mut hot = item("oven", Status::Live);
    hot.stored_at = Celsius(f64::NAN);
    assert!(matches!(
        db.insert(&hot),
        Err(DbError::InvalidValue {
            column: "stored_at",
            ..
        })
    ));
}

fn raw_sql_binds_its_values_and_reads_models_by_name(backend: Backend) {
    let (db, _dir) = items(backend);
    let fridge = db.insert(&item("fridge", Status::Live)).unwrap();
    db.insert(&item("stove", Status::Draft)).unwrap();
    // Columns in another order, `SELECT *` or not: found by name.
    let rows: Vec<Row<Item>> = db
        .execute(
            Raw::query(
                "SELECT stored_at, priority, status, extra, size, name, id FROM item WHERE name = ?",
            )
            .bind("fridge"),
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, fridge);
    assert_eq!(rows[0].status, Status::Live);
    // A value is bound, never spliced: a quote in it is just a character.
    let none: Vec<(String,)> = db
        .execute(Raw::query("SELECT name FROM item WHERE name = ?").bind("x' OR '1'='1"))
        .unwrap();
    assert!(none.is_empty());
    // A column the model needs but the query left out: a typed error naming it.
    let partial: Result<Vec<Row<Item>>, _> = db.execute(Raw::query("SELECT id, name FROM item"));
    assert!(
        matches!(&partial, Err(DbError::Decode { column: "size", .. })),
        "{partial:?}"
    );
    // A raw query runs on a read connection: a write there is refused, typed.
    let wrote: Result<Vec<(i64,)>, _> = db.execute(Raw::query("DELETE FROM item RETURNING id"));
    assert!(wrote.is_err());
    assert_eq!(db.check_all::<Item>().count().unwrap(), 2);
    // A statement writes and says how many rows it changed.
    let changed = db
        .execute(Raw::statement("UPDATE item SET name = name || ?").bind("!"))
        .unwrap();
    assert_eq!(changed, 2);
}

// Migrations are SQLite's until `migrate` renders for PostgreSQL.
#[test]
fn migrations_make_the_new_kinds_and_stay_in_step() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("migrations");
    let db_path = tmp.path().join("app.sqlite3");
    let written = migrate::make_migrations(&dir, &[Item::SCHEMA], None, &mut NoQuestions)
        .unwrap()
        .expect("an initial migration");
    let sql = std::fs::read_to_string(&written.path).unwrap();
    assert!(sql.contains("json_valid(\"size\")"), "{sql}");
    assert!(sql.contains("\"status\" TEXT NOT NULL"), "{sql}");
    assert!(sql.contains("\"priority\" INTEGER NOT NULL"), "{sql}");
    migrate::apply(&db_path, &dir, None).unwrap();
    migrate::check_drift(&db_path, &[Item::SCHEMA]).unwrap();
    migrate::check(&dir, &[Item::SCHEMA]).expect("the history matches the models");
    assert!(
        migrate::make_migrations(&dir, &[Item::SCHEMA], None, &mut NoQuestions)
            .unwrap()
            .is_none()
    );
}

crate::backends!(sync: json_enums_and_a_custom_type_round_trip_and_filter, bad_stored_values_are_typed_errors_not_panics, raw_sql_binds_its_values_and_reads_models_by_name; async: );
