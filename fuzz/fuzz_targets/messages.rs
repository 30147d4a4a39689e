//! Failure messages and name lookups on arbitrary arguments; see
//! `safesock_fuzz::messages`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safesock_fuzz::messages::run(data));
