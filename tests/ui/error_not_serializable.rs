use fluxon::{view, Request};

struct Oops;

#[view]
async fn try_it(_req: Request, n: u32) -> Result<u32, Oops> {
    if n > 3 { Err(Oops) } else { Ok(n) }
}

fn main() {}
