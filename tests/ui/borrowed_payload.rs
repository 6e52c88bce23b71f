use fluxon::{view, Request};

#[view]
async fn shout(_req: Request, text: &str) -> String {
    text.to_uppercase()
}

fn main() {}
