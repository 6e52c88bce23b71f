//! Cloud path normalization: see `fluxon::fuzzing::cloud_path`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fluxon::fuzzing::cloud_path(data));
