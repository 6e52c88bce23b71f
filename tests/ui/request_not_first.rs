use fluxon::{view, Request};

#[view]
async fn signup(name: String, _req: Request) -> String {
    name
}

fn main() {}
