//! Foreign keys (cascade, set null), joins, and many-to-many through a join model.

use fluxon::db::Executor;

use crate::models::*;

fn cascade_deletes_children_and_their_join_rows(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let grace = db.insert(&teacher("Grace")).unwrap();
    let engines = db.insert(&course("Engines", ada)).unwrap();
    let compilers = db.insert(&course("Compilers", grace)).unwrap();
    let bo = db.insert(&student("Bo")).unwrap();
    db.execute(Course::students.add(engines, bo)).unwrap();
    db.execute(Course::students.add(compilers, bo)).unwrap();

    assert_eq!(db.delete(Teacher::name.eq("Ada")).unwrap(), 1);
    let left: Vec<String> = db
        .check_all::<Course>()
        .all()
        .unwrap()
        .into_iter()
        .map(|c| c.fields.title)
        .collect();
    assert_eq!(left, ["Compilers"]);
    assert_eq!(
        db.check_all::<Enrollment>().count().unwrap(),
        1,
        "the enrollment in Engines went too"
    );
    assert_eq!(
        db.check_all::<Student>().count().unwrap(),
        1,
        "students are not owned by courses"
    );
}

fn set_null_clears_the_reference(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    db.insert(&Teacher {
        name: "Grace".into(),
        mentor: Some(ada.into()),
    })
    .unwrap();
    assert_eq!(db.check(Teacher::mentor.eq(ada)).count().unwrap(), 1);
    db.delete(Teacher::id.eq(ada)).unwrap();
    let grace = db
        .check(Teacher::name.eq("Grace"))
        .first()
        .unwrap()
        .unwrap();
    assert_eq!(grace.mentor, None);
}

fn a_join_follows_a_foreign_key_in_one_query(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let grace = db.insert(&teacher("Grace")).unwrap();
    db.insert(&course("Engines", ada)).unwrap();
    db.insert(&course("Compilers", grace)).unwrap();
    db.insert(&course("Looms", ada)).unwrap();
    let rows = db
        .check(Course::title.ne("Compilers"))
        .order_by(Course::title.asc())
        .related(Course::teacher)
        .unwrap();
    let pairs: Vec<(&str, &str)> = rows
        .iter()
        .map(|(c, t)| (c.title.as_str(), t.name.as_str()))
        .collect();
    assert_eq!(pairs, [("Engines", "Ada"), ("Looms", "Ada")]);

    // A nullable reference joins with LEFT JOIN: rows without one come back with None.
    db.insert(&Student {
        name: "Bo".into(),
        advisor: Some(grace.into()),
    })
    .unwrap();
    db.insert(&student("Cy")).unwrap();
    let advised = db
        .check_all::<Student>()
        .order_by(Student::name.asc())
        .related(Student::advisor)
        .unwrap();
    assert_eq!(
        advised[0].1.as_ref().map(|t| t.name.as_str()),
        Some("Grace")
    );
    assert_eq!(advised[1].1, None);
}

fn many_to_many_add_list_remove(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let engines = db.insert(&course("Engines", ada)).unwrap();
    let looms = db.insert(&course("Looms", ada)).unwrap();
    let bo = db.insert(&student("Bo")).unwrap();
    let cy = db.insert(&student("Cy")).unwrap();
    db.execute(Course::students.add(engines, bo)).unwrap();
    db.execute(Course::students.add(engines, cy)).unwrap();
    db.execute(Course::students.add(looms, cy)).unwrap();

    let names = |course| -> Vec<String> {
        db.execute(Course::students.list(course))
            .unwrap()
            .into_iter()
            .map(|s| s.fields.name)
            .collect()
    };
    assert_eq!(names(engines), ["Bo", "Cy"]);
    assert_eq!(names(looms), ["Cy"]);
    assert_eq!(db.execute(Course::students.remove(engines, bo)).unwrap(), 1);
    assert_eq!(names(engines), ["Cy"]);
    assert_eq!(
        db.execute(Course::students.remove(engines, bo)).unwrap(),
        0,
        "already gone"
    );
    let enrollment = db.check_all::<Enrollment>().first().unwrap().unwrap();
    assert!(
        enrollment.joined > fluxon::db::OffsetDateTime::UNIX_EPOCH,
        "auto_now_add set by add()"
    );
}

fn one_to_one_is_unique_and_joins(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let profile = |bio: &str| Profile {
        teacher: ada.into(),
        bio: bio.into(),
        backup: ada.into(),
        reviewer: None,
    };
    db.insert(&profile("Counts engines")).unwrap();
    let err = db.insert(&profile("A second one")).unwrap_err();
    assert!(matches!(err, fluxon::db::DbError::Unique(_)), "{err}");
    let joined = db.check_all::<Profile>().related(Profile::teacher).unwrap();
    assert_eq!(
        (joined[0].0.bio.as_str(), joined[0].1.name.as_str()),
        ("Counts engines", "Ada")
    );
    db.delete(Teacher::id.eq(ada)).unwrap();
    assert_eq!(
        db.check_all::<Profile>().count().unwrap(),
        0,
        "cascade through the one-to-one"
    );
}

fn set_default_and_no_action(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let first = db.insert(&teacher("First")).unwrap();
    let second = db.insert(&teacher("Second")).unwrap();
    let third = db.insert(&teacher("Third")).unwrap();
    assert_eq!(first, 1, "the declared default points here");
    db.insert(&Profile {
        teacher: third.into(),
        bio: "x".into(),
        backup: second.into(),
        reviewer: Some(third.into()),
    })
    .unwrap();
    db.delete(Teacher::id.eq(second)).unwrap();
    let profile = db.check_all::<Profile>().first().unwrap().unwrap();
    assert_eq!(profile.backup, first.into(), "set_default");

    // no_action: deleting the reviewer leaves a dangling reference, refused at commit.
    let err = db
        .transaction(move |tx| {
            tx.update(vec![Profile::teacher.set(first)], fluxon::db::Filter::all())?;
            tx.delete(Teacher::id.eq(third))
        })
        .unwrap_err();
    assert!(matches!(err, fluxon::db::DbError::ForeignKey(_)), "{err}");
    assert!(
        db.check(Teacher::id.eq(third)).exists().unwrap(),
        "rolled back"
    );
}

fn models_in_any_order_make_their_tables_and_a_missing_one_is_named(backend: Backend) {
    let (place_a, _dir) = place(backend);
    let db = fluxon::db::Database::open(&place_a).unwrap();
    // Referring tables first: sorted out by create_tables.
    let models = fluxon::models![Profile, Enrollment, Student, Course, Teacher, User];
    db.create_tables(&models).unwrap();
    let ada = db.insert(&teacher("Ada")).unwrap();
    db.insert(&course("Engines", ada)).unwrap();
    // A model whose referenced model is not listed: an error naming both, nothing made.
    let (place_b, _other) = place(backend);
    let db = fluxon::db::Database::open(&place_b).unwrap();
    let missing = db.create_tables(&fluxon::models![Course, Student]);
    match missing {
        Err(err @ fluxon::db::DbError::MissingModel { .. }) => {
            let text = err.to_string();
            assert!(
                text.contains("`course`") && text.contains("`teacher`"),
                "{text}"
            );
        }
        other => panic!("expected a missing model, got {other:?}"),
    }
    let tables = match backend {
        Backend::Sqlite => "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
        Backend::Postgres => {
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        }
    };
    assert_eq!(
        db.execute(fluxon::db::Raw::<Vec<(i64,)>>::query(tables))
            .unwrap(),
        [(0,)]
    );
}

crate::backends!(sync: cascade_deletes_children_and_their_join_rows, set_null_clears_the_reference, a_join_follows_a_foreign_key_in_one_query, many_to_many_add_list_remove, one_to_one_is_unique_and_joins, set_default_and_no_action, models_in_any_order_make_their_tables_and_a_missing_one_is_named; async: );
