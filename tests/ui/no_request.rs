use fluxon::view;

#[view]
async fn ping() -> u8 {
    1
}

fn main() {}
