use fluxon::db::Model;

#[derive(Model)]
struct User {
    #[field(primary_key)]
    username: String,
    #[field(primary_key, auto)]
    id: i64,
}

fn main() {}
