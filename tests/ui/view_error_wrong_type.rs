use fluxon::{view, CallError, ConnectionHandler, Request};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum SeatError {
    Taken,
}

#[derive(Debug, Serialize, Deserialize)]
enum OrderError {
    OutOfStock,
}

#[view]
async fn book(_req: Request, seat: u32) -> Result<u32, SeatError> {
    if seat == 0 { Err(SeatError::Taken) } else { Ok(seat) }
}

async fn caller(conn: ConnectionHandler) {
    // `book` fails with a `SeatError`: matching its error as another type does not compile.
    if let Err(CallError::View(OrderError::OutOfStock)) = conn.call(book, &1).await {}
}

fn main() {}
