use fluxon::db::Model;

#[derive(Model)]
struct Course {
    #[field(max_length = 3)]
    seats: u32,
}

fn main() {}
