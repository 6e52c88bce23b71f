use fluxon::db::{Database, Executor, Model};

#[derive(Model)]
struct Teacher {
    name: String,
}

#[derive(Model)]
struct Course {
    title: String,
}

fn mixed() {
    let _ = Course::title.eq("Engines") & Teacher::name.eq("Ada");
}

fn update(db: &Database) {
    let _ = db.update(vec![Course::title.set("x")], Teacher::name.eq("Ada"));
}

fn main() {}
