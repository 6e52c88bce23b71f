use fluxon::db::Model;

#[derive(Model)]
struct Teacher {
    name: String,
}

struct Course;

const MODELS: [fluxon::db::TableSchema; 2] = fluxon::models![Teacher, Course];

fn main() {
    let _ = MODELS;
}
