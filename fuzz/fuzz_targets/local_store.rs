#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cleanplate_fuzz::local_store::local_store(data));
