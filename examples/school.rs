//! School: the original Fluxon README's models (User, Teacher, Course, Student, Enrollment) in a
//! temporary SQLite file, served by views and called by a client.
//!
//! `cargo run --example school` signs up and logs in, creates teachers and courses, enrols
//! students (many-to-many through Enrollment), searches with `&` and `|`, lists courses with their
//! teachers (a join), and deletes a teacher, whose courses and enrollments go with them (cascade).

use anyhow::Context;
use fluxon::db::{
    AsyncDatabase, DbError, Executor, ForeignKey, ManyToMany, Model, OffsetDateTime, Password,
};
use fluxon::{view, views, AsyncServer, ConnectionHandler, Request, Router};

#[derive(Model, Debug)]
#[model(authorized_user)]
struct User {
    #[field(max_length = 30, unique)]
    username: String,
    password: Password,
}

#[derive(Model, Debug)]
struct Teacher {
    #[field(max_length = 50, unique)]
    name: String,
    #[field(max_length = 50)]
    subject: String,
}

#[derive(Model, Debug)]
struct Course {
    #[field(max_length = 100)]
    title: String,
    #[field(on_delete = cascade)]
    teacher: ForeignKey<Teacher>,
    #[field(default = 20)]
    seats: u32,
}

#[derive(Model, Debug)]
struct Student {
    #[field(max_length = 50)]
    name: String,
    grade: u32,
    courses: ManyToMany<Course, Enrollment>,
}

#[derive(Model, Debug)]
struct Enrollment {
    #[field(on_delete = cascade)]
    student: ForeignKey<Student>,
    #[field(on_delete = cascade)]
    course: ForeignKey<Course>,
    #[field(auto_now_add)]
    joined: OffsetDateTime,
}

/// A view's database error, as the text its client sees.
fn text(err: DbError) -> String {
    err.to_string()
}

async fn staff_only(req: &Request) -> Result<(), String> {
    match req.user::<User>().await.map_err(text)? {
        Some(_) => Ok(()),
        None => Err("log in first".to_owned()),
    }
}

#[view]
async fn signup(req: Request, (username, password): (String, String)) -> Result<i64, String> {
    let password = Password::hash(&password).map_err(text)?;
    let user = User { username, password };
    req.db().map_err(text)?.insert(&user).await.map_err(text)
}

#[view]
async fn login(req: Request, (username, password): (String, String)) -> Result<i64, String> {
    req.login_with_password::<User>(&username, &password)
        .await
        .map_err(text)
}

#[view]
async fn add_teacher(req: Request, (name, subject): (String, String)) -> Result<i64, String> {
    staff_only(&req).await?;
    req.db()
        .map_err(text)?
        .insert(&Teacher { name, subject })
        .await
        .map_err(text)
}

#[view]
async fn add_course(
    req: Request,
    (title, teacher, seats): (String, i64, u32),
) -> Result<i64, String> {
    staff_only(&req).await?;
    let course = Course {
        title,
        teacher: teacher.into(),
        seats,
    };
    req.db().map_err(text)?.insert(&course).await.map_err(text)
}

#[view]
async fn add_student(req: Request, (name, grade): (String, u32)) -> Result<i64, String> {
    staff_only(&req).await?;
    let student = Student {
        name,
        grade,
        courses: Default::default(),
    };
    req.db().map_err(text)?.insert(&student).await.map_err(text)
}

#[view]
async fn enrol(req: Request, (student, course): (i64, i64)) -> Result<(), String> {
    staff_only(&req).await?;
    let db = req.db().map_err(text)?;
    db.execute(Student::courses.add(student, course))
        .await
        .map_err(text)?;
    Ok(())
}

/// The titles of a student's courses (through Enrollment).
#[view]
async fn courses_of(req: Request, student: i64) -> Result<Vec<String>, String> {
    let db = req.db().map_err(text)?;
    let courses = db
        .execute(Student::courses.list(student))
        .await
        .map_err(text)?;
    Ok(courses.into_iter().map(|c| c.title).collect())
}

/// Courses with at least `min_seats` seats whose title contains either word.
#[view]
async fn search(
    req: Request,
    (min_seats, a, b): (u32, String, String),
) -> Result<Vec<String>, String> {
    let db = req.db().map_err(text)?;
    let filter = Course::seats.ge(min_seats)
        & (Course::title.like(format!("%{a}%")) | Course::title.like(format!("%{b}%")));
    let found = db
        .check(filter)
        .order_by(Course::title.asc())
        .all()
        .await
        .map_err(text)?;
    Ok(found.into_iter().map(|c| c.title).collect())
}

/// Every course with its teacher's name, in one query with a join.
#[view]
async fn catalogue(req: Request) -> Result<Vec<(String, String)>, String> {
    let db = req.db().map_err(text)?;
    let rows = db
        .check_all::<Course>()
        .order_by(Course::title.asc())
        .related(Course::teacher)
        .await
        .map_err(text)?;
    Ok(rows
        .into_iter()
        .map(|(course, teacher)| (course.title, teacher.name))
        .collect())
}

/// Deletes a teacher; their courses and those courses' enrollments go too (cascade).
#[view]
async fn remove_teacher(req: Request, name: String) -> Result<(usize, i64, i64), String> {
    staff_only(&req).await?;
    let db = req.db().map_err(text)?;
    let removed = db.delete(Teacher::name.eq(name)).await.map_err(text)?;
    let courses = db.check_all::<Course>().count().await.map_err(text)?;
    let enrollments = db.check_all::<Enrollment>().count().await.map_err(text)?;
    Ok((removed, courses, enrollments))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = AsyncDatabase::open(dir.path().join("school.sqlite3"))?;
    db.create_tables(&[
        User::SCHEMA,
        Teacher::SCHEMA,
        Course::SCHEMA,
        Student::SCHEMA,
        Enrollment::SCHEMA,
    ])
    .await?;
    let router = Router::new().state(db).mapping(views![
        signup,
        login,
        add_teacher,
        add_course,
        add_student,
        enrol,
        courses_of,
        search,
        catalogue,
        remove_teacher
    ])?;
    let server = AsyncServer::new(0).router(router).start().await?;
    let conn = ConnectionHandler::connect(server.local_addr().to_string()).await?;

    let refused = conn
        .call(add_teacher, &("Ada".into(), "Engines".into()))
        .await;
    println!(
        "add_teacher before login -> {}",
        refused.err().context("must be refused")?
    );
    conn.call(signup, &("principal".into(), "s3cret-enough".into()))
        .await?;
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
