use fluxon::{view, Request};

#[view]
fn nap(_req: Request, ms: u64) -> u64 {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    ms
}

fn main() {}
