use fluxon::db::{Database, Executor, Model};

#[derive(Model)]
struct Course {
    #[field(max_lenght = 100)]
    title: String,
    seats: u32,
}

// The model is used as if the derive had worked: only the typo above is reported.
fn big(db: &Database) -> Result<i64, fluxon::db::DbError> {
    db.create_tables(&[Course::SCHEMA])?;
    db.check(Course::seats.ge(30) & Course::title.eq("Logic")).count()
}

fn main() {}
