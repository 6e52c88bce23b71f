use fluxon::db::Model;

#[derive(Model)]
struct User {
    #[field(max_length = 30)]
    username: String,
    age: u32,
}

fn main() {
    let _ = User::username.eq(5);
    let _ = User::age.gt("eighteen");
}
