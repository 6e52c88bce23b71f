//! The blocking client, from a plain thread with no runtime of its own.

use fluxon::ErrorCode;

use crate::common::*;

#[test]
fn blocking_client_calls_logs_in_and_gets_typed_errors() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(start_default());
    let addr = server.local_addr().to_string();

    let conn = std::thread::spawn(move || {
        let conn = fluxon::blocking::ConnectionHandler::connect(addr).unwrap();
        assert_eq!(conn.call(add, &(20, 22)).unwrap(), 42);
        let by_name: String = conn
            .send_request("echo", &"plain thread".to_owned())
            .unwrap();
        assert_eq!(by_name, "plain thread");
        conn.call(login_as, &11).unwrap();
        assert_eq!(conn.call(whoami, &()).unwrap(), Some(11));
        let err = conn.call(boom, &()).unwrap_err();
        assert_eq!(err.code(), Some(ErrorCode::Panicked));
        assert!(conn.is_connected());
        conn.close();
        assert!(!conn.is_connected());
    });
    conn.join().unwrap();
    runtime.block_on(server.shutdown());
}
