use fluxon::db::Model;

#[derive(Model)]
#[model(authorized_user)]
struct User {
    username: String,
    password: String,
}

fn main() {}
