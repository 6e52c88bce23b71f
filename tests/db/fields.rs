//! Every field kind survives a round trip: bounds, NULL, unicode, dates, exact decimals.

use std::str::FromStr;

use fluxon::db::{Date, Decimal, Executor, OffsetDateTime, Time};
use time::macros::{date, datetime, time};

use crate::models::*;

pub fn sample(name: &str) -> Everything {
    Everything {
        char_field: name.to_owned(),
        text: "multi\nline ✓ 日本語 'quoted' \\ back".to_owned(),
        int: i32::MIN,
        big: i64::MAX,
        positive: u32::MAX,
        float: -1.5e-300,
        price: Decimal::from_str("-1234567.891").unwrap(),
        flag: true,
        day: date!(1999 - 12 - 31),
        at: time!(23:59:59.999),
        when: datetime!(2026-11-26 12:30:00.5 UTC),
        maybe: None,
        maybe_int: Some(i64::MIN),
        created: OffsetDateTime::UNIX_EPOCH,
        updated: OffsetDateTime::UNIX_EPOCH,
    }
}

/// SQLite keeps a NUL inside text; PostgreSQL's text cannot hold one, and says so before it
/// writes anything.
fn a_nul_in_text_is_kept_or_refused_by_name(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let row = Everything {
        text: "before \u{0} after".to_owned(),
        ..sample("nul")
    };
    match backend {
        Backend::Sqlite => {
            db.insert(&row).unwrap();
            let back = db.check_all::<Everything>().first().unwrap().unwrap();
            assert_eq!(back.text, "before \u{0} after");
        }
        Backend::Postgres => {
            let err = db.insert(&row).unwrap_err();
            assert!(
                matches!(&err, fluxon::db::DbError::InvalidValue { reason, .. } if reason.contains("NUL")),
                "{err}"
            );
            assert_eq!(db.check_all::<Everything>().count().unwrap(), 0);
        }
    }
}

fn every_field_kind_round_trips(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let before = OffsetDateTime::now_utc();
    let mut row = sample("ünïcødé ✓");
    let id = db.insert(&row).unwrap();
    assert_eq!(id, 1);
    let back = db
        .check(Everything::char_field.eq("ünïcødé ✓"))
        .first()
        .unwrap()
        .unwrap();
    // auto_now_add / auto_now were set by the insert, not taken from the struct.
    assert!(
        back.created >= before - time::Duration::seconds(1),
        "{:?}",
        back.created
    );
    assert_eq!(back.created, back.updated);
    row.created = back.created;
    row.updated = back.updated;
    assert_eq!(back.fields, row);
    assert_eq!(back.price.to_string(), "-1234567.891");

    let other = Everything {
        int: i32::MAX,
        big: i64::MIN,
        positive: 0,
        float: f64::MAX,
        flag: false,
        maybe: Some(String::new()),
        maybe_int: None,
        price: Decimal::from_str("0.001").unwrap(),
        ..sample("second")
    };
    db.insert(&other).unwrap();
    let back = db
        .check(Everything::char_field.eq("second"))
        .first()
        .unwrap()
        .unwrap();
    assert_eq!((back.int, back.big, back.positive), (i32::MAX, i64::MIN, 0));
    assert_eq!(back.float, f64::MAX);
    assert_eq!(back.maybe.as_deref(), Some(""), "empty string is not NULL");
    assert_eq!(back.maybe_int, None);
    assert_eq!(back.price, Decimal::from_str("0.001").unwrap());
}

fn decimals_compare_exactly_in_sql(backend: Backend) {
    let (db, _dir) = database_on(backend);
    for (name, price) in [("a", "0.1"), ("b", "0.2"), ("c", "0.3")] {
        db.insert(&Everything {
            price: Decimal::from_str(price).unwrap(),
            ..sample(name)
        })
        .unwrap();
    }
    // 0.1 + 0.2 == 0.3 exactly: no float rounding anywhere.
    let hit = db
        .check(Everything::price.eq(Decimal::from_str("0.3").unwrap()))
        .columns((Everything::char_field,))
        .unwrap();
    assert_eq!(hit, vec![("c".to_owned(),)]);
    let too_precise = db.insert(&Everything {
        price: Decimal::from_str("0.0001").unwrap(),
        ..sample("d")
    });
    assert!(matches!(
        too_precise,
        Err(fluxon::db::DbError::InvalidValue {
            column: "price",
            ..
        })
    ));
}

fn dates_and_times_order_and_filter(backend: Backend) {
    let (db, _dir) = database_on(backend);
    for (name, day) in [
        ("old", date!(1970 - 01 - 01)),
        ("mid", date!(2000 - 02 - 29)),
        ("new", date!(2038 - 01 - 19)),
    ] {
        db.insert(&Everything {
            day,
            ..sample(name)
        })
        .unwrap();
    }
    let after: Vec<(String, Date)> = db
        .check(Everything::day.gt(date!(1999 - 01 - 01)))
        .order_by(Everything::day.desc())
        .columns((Everything::char_field, Everything::day))
        .unwrap();
    assert_eq!(
        after,
        vec![
            ("new".into(), date!(2038 - 01 - 19)),
            ("mid".into(), date!(2000 - 02 - 29))
        ]
    );
    let at: Vec<(Time,)> = db
        .check_all::<Everything>()
        .limit(1)
        .columns((Everything::at,))
        .unwrap();
    assert_eq!(at[0].0, time!(23:59:59.999));
}

fn auto_now_moves_on_update_and_auto_now_add_does_not(backend: Backend) {
    let (db, _dir) = database_on(backend);
    db.insert(&sample("x")).unwrap();
    let first = db
        .check(Everything::char_field.eq("x"))
        .first()
        .unwrap()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let changed = db
        .update(vec![Everything::int.set(7)], Everything::char_field.eq("x"))
        .unwrap();
    assert_eq!(changed, 1);
    let second = db
        .check(Everything::char_field.eq("x"))
        .first()
        .unwrap()
        .unwrap();
    assert_eq!(second.int, 7);
    assert_eq!(second.created, first.created);
    assert!(second.updated > first.updated);
}

crate::backends!(sync: a_nul_in_text_is_kept_or_refused_by_name, every_field_kind_round_trips, decimals_compare_exactly_in_sql, dates_and_times_order_and_filter, auto_now_moves_on_update_and_auto_now_add_does_not; async: );
