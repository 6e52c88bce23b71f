use fluxon::db::Model;

#[derive(Model)]
#[model(tablename = "users")]
struct User {
    #[field(maxlen = 30)]
    username: String,
}

fn main() {}
