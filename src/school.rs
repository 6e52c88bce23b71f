//! The school app's models (the original Fluxon README's User, Teacher, Course, Student,
//! Enrollment), shared by `examples/school.rs`, the repository's `migrations/` and the tests.

use fluxon::auth::PasswordHasher;
use fluxon::db::{
    AsyncDatabase, Executor, ForeignKey, ManyToMany, Model, OffsetDateTime, Password, TableSchema,
};
use fluxon::{view, views, OrUser, Request, Router, RouterError, ViewError};

/// Staff who may log in.
#[derive(Model, Debug)]
#[model(authorized_user)]
pub struct User {
    #[field(max_length = 30, unique)]
    pub username: String,
    pub password: Password,
}

/// A teacher.
#[derive(Model, Debug)]
pub struct Teacher {
    #[field(max_length = 50, unique)]
    pub name: String,
    #[field(max_length = 50)]
    pub subject: String,
}

/// A course, taught by one teacher.
#[derive(Model, Debug)]
pub struct Course {
    #[field(max_length = 100)]
    pub title: String,
    #[field(on_delete = cascade)]
    pub teacher: ForeignKey<Teacher>,
    #[field(default = 20)]
    pub seats: u32,
}

/// A student, enrolled in courses.
#[derive(Model, Debug)]
pub struct Student {
    #[field(max_length = 50)]
    pub name: String,
    pub grade: u32,
    pub courses: ManyToMany<Course, Enrollment>,
}

/// A student's place in a course (the join model of `Student::courses`).
#[derive(Model, Debug)]
pub struct Enrollment {
    #[field(on_delete = cascade)]
    pub student: ForeignKey<Student>,
    #[field(on_delete = cascade)]
    pub course: ForeignKey<Course>,
    #[field(auto_now_add)]
    pub joined: OffsetDateTime,
}

/// Every school model (in any order: references are sorted out where it matters).
pub const MODELS: [TableSchema; 5] = fluxon::models![Enrollment, Student, Course, Teacher, User];

async fn staff_only(req: &Request) -> Result<(), ViewError> {
    req.user::<User>().await?.or_user("log in first")?;
    Ok(())
}

/// The first staff member, made by an administrator (`cargo run -- createstaff NAME`, or a setup
/// script), never by a view anyone can call: an open signup would make anyone staff. The password
/// is hashed off the runtime's threads.
pub async fn create_staff(
    db: &AsyncDatabase,
    username: &str,
    password: &str,
) -> Result<i64, Box<dyn std::error::Error + Send + Sync>> {
    let hasher = PasswordHasher::new(1, None, std::time::Duration::from_secs(60));
    let password = hasher.hash(password).await?;
    let user = User {
        username: username.to_owned(),
        password,
    };
    Ok(db.insert(&user).await?)
}

/// Staff add staff: only a logged-in staff member may (the password hashed within the server's
/// hashing bound, off the runtime).
#[view]
pub async fn add_staff(
    req: Request,
    (username, password): (String, String),
) -> Result<i64, ViewError> {
    staff_only(&req).await?;
    let password = req.hash_password(&password).await?;
    Ok(req.db()?.insert(&User { username, password }).await?)
}

#[view]
pub async fn login(req: Request, (username, password): (String, String)) -> Result<i64, ViewError> {
    Ok(req
        .login_with_password::<User>(&username, &password)
        .await?)
}

#[view]
pub async fn add_teacher(
    req: Request,
    (name, subject): (String, String),
) -> Result<i64, ViewError> {
    staff_only(&req).await?;
    Ok(req.db()?.insert(&Teacher { name, subject }).await?)
}

#[view]
pub async fn add_course(
    req: Request,
    (title, teacher, seats): (String, i64, u32),
) -> Result<i64, ViewError> {
    staff_only(&req).await?;
    let teacher = teacher.into();
    Ok(req
        .db()?
        .insert(&Course {
            title,
            teacher,
            seats,
        })
        .await?)
}

#[view]
pub async fn add_student(req: Request, (name, grade): (String, u32)) -> Result<i64, ViewError> {
    staff_only(&req).await?;
    let courses = Default::default();
    Ok(req
        .db()?
        .insert(&Student {
            name,
            grade,
            courses,
        })
        .await?)
}

#[view]
pub async fn enrol(req: Request, (student, course): (i64, i64)) -> Result<(), ViewError> {
    staff_only(&req).await?;
    req.db()?
        .execute(Student::courses.add(student, course))
        .await?;
    Ok(())
}

/// The titles of a student's courses (through Enrollment).
#[view]
pub async fn courses_of(req: Request, student: i64) -> Result<Vec<String>, ViewError> {
    let courses = req.db()?.execute(Student::courses.list(student)).await?;
    Ok(courses.into_iter().map(|c| c.fields.title).collect())
}

/// Courses with at least `min_seats` seats whose title contains either word. The words are
/// matched as they are (`contains` escapes `%` and `_`), never spliced into a LIKE pattern.
#[view]
pub async fn search(
    req: Request,
    (min_seats, a, b): (u32, String, String),
) -> Result<Vec<String>, ViewError> {
    let filter =
        Course::seats.ge(min_seats) & (Course::title.contains(a) | Course::title.contains(b));
    let found = req
        .db()?
        .check(filter)
        .order_by(Course::title.asc())
        .all()
        .await?;
    Ok(found.into_iter().map(|c| c.fields.title).collect())
}

/// Every course with its teacher's name, in one query with a join.
#[view]
pub async fn catalogue(req: Request) -> Result<Vec<(String, String)>, ViewError> {
    let rows = req
        .db()?
        .check_all::<Course>()
        .order_by(Course::title.asc())
        .related(Course::teacher)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(course, teacher)| (course.fields.title, teacher.fields.name))
        .collect())
}

/// Deletes a teacher; their courses and those courses' enrollments go too (cascade).
#[view]
pub async fn remove_teacher(req: Request, name: String) -> Result<(usize, i64, i64), ViewError> {
    staff_only(&req).await?;
    let db = req.db()?;
    let removed = db.delete(Teacher::name.eq(name)).await?;
    let courses = db.check_all::<Course>().count().await?;
    let enrollments = db.check_all::<Enrollment>().count().await?;
    Ok((removed, courses, enrollments))
}

/// The school's views, serving `db`.
pub fn router(db: AsyncDatabase) -> Result<Router, RouterError> {
    Router::new().state(db).mapping(views![
        add_staff,
        login,
        add_teacher,
        add_course,
        add_student,
        enrol,
        courses_of,
        search,
        catalogue,
        remove_teacher
    ])
}
