//! The models the tests share, and a fresh database per test.

use fluxon::db::{
    AsyncDatabase, Database, Date, Decimal, Executor, ForeignKey, ManyToMany, Model,
    OffsetDateTime, Password, Time,
};

/// One field of every kind.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct Everything {
    #[field(max_length = 20)]
    pub char_field: String,
    pub text: String,
    pub int: i32,
    pub big: i64,
    pub positive: u32,
    pub float: f64,
    #[field(max_digits = 10, decimal_places = 3)]
    pub price: Decimal,
    pub flag: bool,
    pub day: Date,
    pub at: Time,
    pub when: OffsetDateTime,
    pub maybe: Option<String>,
    pub maybe_int: Option<i64>,
    #[field(auto_now_add)]
    pub created: OffsetDateTime,
    #[field(auto_now)]
    pub updated: OffsetDateTime,
}

#[derive(Model, Debug, Clone)]
#[model(authorized_user)]
pub struct User {
    #[field(max_length = 30, unique)]
    pub username: String,
    pub password: Password,
}

/// References itself (a mentor) and is referred to before `Student` is declared.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct Teacher {
    #[field(max_length = 50, unique)]
    pub name: String,
    #[field(on_delete = set_null)]
    pub mentor: Option<ForeignKey<Teacher>>,
}

#[derive(Model, Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Course {
    #[field(primary_key, auto)]
    pub id: i64,
    #[field(max_length = 100)]
    pub title: String,
    #[field(on_delete = cascade)]
    pub teacher: ForeignKey<Teacher>,
    #[field(default = 30)]
    pub seats: u32,
    pub students: ManyToMany<Student, Enrollment>,
}

#[derive(Model, Debug, Clone, PartialEq)]
pub struct Student {
    #[field(max_length = 50)]
    pub name: String,
    #[field(on_delete = protect)]
    pub advisor: Option<ForeignKey<Teacher>>,
}

#[derive(Model, Debug, Clone)]
pub struct Enrollment {
    #[field(on_delete = cascade)]
    pub student: ForeignKey<Student>,
    #[field(on_delete = cascade)]
    pub course: ForeignKey<Course>,
    #[field(auto_now_add)]
    pub joined: OffsetDateTime,
}

pub const ALL: [fluxon::db::TableSchema; 7] = [
    Everything::SCHEMA,
    User::SCHEMA,
    Teacher::SCHEMA,
    Course::SCHEMA,
    Student::SCHEMA,
    Enrollment::SCHEMA,
    Profile::SCHEMA,
];

pub use crate::postgres::{place, Backend};

/// A database on `backend` with every table.
pub fn database_on(backend: Backend) -> (Database, tempfile::TempDir) {
    let (place, dir) = place(backend);
    let db = Database::open(&place).expect("open");
    db.create_tables(&ALL).expect("tables");
    (db, dir)
}

pub async fn async_database_on(backend: Backend) -> (AsyncDatabase, tempfile::TempDir) {
    let (place, dir) = place(backend);
    let db = AsyncDatabase::open(&place).expect("open");
    db.create_tables(&ALL).await.expect("tables");
    (db, dir)
}

pub async fn async_database() -> (AsyncDatabase, tempfile::TempDir) {
    async_database_on(Backend::Sqlite).await
}

pub fn teacher(name: &str) -> Teacher {
    Teacher {
        name: name.to_owned(),
        mentor: None,
    }
}

pub fn course(title: &str, teacher: i64) -> Course {
    Course {
        id: 0,
        title: title.to_owned(),
        teacher: teacher.into(),
        seats: 30,
        students: Default::default(),
    }
}

pub fn student(name: &str) -> Student {
    Student {
        name: name.to_owned(),
        advisor: None,
    }
}

/// One profile per teacher (OneToOne), and rules for when a referenced row goes away.
#[derive(Model, Debug, Clone, PartialEq)]
pub struct Profile {
    #[field(on_delete = cascade)]
    pub teacher: fluxon::db::OneToOne<Teacher>,
    pub bio: String,
    /// Falls back to teacher 1 when its teacher is deleted.
    #[field(on_delete = set_default, default = 1)]
    pub backup: ForeignKey<Teacher>,
    /// Refuses the delete at commit, like protect but checked at the end of the transaction.
    #[field(on_delete = no_action)]
    pub reviewer: Option<ForeignKey<Teacher>>,
}
