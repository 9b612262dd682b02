#![no_main]
// Arbitrary bytes through optsync's sns_string_to_sign entry point (crates/optsync/src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| optsync::fuzzing::run_named("sns_string_to_sign", data));
