use fluxon::{view, Request};

#[view(path = "/signup")]
async fn signup(_req: Request, name: String) -> String {
    name
}

fn main() {}
