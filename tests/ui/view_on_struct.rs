use fluxon::view;

#[view]
struct Signup {
    name: String,
}

fn main() {}
