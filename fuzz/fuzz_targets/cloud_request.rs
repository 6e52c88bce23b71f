//! The cloud endpoint's request header: see `fluxon::fuzzing::cloud_request`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fluxon::fuzzing::cloud_request(data));
