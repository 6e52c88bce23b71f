use fluxon::{views, Router};

async fn signup(_name: String) -> String {
    String::new()
}

fn main() {
    let _ = Router::new().mapping(views![signup]);
}
