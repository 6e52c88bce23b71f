use fluxon::db::Model;

#[derive(Model)]
struct Course {
    #[field(primary_key, auto)]
    id: i64,
    title: String,
}

#[derive(Model)]
struct Teacher {
    name: String,
}

fn main() {
    let _ = Course::id.set(7);
    let _ = Teacher::id.set(7);
}
