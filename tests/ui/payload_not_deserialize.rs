use fluxon::{view, Request};

struct Form {
    name: String,
}

#[view]
async fn signup(_req: Request, form: Form) -> String {
    form.name
}

fn main() {}
