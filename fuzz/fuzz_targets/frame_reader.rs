//! See `fluxon::fuzzing::frame_reader`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fluxon::fuzzing::frame_reader(data));
