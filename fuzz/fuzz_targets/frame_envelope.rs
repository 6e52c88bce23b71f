//! The frame decoder and the envelope: see `fluxon::fuzzing::frame_envelope`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fluxon::fuzzing::frame_envelope(data));
