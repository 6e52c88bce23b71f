use fluxon::db::Model;

#[derive(Model)]
struct User {
    username: String,
}

fn main() {
    let _ = User::nickname.eq("jack");
}
