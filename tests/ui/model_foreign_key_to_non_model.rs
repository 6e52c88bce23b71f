use fluxon::db::{ForeignKey, Model};

struct Teacher {
    name: String,
}

#[derive(Model)]
struct Course {
    teacher: ForeignKey<Teacher>,
}

fn main() {}
