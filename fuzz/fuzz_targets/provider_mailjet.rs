#![no_main]
// Arbitrary bytes through optsync's provider_mailjet entry point (crates/optsync/src/fuzzing.rs).
libfuzzer_sys::fuzz_target!(|data: &[u8]| optsync::fuzzing::run_named("provider_mailjet", data));
