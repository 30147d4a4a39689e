//! `ss_addr_parse` / `ss_addr_format` round trips; see `safesock_fuzz::addr`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safesock_fuzz::addr::run(data));
