use fluxon::{view, Request};

struct Secret(u64);

#[view]
async fn reveal(_req: Request) -> Secret {
    Secret(7)
}

fn main() {}
