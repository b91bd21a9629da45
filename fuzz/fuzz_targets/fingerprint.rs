#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tofu_core_fuzz::fingerprint(data));
