use fluxon::{view, Request};

#[view]
async fn add(_req: Request, a: i64, b: i64) -> i64 {
    a + b
}

fn main() {}
