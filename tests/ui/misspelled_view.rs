use fluxon::{view, views, Request, Router};

#[view]
async fn signup(_req: Request, name: String) -> String {
    name
}

fn main() {
    let _ = Router::new().mapping(views![sigup]);
}
