use fluxon::{view, ConnectionHandler, Request};

#[view]
async fn add(_req: Request, pair: (i64, i64)) -> i64 {
    pair.0 + pair.1
}

async fn client(conn: ConnectionHandler) {
    let _ = conn.call(add, &"one and two".to_owned()).await;
}

fn main() {}
