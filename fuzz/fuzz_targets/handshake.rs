//! The server's handshake decision: see `fluxon::fuzzing::handshake`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fluxon::fuzzing::handshake(data));
