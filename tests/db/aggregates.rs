//! Aggregates (count, sum, avg, min, max) with group_by and having, annotations of rows with
//! the count or sum of related rows, and updates computed by the database.

use fluxon::db::{count_of, count_rows, sum_of, Decimal, Executor, ForeignKey};

use crate::models::*;

/// Ada teaches Algebra (10 seats) and Biology (20); Grace teaches Chemistry (40); Linus none.
fn staffed(backend: Backend) -> (fluxon::db::Database, tempfile::TempDir, [i64; 3]) {
    let (db, dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let grace = db.insert(&teacher("Grace")).unwrap();
    let linus = db.insert(&teacher("Linus")).unwrap();
    for (title, by, seats) in [
        ("Algebra", ada, 10),
        ("Biology", ada, 20),
        ("Chemistry", grace, 40),
    ] {
        let mut c = course(title, by);
        c.seats = seats;
        db.insert(&c).unwrap();
    }
    (db, dir, [ada, grace, linus])
}

fn aggregates_over_all_rows_read_as_one_typed_tuple(backend: Backend) {
    let (db, _dir, _) = staffed(backend);
    let (n, total, mean, least, most) = db
        .check_all::<Course>()
        .aggregate((
            count_rows(),
            Course::seats.sum(),
            Course::seats.avg(),
            Course::seats.min(),
            Course::seats.max(),
        ))
        .unwrap();
    assert_eq!((n, total, least, most), (3, Some(70), Some(10), Some(40)));
    assert!((mean.unwrap() - 70.0 / 3.0).abs() < 1e-9, "{mean:?}");
    // Over no rows: a count of zero, and no sum, average, minimum or maximum.
    let none = db
        .check(Course::seats.gt(1000))
        .aggregate((
            count_rows(),
            Course::seats.sum(),
            Course::seats.avg(),
            Course::title.max(),
        ))
        .unwrap();
    assert_eq!(none, (0, None, None, None));
    // COUNT(column) counts values, not NULLs.
    let mentored = db
        .check_all::<Teacher>()
        .aggregate((Teacher::mentor.count(),))
        .unwrap();
    assert_eq!(mentored, (0,));
}

fn group_by_and_having_give_one_tuple_per_group(backend: Backend) {
    let (db, _dir, [ada, grace, _]) = staffed(backend);
    let per_teacher = db
        .check_all::<Course>()
        .group_by(Course::teacher)
        .order_by(Course::seats.sum().desc())
        .columns((Course::teacher, count_rows(), Course::seats.sum()))
        .unwrap();
    assert_eq!(
        per_teacher,
        [
            (ForeignKey::new(grace), 1, Some(40)),
            (ForeignKey::new(ada), 2, Some(30)),
        ]
    );
    let busy = db
        .check_all::<Course>()
        .group_by(Course::teacher)
        .having(count_rows().ge(2))
        .columns((Course::teacher,))
        .unwrap();
    assert_eq!(busy, [(ForeignKey::new(ada),)]);
    // The filter applies before grouping, `having` after.
    let small = db
        .check(Course::seats.lt(30))
        .group_by(Course::teacher)
        .columns((Course::teacher, Course::seats.max()))
        .unwrap();
    assert_eq!(small, [(ForeignKey::new(ada), Some(20))]);
}

fn rows_annotated_with_the_count_and_sum_of_their_related_rows(backend: Backend) {
    let (db, _dir, [ada, grace, linus]) = staffed(backend);
    let teachers = db
        .check_all::<Teacher>()
        .order_by(Teacher::name.asc())
        .annotate(count_of(Course::teacher))
        .unwrap();
    let counts: Vec<(i64, &str, i64)> = teachers
        .iter()
        .map(|(t, n)| (t.id, t.name.as_str(), *n))
        .collect();
    assert_eq!(
        counts,
        [(ada, "Ada", 2), (grace, "Grace", 1), (linus, "Linus", 0)]
    );
    let seats = db
        .check_all::<Teacher>()
        .order_by(Teacher::name.asc())
        .annotate(sum_of(Course::teacher, Course::seats))
        .unwrap();
    let sums: Vec<Option<i64>> = seats.iter().map(|(_, s)| *s).collect();
    assert_eq!(sums, [Some(30), Some(40), None]);
    // Filtered and ordered by the annotation, in the same statement.
    let most = db
        .check_all::<Teacher>()
        .filter(count_of(Course::teacher).ge(1))
        .order_by(count_of(Course::teacher).desc())
        .columns((Teacher::name, count_of(Course::teacher)))
        .unwrap();
    assert_eq!(most, [("Ada".to_owned(), 2), ("Grace".to_owned(), 1)]);
    // Through a many-to-many's join model: each course with its number of enrolments.
    let bo = db.insert(&student("Bo")).unwrap();
    let cy = db.insert(&student("Cy")).unwrap();
    let algebra = db
        .check(Course::title.eq("Algebra"))
        .first()
        .unwrap()
        .unwrap();
    for s in [bo, cy] {
        db.execute(Course::students.add(algebra.id, s)).unwrap();
    }
    let enrolled = db
        .check_all::<Course>()
        .order_by(Course::title.asc())
        .annotate(count_of(Enrollment::course))
        .unwrap();
    let enrolled: Vec<i64> = enrolled.iter().map(|(_, n)| *n).collect();
    assert_eq!(enrolled, [2, 0, 0]);
}

fn decimals_sum_and_average_exactly_in_their_scale(backend: Backend) {
    let (db, _dir) = database_on(backend);
    for (name, price) in [("a", "1.250"), ("b", "2.500"), ("c", "-0.125")] {
        let mut row = crate::fields::sample(name);
        row.price = price.parse::<Decimal>().unwrap();
        db.insert(&row).unwrap();
    }
    let (sum, avg) = db
        .check_all::<Everything>()
        .aggregate((Everything::price.sum(), Everything::price.avg()))
        .unwrap();
    assert_eq!(sum, Some("3.625".parse::<Decimal>().unwrap()));
    assert!((avg.unwrap() - 3.625 / 3.0).abs() < 1e-9, "{avg:?}");
}

fn an_update_computed_by_the_database_never_oversells(backend: Backend) {
    let (db, _dir, [ada, ..]) = staffed(backend);
    let algebra = db
        .check(Course::title.eq("Algebra"))
        .first()
        .unwrap()
        .unwrap();
    assert_eq!(algebra.seats, 10);
    // Twelve takers for ten seats: each one statement, `seats = seats - 1 WHERE seats > 0`.
    let mut taken = 0;
    for _ in 0..12 {
        taken += db
            .update(
                vec![Course::seats.set_expr(Course::seats - 1)],
                Course::id.eq(algebra.id) & Course::seats.gt(0),
            )
            .unwrap();
    }
    assert_eq!(taken, 10);
    assert_eq!(db.get::<Course>(algebra.id).unwrap().unwrap().seats, 0);
    // Increment, and an expression of several steps.
    db.update(vec![Course::seats.increment(5)], Course::teacher.eq(ada))
        .unwrap();
    db.update(
        vec![Course::seats.set_expr(Course::seats * 2 + 1)],
        Course::title.eq("Biology"),
    )
    .unwrap();
    let seats = db
        .check(Course::teacher.eq(ada))
        .order_by(Course::title.asc())
        .columns((Course::seats,))
        .unwrap();
    assert_eq!(seats, [(5,), (51,)]);
    // An expression cannot make a row: a typed error, nothing inserted.
    let before = db.check_all::<Course>().count().unwrap();
    let refused = db.insert_values(vec![Course::seats.increment(1)]);
    assert!(
        matches!(
            refused,
            Err(fluxon::db::DbError::InvalidValue {
                column: "seats",
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(db.check_all::<Course>().count().unwrap(), before);
}

async fn concurrent_takers_through_the_async_database_take_each_seat_once(backend: Backend) {
    let (db, _dir) = async_database_on(backend).await;
    let ada = db.insert(&teacher("Ada")).await.unwrap();
    let mut c = course("Algebra", ada);
    c.seats = 25;
    let algebra = db.insert(&c).await.unwrap();
    let takers = (0..60).map(|_| {
        let db = db.clone();
        tokio::spawn(async move {
            db.update(
                vec![Course::seats.set_expr(Course::seats - 1)],
                Course::id.eq(algebra) & Course::seats.gt(0),
            )
            .await
            .unwrap()
        })
    });
    let mut taken = 0;
    for taker in takers.collect::<Vec<_>>() {
        taken += taker.await.unwrap();
    }
    assert_eq!(taken, 25);
    assert_eq!(db.get::<Course>(algebra).await.unwrap().unwrap().seats, 0);
}

crate::backends!(sync: aggregates_over_all_rows_read_as_one_typed_tuple, group_by_and_having_give_one_tuple_per_group, rows_annotated_with_the_count_and_sum_of_their_related_rows, decimals_sum_and_average_exactly_in_their_scale, an_update_computed_by_the_database_never_oversells; async: concurrent_takers_through_the_async_database_take_each_seat_once);
