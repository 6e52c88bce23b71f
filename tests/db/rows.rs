//! Rows with their keys: every read gives each row its primary key, and a loaded row can be
//! fetched by key, saved back and deleted, with a typed error when it is gone.

use fluxon::db::{DbError, Executor, ForeignKey, Model, Row};

use crate::models::*;

/// A model whose key is a text column the model declares.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct Country {
    #[field(primary_key, max_length = 2)]
    pub code: String,
    #[field(max_length = 50)]
    pub name: String,
}

fn every_read_gives_each_row_its_key(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let grace = db.insert(&teacher("Grace")).unwrap();
    assert_ne!(ada, grace);
    let rows = db
        .check_all::<Teacher>()
        .order_by(Teacher::name.asc())
        .all()
        .unwrap();
    let keyed: Vec<(i64, &str)> = rows.iter().map(|r| (r.id, r.name.as_str())).collect();
    assert_eq!(keyed, [(ada, "Ada"), (grace, "Grace")]);
    let first = db
        .check(Teacher::name.eq("Grace"))
        .first()
        .unwrap()
        .unwrap();
    assert_eq!(first.id, grace);
    let fetched = db.check_all::<Teacher>().fetch(1).unwrap();
    assert_eq!(fetched.len(), 1);
    assert!(fetched[0].id == ada || fetched[0].id == grace);
}

fn get_by_key_and_a_missing_key_is_none(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let row = db.get::<Teacher>(ada).unwrap().expect("Ada is there");
    assert_eq!(row.id, ada);
    assert_eq!(row.fields, teacher("Ada"));
    assert!(db.get::<Teacher>(ada + 100).unwrap().is_none());
    // A key the model declares (a text key here) works the same.
    db.create_tables(&[Country::SCHEMA]).unwrap();
    db.insert(&Country {
        code: "FR".into(),
        name: "France".into(),
    })
    .unwrap();
    let france = db.get::<Country>("FR".to_owned()).unwrap().unwrap();
    assert_eq!(france.id, "FR");
    assert_eq!(france.name, "France");
    assert!(db.get::<Country>("XX".to_owned()).unwrap().is_none());
}

fn save_writes_every_field_back_and_only_to_that_row(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let grace = db.insert(&teacher("Grace")).unwrap();
    let mut row = db.get::<Teacher>(ada).unwrap().unwrap();
    row.name = "Ada Lovelace".into();
    row.mentor = Some(grace.into());
    db.save(&row).unwrap();
    let back = db.get::<Teacher>(ada).unwrap().unwrap();
    assert_eq!(back.name, "Ada Lovelace");
    assert_eq!(back.mentor, Some(grace.into()));
    let other = db.get::<Teacher>(grace).unwrap().unwrap();
    assert_eq!(other.fields, teacher("Grace"), "the other row is untouched");

    // A text key: saved by it, the key itself not rewritten.
    db.create_tables(&[Country::SCHEMA]).unwrap();
    db.insert(&Country {
        code: "DE".into(),
        name: "Germany".into(),
    })
    .unwrap();
    let mut germany = db.get::<Country>("DE".to_owned()).unwrap().unwrap();
    germany.name = "Deutschland".into();
    db.save(&germany).unwrap();
    assert_eq!(
        db.get::<Country>("DE".to_owned()).unwrap().unwrap().name,
        "Deutschland"
    );
    assert_eq!(db.check_all::<Country>().count().unwrap(), 1);
}

fn save_sets_auto_now_and_keeps_auto_now_add(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let id = db.insert(&crate::fields::sample("row")).unwrap();
    let mut row = db.get::<Everything>(id).unwrap().unwrap();
    let (created, updated) = (row.created, row.updated);
    std::thread::sleep(std::time::Duration::from_millis(5));
    row.text = "changed".into();
    // Whatever the struct holds for these, the table decides.
    row.created = created - time::Duration::days(365);
    db.save(&row).unwrap();
    let back = db.get::<Everything>(id).unwrap().unwrap();
    assert_eq!(back.text, "changed");
    assert_eq!(back.created, created, "auto_now_add is kept");
    assert!(back.updated > updated, "auto_now moves on save");
}

fn save_or_delete_of_a_row_deleted_meanwhile_says_so_and_writes_nothing(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let mut row = db.get::<Teacher>(ada).unwrap().unwrap();
    assert_eq!(db.delete(Teacher::id.eq(ada)).unwrap(), 1);
    row.name = "Ghost".into();
    match db.save(&row) {
        Err(DbError::RowGone { table, key }) => {
            assert_eq!(table, "teacher");
            assert_eq!(key, ada.to_string());
        }
        other => panic!("expected RowGone, got {other:?}"),
    }
    assert_eq!(db.check_all::<Teacher>().count().unwrap(), 0, "no row made");
    assert!(matches!(db.delete_row(&row), Err(DbError::RowGone { .. })));
}

fn delete_row_deletes_that_row_and_cascades(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let grace = db.insert(&teacher("Grace")).unwrap();
    db.insert(&course("Engines", ada)).unwrap();
    db.insert(&course("Compilers", grace)).unwrap();
    let row = db.get::<Teacher>(ada).unwrap().unwrap();
    db.delete_row(&row).unwrap();
    assert!(db.get::<Teacher>(ada).unwrap().is_none());
    assert!(db.get::<Teacher>(grace).unwrap().is_some());
    let left: Vec<String> = db
        .check_all::<Course>()
        .all()
        .unwrap()
        .into_iter()
        .map(|c| c.fields.title)
        .collect();
    assert_eq!(left, ["Compilers"], "Ada's course went with her (cascade)");
    // A second delete of the same loaded row finds nothing: typed, not a silent success.
    assert!(matches!(db.delete_row(&row), Err(DbError::RowGone { .. })));
}

fn joins_and_many_to_many_lists_give_keys_on_both_sides(backend: Backend) {
    let (db, _dir) = database_on(backend);
    let ada = db.insert(&teacher("Ada")).unwrap();
    let engines = db.insert(&course("Engines", ada)).unwrap();
    let bo = db.insert(&student("Bo")).unwrap();
    db.execute(Course::students.add(engines, bo)).unwrap();
    let joined = db.check_all::<Course>().related(Course::teacher).unwrap();
    assert_eq!(joined.len(), 1);
    let (course, teacher) = &joined[0];
    assert_eq!((course.id, teacher.id), (engines, ada));
    assert_eq!(teacher.name, "Ada");
    // A nullable reference: an Option of the row, with its key when present.
    let grace = db
        .insert(&Teacher {
            name: "Grace".into(),
            mentor: Some(ada.into()),
        })
        .unwrap();
    let mentors = db
        .check_all::<Teacher>()
        .order_by(Teacher::name.asc())
        .related(Teacher::mentor)
        .unwrap();
    let keyed: Vec<(i64, Option<i64>)> = mentors
        .iter()
        .map(|(t, m)| (t.id, m.as_ref().map(|m| m.id)))
        .collect();
    assert_eq!(keyed, [(ada, None), (grace, Some(ada))]);
    let students: Vec<Row<Student>> = db.execute(Course::students.list(engines)).unwrap();
    assert_eq!(students[0].id, bo);
    assert_eq!(students[0].name, "Bo");
}

async fn the_async_database_gives_the_same_rows(backend: Backend) {
    let (db, _dir) = async_database_on(backend).await;
    let ada = db.insert(&teacher("Ada")).await.unwrap();
    let mut row = db.get::<Teacher>(ada).await.unwrap().unwrap();
    row.name = "Ada L.".into();
    db.save(&row).await.unwrap();
    assert_eq!(
        db.get::<Teacher>(ada).await.unwrap().unwrap().name,
        "Ada L."
    );
    db.delete_row(&row).await.unwrap();
    assert!(matches!(
        db.delete_row(&row).await,
        Err(DbError::RowGone { .. })
    ));
    // Inside a transaction too.
    let id = db
        .transaction(|tx| {
            let id = tx.insert(&teacher("Grace"))?;
            let mut row = tx.get::<Teacher>(id)?.ok_or(DbError::NotFound)?;
            row.name = "Grace H.".into();
            tx.save(&row)?;
            Ok(id)
        })
        .await
        .unwrap();
    assert_eq!(
        db.get::<Teacher>(id).await.unwrap().unwrap().name,
        "Grace H."
    );
}

/// The courses of a teacher, as rows (keys, the foreign key as its key), to the client.
#[fluxon::view]
async fn courses_of(
    req: fluxon::Request,
    teacher: i64,
) -> Result<Vec<Row<Course>>, fluxon::ViewError> {
    Ok(req
        .db()?
        .check(Course::teacher.eq(teacher))
        .order_by(Course::title.asc())
        .all()
        .await?)
}

async fn rows_go_over_the_wire_with_their_keys(backend: Backend) {
    let (db, _dir) = async_database_on(backend).await;
    let ada = db.insert(&teacher("Ada")).await.unwrap();
    let engines = db.insert(&course("Engines", ada)).await.unwrap();
    let router = fluxon::Router::new()
        .state(db.clone())
        .mapping(fluxon::views![courses_of])
        .unwrap();
    let server = fluxon::AsyncServer::new(0)
        .router(router)
        .start()
        .await
        .unwrap();
    let conn = fluxon::ConnectionHandler::connect(server.local_addr().to_string())
        .await
        .unwrap();
    let rows = conn.call(courses_of, &ada).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, engines);
    assert_eq!(rows[0].title, "Engines");
    assert_eq!(rows[0].teacher, ForeignKey::new(ada));
    conn.close().await;
    server.shutdown().await;
}

crate::backends!(sync: every_read_gives_each_row_its_key, get_by_key_and_a_missing_key_is_none, save_writes_every_field_back_and_only_to_that_row, save_sets_auto_now_and_keeps_auto_now_add, save_or_delete_of_a_row_deleted_meanwhile_says_so_and_writes_nothing, delete_row_deletes_that_row_and_cascades, joins_and_many_to_many_lists_give_keys_on_both_sides; async: the_async_database_gives_the_same_rows, rows_go_over_the_wire_with_their_keys);
