use fluxon::{view, Request};

#[view]
async fn echo<T: serde::Serialize>(_req: Request, value: T) -> T {
    value
}

fn main() {}
