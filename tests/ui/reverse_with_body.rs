use fluxon::reverse;

#[reverse]
pub async fn receive_message(text: String, from: String) -> u32 {
    0
}

fn main() {}
