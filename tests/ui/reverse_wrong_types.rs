use fluxon::{reverse, ConnectionHandler, ServerHandle};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Message {
    pub text: String,
}

#[derive(Serialize, Deserialize)]
pub enum Ack {
    Shown,
}

#[reverse]
pub async fn receive_message(message: Message) -> Ack;

async fn server_side(server: ServerHandle) {
    // The payload is a `Message`, not a string.
    server.reverse_request(1, receive_message, &"hello".to_owned()).await;
    // The reply is an `Ack`, not a number.
    let _: u32 = server
        .reverse_call(1, receive_message, &Message { text: "hi".into() }, std::time::Duration::from_secs(1))
        .await
        .unwrap();
}

fn client_side(conn: &ConnectionHandler) {
    // A handler that takes something else.
    conn.on(receive_message, |text: String| async move { Ack::Shown });
}

fn main() {}
