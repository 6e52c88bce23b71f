use fluxon::{view, Request};

struct Api;

impl Api {
    #[view]
    async fn hello(&self, _req: Request) -> u8 {
        1
    }
}

fn main() {}
