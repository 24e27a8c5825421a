#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| cleanplate_fuzz::image_decode(data));
