use fluxon::db::{ForeignKey, Model};

#[derive(Model)]
struct Teacher {
    name: String,
}

#[derive(Model)]
struct Course {
    #[field(on_delete = set_null)]
    teacher: ForeignKey<Teacher>,
}

fn main() {}
