//! See `fluxon::fuzzing::payload_depth`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fluxon::fuzzing::payload_depth(data));
