//! Filters with `&`, `|`, `!`; ordering, paging, counting; typed column tuples; updates and deletes.

use fluxon::db::{DbError, Executor, Filter, Row};

use crate::models::*;

fn school(backend: Backend) -> (fluxon::db::Database, tempfile::TempDir) {
    let (db, dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let grace = db.insert(&teacher("Grace")).unwrap();
    for (title, teacher, seats) in [
        ("Algebra", ada, 10u32),
        ("Biology", grace, 25),
        ("Chemistry", ada, 40),
        ("Drama", grace, 5),
        ("Economics", ada, 60),
    ] {
        db.insert(&Course {
            seats,
            ..course(title, teacher)
        })
        .unwrap();
    }
    (db, dir)
}

fn titles(courses: Vec<Row<Course>>) -> Vec<String> {
    courses.into_iter().map(|c| c.fields.title).collect()
}

fn and_or_not_combine(backend: Backend) {
    let (db, _dir) = school(backend);
    let ada = 1;
    let q = db
        .check((Course::teacher.eq(ada) & Course::seats.ge(40)) | Course::title.eq("Drama"))
        .order_by(Course::title.asc())
        .all()
        .unwrap();
    assert_eq!(titles(q), ["Chemistry", "Drama", "Economics"]);
    let q = db
        .check(!Course::title.like("%o%"))
        .order_by(Course::title.asc())
        .all()
        .unwrap();
    assert_eq!(titles(q), ["Algebra", "Chemistry", "Drama"]);
    let q = db
        .check(Course::seats.lt(10) | Course::seats.gt(50))
        .count()
        .unwrap();
    assert_eq!(q, 2);
    let q = db
        .check(Course::seats.le(10) & Course::seats.ne(5))
        .all()
        .unwrap();
    assert_eq!(titles(q), ["Algebra"]);
    let q = db
        .check(Course::title.in_list(["Drama", "Algebra", "Nope"]))
        .count()
        .unwrap();
    assert_eq!(q, 2);
    let q = db
        .check(Course::title.in_list(Vec::<String>::new()))
        .count()
        .unwrap();
    assert_eq!(q, 0, "an empty list matches nothing");
    assert_eq!(db.check(Teacher::mentor.is_null()).count().unwrap(), 2);
    assert_eq!(db.check(Teacher::mentor.is_not_null()).count().unwrap(), 0);
}

fn order_limit_offset_first_fetch_exists(backend: Backend) {
    let (db, _dir) = school(backend);
    let q = db
        .check_all::<Course>()
        .order_by(Course::seats.desc())
        .limit(2)
        .offset(1)
        .all()
        .unwrap();
    assert_eq!(titles(q), ["Chemistry", "Biology"]);
    let q = db
        .check_all::<Course>()
        .order_by(Course::seats.asc())
        .fetch(3)
        .unwrap();
    assert_eq!(titles(q), ["Drama", "Algebra", "Biology"]);
    let first = db
        .check(Course::seats.gt(30))
        .order_by(Course::seats.asc())
        .first()
        .unwrap();
    assert_eq!(first.map(|c| c.fields.title).as_deref(), Some("Chemistry"));
    assert!(db.check(Course::title.eq("Drama")).exists().unwrap());
    assert!(!db.check(Course::title.eq("Latin")).exists().unwrap());
    assert_eq!(
        db.check(Filter::<Course>::all()).limit(2).count().unwrap(),
        2,
        "count honours limit"
    );
}

fn columns_come_back_as_typed_tuples(backend: Backend) {
    let (db, _dir) = school(backend);
    let rows: Vec<(i64, String, u32)> = db
        .check(Course::seats.ge(25))
        .order_by(Course::id.asc())
        .columns((Course::id, Course::title, Course::seats))
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (2, "Biology".into(), 25),
            (3, "Chemistry".into(), 40),
            (5, "Economics".into(), 60)
        ]
    );
    let ids: Vec<(i64,)> = db
        .check(Teacher::name.eq("Grace"))
        .columns((Teacher::id,))
        .unwrap();
    assert_eq!(ids, vec![(2,)]);
}

fn update_and_delete_report_rows_changed(backend: Backend) {
    let (db, _dir) = school(backend);
    let changed = db
        .update(
            vec![Course::seats.set(99u32), Course::title.set("Big")],
            Course::seats.gt(30),
        )
        .unwrap();
    assert_eq!(changed, 2);
    assert_eq!(
        db.check(Course::title.eq("Big") & Course::seats.eq(99))
            .count()
            .unwrap(),
        2
    );
    assert_eq!(
        db.update(vec![Course::seats.set(1)], Course::title.eq("none"))
            .unwrap(),
        0
    );
    assert_eq!(db.delete(Course::title.eq("Big")).unwrap(), 2);
    assert_eq!(db.check_all::<Course>().count().unwrap(), 3);
}

fn insert_by_pairs_takes_defaults_for_the_rest(backend: Backend) {
    let (db, _dir) = school(backend);
    let id = db
        .insert_values(vec![Course::title.set("Latin"), Course::teacher.set(1)])
        .unwrap();
    let latin = db.check(Course::id.eq(id)).first().unwrap().unwrap();
    assert_eq!(latin.seats, 30, "the declared default");
    assert_eq!(latin.title, "Latin");
}

async fn the_same_queries_run_async(backend: Backend) {
    let (db, _dir) = async_database_on(backend).await;
    let ada = db.insert(&teacher("Ada")).await.unwrap();
    db.insert(&course("Engines", ada)).await.unwrap();
    let found = db.check(Course::title.like("Eng%")).all().await.unwrap();
    assert_eq!(found[0].teacher, ada.into());
    let joined = db
        .check_all::<Course>()
        .related(Course::teacher)
        .await
        .unwrap();
    assert_eq!(joined[0].1.name, "Ada");
    assert_eq!(
        db.update(vec![Course::seats.set(3)], Course::id.eq(found[0].id))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        db.blocking().check(Course::seats.eq(3)).count().unwrap(),
        1,
        "same file, same rows"
    );
}

/// `contains`, `starts_with` and `ends_with` match the text as it is: a user's `%` or `_` is not
/// a wildcard (what a search box needs), while `like` keeps its wildcards.
fn contains_and_friends_escape_like_wildcards(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    for title in [
        "100% Maths",
        "1000 Maths",
        "snake_case",
        "snakeXcase",
        "back\\slash",
        "Algebra",
    ] {
        db.insert(&course(title, ada)).unwrap();
    }
    let found = |filter: Filter<Course>| {
        let mut got = titles(db.check(filter).all().unwrap());
        got.sort();
        got
    };
    assert_eq!(found(Course::title.contains("0%")), ["100% Maths"]);
    assert_eq!(
        found(Course::title.like("%0%")),
        ["100% Maths", "1000 Maths"]
    );
    assert_eq!(found(Course::title.contains("e_c")), ["snake_case"]);
    assert_eq!(found(Course::title.starts_with("snake_")), ["snake_case"]);
    assert_eq!(found(Course::title.ends_with("_case")), ["snake_case"]);
    assert_eq!(found(Course::title.contains("k\\s")), ["back\\slash"]);
    assert_eq!(found(Course::title.contains("%")), ["100% Maths"]);
    assert!(found(Course::title.contains("%%")).is_empty());
    assert_eq!(
        found(Course::title.starts_with("alg")),
        ["Algebra"],
        "case-insensitive like LIKE"
    );
    assert_eq!(fluxon::db::escape_like("a%b_c\\d"), "a\\%b\\_c\\\\d");
}

fn insert_many_is_one_transaction_all_or_none(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let courses: Vec<Course> = (0..1000).map(|i| course(&format!("c{i}"), ada)).collect();
    let ids = db.insert_many(&courses).unwrap();
    assert_eq!(ids.len(), 1000);
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "ids in order");
    let back = db.get::<Course>(ids[999]).unwrap().unwrap();
    assert_eq!(back.title, "c999");
    assert!(db.insert_many(&Vec::<Course>::new()).unwrap().is_empty());
    // Row 3 of 5 breaks a unique constraint: none of the five is kept.
    let names = ["t1", "t2", "Ada", "t4", "t5"];
    let teachers: Vec<Teacher> = names.iter().map(|n| teacher(n)).collect();
    let refused = db.insert_many(&teachers);
    assert!(matches!(refused, Err(DbError::Unique(_))), "{refused:?}");
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 1, "all or none");
    // A value refused before anything runs (too long for its column): also nothing kept.
    let long = [teacher("ok"), teacher(&"x".repeat(51))];
    assert!(matches!(
        db.insert_many(&long),
        Err(DbError::InvalidValue { .. })
    ));
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 1);
    // Inside a transaction: a savepoint of it, undone with it.
    let in_tx = db.transaction(|tx| {
        tx.insert_many(&[teacher("t1"), teacher("t2")])?;
        Err::<(), _>(DbError::NotFound)
    });
    assert!(in_tx.is_err());
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 1);
    let kept = db.transaction(|tx| {
        let ids = tx.insert_many(&[teacher("t1"), teacher("t2")])?;
        assert!(tx.insert_many(&[teacher("t3"), teacher("t1")]).is_err());
        Ok(ids)
    });
    assert_eq!(kept.unwrap().len(), 2);
    assert_eq!(
        db.check_all::<Teacher>().count().unwrap(),
        3,
        "the failed batch only undone"
    );
}

fn filtering_by_related_rows_and_subqueries(backend: Backend) {
    use fluxon::db::{any_related, subquery};
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let grace = db
        .insert(&Teacher {
            name: "Grace".into(),
            mentor: Some(ada.into()),
        })
        .unwrap();
    let alan = db
        .insert(&Teacher {
            name: "Alan".into(),
            mentor: Some(grace.into()),
        })
        .unwrap();
    for (title, by, seats) in [
        ("Engines", ada, 40),
        ("Compilers", grace, 10),
        ("Logic", alan, 35),
    ] {
        let mut c = course(title, by);
        c.seats = seats;
        db.insert(&c).unwrap();
    }
    // Courses whose teacher's name starts with "A" (a value with a wildcard stays literal).
    let by_a = db
        .check(Course::teacher.matches(Teacher::name.starts_with("A")))
        .order_by(Course::title.asc())
        .all()
        .unwrap();
    assert_eq!(titles(by_a), ["Engines", "Logic"]);
    assert!(db
        .check(Course::teacher.matches(Teacher::name.starts_with("A%")))
        .all()
        .unwrap()
        .is_empty());
    // Two levels: courses whose teacher's mentor is Ada.
    let mentored = db
        .check(Course::teacher.matches(Teacher::mentor.matches(Teacher::name.eq("Ada"))))
        .all()
        .unwrap();
    assert_eq!(titles(mentored), ["Compilers"]);
    // Teachers with at least one course over 30 seats (the reverse direction).
    let big = db
        .check(any_related(Course::teacher, Course::seats.gt(30)))
        .order_by(Teacher::name.asc())
        .columns((Teacher::name,))
        .unwrap();
    assert_eq!(big, [("Ada".to_owned(),), ("Alan".to_owned(),)]);
    // A model related to itself: teachers who mentor someone.
    let mentors = db
        .check(any_related(Teacher::mentor, Filter::all()))
        .order_by(Teacher::name.asc())
        .columns((Teacher::name,))
        .unwrap();
    assert_eq!(mentors, [("Ada".to_owned(),), ("Grace".to_owned(),)]);
    // `in_query`: a column among a subquery's values, combined with other conditions.
    let in_sub = db
        .check(
            Course::teacher.in_query(subquery(Teacher::id, Teacher::mentor.is_not_null()))
                & Course::seats.lt(20),
        )
        .all()
        .unwrap();
    assert_eq!(titles(in_sub), ["Compilers"]);
    // A bad value inside a subquery is the query's typed error, not a wrong answer.
    let refused = db
        .check(Course::teacher.matches(Teacher::name.eq("x".repeat(51))))
        .all();
    assert!(
        matches!(refused, Err(DbError::InvalidValue { column: "name", .. })),
        "{refused:?}"
    );
}

crate::backends!(sync: and_or_not_combine, order_limit_offset_first_fetch_exists, columns_come_back_as_typed_tuples, update_and_delete_report_rows_changed, insert_by_pairs_takes_defaults_for_the_rest, contains_and_friends_escape_like_wildcards, insert_many_is_one_transaction_all_or_none, filtering_by_related_rows_and_subqueries; async: the_same_queries_run_async);
