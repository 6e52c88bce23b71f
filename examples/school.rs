//! School: the original Fluxon README's models (User, Teacher, Course, Student, Enrollment) in a
//! temporary SQLite file (or the PostgreSQL database `FLUXON_DATABASE_URL` names), served by
//! views and called by a client.
//!
//! `cargo run --example school` migrates a fresh database with the repository's `migrations/` (on
//! either backend), makes
//! the first staff member (an administrator's step, not a view), logs in, adds staff, creates
//! teachers and courses, enrols
//! students (many-to-many through Enrollment), searches with `&` and `|`, lists courses with their
//! teachers (a join), and deletes a teacher, whose courses and enrollments go with them (cascade).

use anyhow::Context;
use fluxon::db::AsyncDatabase;
use fluxon::{AsyncServer, ConnectionHandler};
use fluxon_apps::school::{
    add_course, add_staff, add_student, add_teacher, catalogue, courses_of, create_staff, enrol,
    login, remove_teacher, router, search, MODELS,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // `FLUXON_DATABASE_URL=postgres://user@host/db` runs it on PostgreSQL (an empty database);
    // by default, a SQLite file in a temp dir.
    let place = match std::env::var("FLUXON_DATABASE_URL") {
        Ok(url) => url,
        Err(_) => dir.path().join("school.sqlite3").display().to_string(),
    };
    // The repository's migrations make the schema on either backend (checked against the
    // models in CI): one history, each backend's SQL.
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let database = std::path::Path::new(&place);
    for (version, name) in fluxon::migrate::apply(database, &migrations, None)? {
        println!("migrated V{version}__{name}");
    }
    fluxon::migrate::check_drift(database, &MODELS)?;
    let db = AsyncDatabase::open(&place)?;
    // The first staff member comes from an administrator's step, not from a view anyone can call.
    create_staff(&db, "principal", "s3cret-enough")
        .await
        .map_err(|err| anyhow::anyhow!(err))?;
    let router = router(db)?;
    let server = AsyncServer::new(0).router(router).start().await?;
    let conn = ConnectionHandler::connect(server.local_addr().to_string()).await?;

    let refused = conn
        .call(add_teacher, &("Ada".into(), "Engines".into()))
        .await;
    println!(
        "add_teacher before login -> {}",
        refused.err().context("must be refused")?
    );
    let wrong = conn
        .call(login, &("principal".into(), "guess".into()))
        .await;
    println!(
        "login with a wrong password -> {}",
        wrong.err().context("must be refused")?
    );
    println!(
        "login -> user {}",
        conn.call(login, &("principal".into(), "s3cret-enough".into()))
            .await?
    );

    let secretary = conn
        .call(add_staff, &("secretary".into(), "another-s3cret".into()))
        .await?;
    println!("add_staff by the principal -> user {secretary}");

    let ada = conn
        .call(add_teacher, &("Ada".into(), "Engines".into()))
        .await?;
    let grace = conn
        .call(add_teacher, &("Grace".into(), "Compilers".into()))
        .await?;
    let engines = conn
        .call(add_course, &("Analytical Engines".into(), ada, 12))
        .await?;
    let looms = conn
        .call(add_course, &("Jacquard Looms".into(), ada, 40))
        .await?;
    let compilers = conn
        .call(add_course, &("Compilers".into(), grace, 30))
        .await?;
    let bo = conn.call(add_student, &("Bo".into(), 10)).await?;
    let cy = conn.call(add_student, &("Cy".into(), 11)).await?;
    for (student, course) in [(bo, engines), (bo, compilers), (cy, looms), (cy, compilers)] {
        conn.call(enrol, &(student, course)).await?;
    }
    println!("courses of Bo -> {:?}", conn.call(courses_of, &bo).await?);
    println!("courses of Cy -> {:?}", conn.call(courses_of, &cy).await?);
    let found = conn
        .call(search, &(20, "Loom".into(), "Compil".into()))
        .await?;
    println!("seats >= 20 & (title ~ Loom | title ~ Compil) -> {found:?}");
    println!(
        "catalogue (a join) -> {:?}",
        conn.call(catalogue, &()).await?
    );
    let (removed, courses, enrollments) = conn.call(remove_teacher, &"Ada".into()).await?;
    println!(
        "remove Ada -> {removed} teacher; {courses} course and {enrollments} enrollments left"
    );
    println!("courses of Bo -> {:?}", conn.call(courses_of, &bo).await?);

    conn.close().await;
    server.shutdown().await;
    println!("done");
    Ok(())
}
