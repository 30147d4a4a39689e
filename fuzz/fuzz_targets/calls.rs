//! Differential fuzzing of the mirror functions against libc; see
//! `safesock_fuzz::calls` for what is compared.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safesock_fuzz::calls::run(data));
