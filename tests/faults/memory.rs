//! Bad pointers handed to the helpers. The differential suite already gives
//! every pointer argument of the 23 mirror functions each kind of wild
//! pointer; this adds the helpers: `ss_send_all`/`ss_recv_exact` with wild
//! buffers and buffers that run into a fault part way (compared with a loop
//! of plain calls, including how many bytes moved before the fault and what
//! the peer got), and every pointer argument of the address helpers with
//! every kind of wild pointer (NULL, 0x1, a munmapped page, a PROT_NONE
//! page, a kernel address, a read-only page for outputs). Each must fail
//! with an errno and a message, never crash.

use std::ffi::{c_char, c_int, c_void};

use libc::{sockaddr, sockaddr_storage, socklen_t};
use safesock::ffi;

use crate::common::{
    Api, BadMemory, Outcome, SIN_LEN, Wild, as_sa, bytes_before_fault, loopback, mirrored_tcp_pair, plain_send, queued,
    wait_queued,
};

/// A loop of plain `send` over `len` bytes at `buf`, as `ss_send_all`
/// documents itself: returns the outcome and the bytes moved.
fn libc_send_all(fd: c_int, buf: *const u8, len: usize) -> (Outcome, usize) {
    let mut done = 0;
    while done < len {
        // SAFETY: the pointer only reaches the kernel, which checks it.
        let n = unsafe { libc::send(fd, buf.wrapping_add(done).cast(), len - done, libc::MSG_NOSIGNAL) };
        if n < 0 {
            return (Outcome::of(-1), done);
        }
        done += n as usize;
    }
    (Outcome::of(len as i64), done)
}

/// A loop of plain `read` into `len` bytes at `buf`, as `ss_recv_exact` documents itself.
fn libc_recv_exact(fd: c_int, buf: *mut u8, len: usize) -> (Outcome, usize) {
    let mut done = 0;
    while done < len {
        // SAFETY: the pointer only reaches the kernel, which checks it.
        let n = unsafe { libc::read(fd, buf.wrapping_add(done).cast(), len - done) };
        if n <= 0 {
            return (Outcome::of(if n == 0 { done as i64 } else { -1 }), done);
        }
        done += n as usize;
    }
    (Outcome::of(len as i64), done)
}

/// One helper call on a fresh TCP connection through `api`; returns the
/// outcome, the bytes moved (`ss_transferred()`), and what the other end
/// then holds (the bytes that arrived for a send, the bytes still queued
/// for a receive).
fn helper_on_connection(api: Api, recv: bool, buf: *mut u8, len: usize) -> (Outcome, usize, usize) {
    let (client, server) = mirrored_tcp_pair(api);
    let (fd, peer) = (client.raw(), server.raw());
    if recv {
        plain_send(peer, &[b'q'; 16]);
        wait_queued(fd, 16);
    }
    let (outcome, moved) = match (api, recv) {
        (Api::Ss, _) => {
            // SAFETY: the pointer only reaches the kernel, which checks it.
            let ret = unsafe {
                if recv {
                    ffi::ss_recv_exact(fd, buf.cast(), len)
                } else {
                    ffi::ss_send_all(fd, buf.cast(), len)
                }
            };
            (Outcome::of(ret as i64), ffi::ss_transferred())
        }
        (Api::Libc, true) => libc_recv_exact(fd, buf, len),
        (Api::Libc, false) => libc_send_all(fd, buf, len),
    };
    let left = if recv {
        queued(fd)
    } else {
        if moved > 0 {
            wait_queued(peer, moved);
        }
        queued(peer)
    };
    (outcome, moved, left)
}

#[test]
fn ss_send_all_and_ss_recv_exact_with_bad_buffers_fail_like_a_loop_of_libc_calls() {
    let mut bad = BadMemory::new();
    let page = bad.readable_first_page();
    // 10 writable bytes, then the unmapped page.
    let end = page.len();
    let straddling_out = page[end - 10..].as_mut_ptr();
    let mut buffers: Vec<(String, bool, *mut u8)> = Vec::new();
    for wild in Wild::FOR_INPUT {
        buffers.push((format!("ss_send_all, {}", wild.name()), false, wild.ptr()));
    }
    buffers.push((
        "ss_send_all, 10 bytes before a fault".into(),
        false,
        bytes_before_fault::<u8>(10).cast_mut(),
    ));
    for wild in Wild::FOR_OUTPUT {
        buffers.push((format!("ss_recv_exact, {}", wild.name()), true, wild.ptr()));
    }
    buffers.push(("ss_recv_exact, 10 bytes before a fault".into(), true, straddling_out));
    let mut seen = Vec::new();
    for (what, recv, buf) in buffers {
        let (libc_outcome, libc_moved, libc_left) = helper_on_connection(Api::Libc, recv, buf, 16);
        let (ss, moved, left) = helper_on_connection(Api::Ss, recv, buf, 16);
        assert_eq!(
            (libc_outcome.result(), libc_moved, libc_left),
            (ss.result(), moved, left),
            "{what}: (result, bytes moved, bytes at the other end), libc loop vs helper"
        );
        let call = if recv { "ss_recv_exact(fd " } else { "ss_send_all(fd " };
        let partial = format!("{moved} bytes were moved");
        let words: &[&str] = if moved > 0 { &["EFAULT", &partial] } else { &["EFAULT"] };
        ss.expect_failure(libc::EFAULT, call, words);
        seen.push(format!("{what}: {:?}, moved {moved}, other end {left}", ss.result()));
    }
    eprintln!("{}", seen.join("\n"));
}

/// A helper call with one pointer argument replaced by `wild`.
type WildCall = fn(*mut c_void) -> c_int;

/// Every pointer argument of the address helpers: the function, the wild
/// pointers tried there, what NULL gives there (`EINVAL` for address text
/// by the contract, 0 for an `outlen` that may be NULL; every other wild
/// pointer gives `EFAULT`), and the call.
const WILD_CALLS: &[(&str, &[Wild], c_int, WildCall)] = &[
    ("ss_tcp_listen", &Wild::FOR_INPUT, libc::EINVAL, |p| {
        // SAFETY: the text pointer is read through the kernel.
        unsafe { ffi::ss_tcp_listen(p.cast::<c_char>(), 1) }
    }),
    ("ss_tcp_connect", &Wild::FOR_INPUT, libc::EINVAL, |p| {
        // SAFETY: as above.
        unsafe { ffi::ss_tcp_connect(p.cast::<c_char>(), 100) }
    }),
    ("ss_udp_bind", &Wild::FOR_INPUT, libc::EINVAL, |p| {
        // SAFETY: as above.
        unsafe { ffi::ss_udp_bind(p.cast::<c_char>()) }
    }),
    ("ss_addr_parse", &Wild::FOR_INPUT, libc::EINVAL, |p| {
        let mut out = std::mem::MaybeUninit::<sockaddr_storage>::uninit();
        let mut len: socklen_t = 0;
        // SAFETY: the text is read through the kernel; `out` and `len` are live locals.
        unsafe { ffi::ss_addr_parse(p.cast::<c_char>(), out.as_mut_ptr(), &mut len) }
    }),
    ("ss_addr_parse", &Wild::FOR_OUTPUT, libc::EFAULT, |p| {
        let mut len: socklen_t = 0;
        // SAFETY: `out` is written through the kernel; the text and `len` are live.
        unsafe { ffi::ss_addr_parse(c"127.0.0.1:1".as_ptr(), p.cast(), &mut len) }
    }),
    ("ss_addr_parse", &Wild::FOR_OUTPUT, 0, |p| {
        let mut out = std::mem::MaybeUninit::<sockaddr_storage>::uninit();
        // SAFETY: `outlen` is written through the kernel; the text and `out` are live.
        unsafe { ffi::ss_addr_parse(c"127.0.0.1:1".as_ptr(), out.as_mut_ptr(), p.cast()) }
    }),
    ("ss_addr_format", &Wild::FOR_INPUT, libc::EFAULT, |p| {
        let mut text = [0u8; 64];
        // SAFETY: the address is read through the kernel; `text` is a live local.
        unsafe { ffi::ss_addr_format(p.cast::<sockaddr>(), 16, text.as_mut_ptr().cast(), text.len()) }
    }),
    ("ss_addr_format", &Wild::FOR_OUTPUT, libc::EFAULT, |p| {
        let addr = loopback(80);
        // SAFETY: `buf` is written through the kernel; the address is a live local.
        unsafe { ffi::ss_addr_format(as_sa(&addr), SIN_LEN, p.cast(), 64) }
    }),
];

#[test]
fn every_address_helper_pointer_survives_every_wild_pointer() {
    let mut wrong = Vec::new();
    for (argument, &(name, wilds, null_gives, call)) in WILD_CALLS.iter().enumerate() {
        for &wild in wilds {
            let want = if matches!(wild, Wild::Null) {
                null_gives
            } else {
                libc::EFAULT
            };
            let outcome = Outcome::of(call(wild.ptr()));
            let ok = if want == 0 {
                outcome.ret >= 0
            } else {
                outcome.ret == -1 && outcome.errno == want && outcome.message.starts_with(&format!("{name}("))
            };
            if !ok {
                wrong.push(format!("{name}, pointer {argument} = {}: {outcome:?}", wild.name()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
