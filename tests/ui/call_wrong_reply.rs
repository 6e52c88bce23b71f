use fluxon::{view, ConnectionHandler, Request};

#[view]
async fn add(_req: Request, pair: (i64, i64)) -> i64 {
    pair.0 + pair.1
}

async fn client(conn: ConnectionHandler) {
    let sum: String = conn.call(add, &(1, 2)).await.unwrap();
}

fn main() {}
