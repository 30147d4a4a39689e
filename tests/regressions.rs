//! What fuzzing found (`fuzz/regressions/`), each in its smallest form and
//! fixed, kept as a test so it stays fixed; and work for the sanitizer runs
//! (`scripts/sanitize.sh`).
//!
//! - [`descriptor_numbers_recycled_across_threads`]: threads create, write
//!   through and close sockets as fast as they can, so the kernel hands the
//!   same numbers to different threads in turn and safesock's descriptor
//!   table sees the same slots claimed, handed out and classified from
//!   several threads at once (what ThreadSanitizer needs to watch).
//! - The `finding_*` tests: each is the smallest form of a fuzzing finding,
//!   with the expected behaviour from API.md.

#![deny(clippy::undocumented_unsafe_blocks)]

mod common;

use common::{Ended, errno, last_error, no_forks, run_forked};
use safesock::ffi;

#[test]
fn descriptor_numbers_recycled_across_threads() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 300;
    // A process started meanwhile by another test holds a copy of every
    // descriptor until it execs, which keeps a closed peer alive and lets
    // the write after the close succeed: no child may start during the run.
    let _quiet = no_forks();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                for round in 0..ROUNDS {
                    let mut sv = [-1; 2];
                    let ty = if (round + t) % 2 == 0 {
                        libc::SOCK_STREAM
                    } else {
                        libc::SOCK_DGRAM
                    };
                    // SAFETY: `sv` has room for two descriptors.
                    let rc = unsafe { ffi::ss_socketpair(libc::AF_UNIX, ty | libc::SOCK_NONBLOCK, 0, sv.as_mut_ptr()) };
                    assert_eq!(rc, 0, "ss_socketpair: errno {}", errno());
                    // SAFETY: a one-byte static buffer.
                    let n = unsafe { ffi::ss_write(sv[0], b"x".as_ptr().cast(), 1) };
                    assert_eq!(n, 1, "ss_write: errno {}", errno());
                    assert_eq!(ffi::ss_close(sv[1]), 0);
                    // The peer is gone: EPIPE on a stream, never SIGPIPE (a
                    // raised one would end the test binary). A datagram
                    // socket answers ECONNREFUSED, or may take one more
                    // datagram while the kernel is still tearing the peer down.
                    // SAFETY: as above.
                    let n = unsafe { ffi::ss_write(sv[0], b"x".as_ptr().cast(), 1) };
                    if ty == libc::SOCK_STREAM || n == -1 {
                        assert_eq!(n, -1);
                        assert!(matches!(errno(), libc::EPIPE | libc::ECONNREFUSED), "errno {}", errno());
                    }
                    // (No second ss_close here: another thread may already
                    // have been handed the number, and that close would be
                    // a legitimate one of its descriptor.)
                    assert_eq!(ffi::ss_close(sv[0]), 0);
                }
            });
        }
    });
}

/// Found by `fuzz/` (calls, addr, messages): `FixedBuf::push_cut` writes
/// `...` past the end of its buffer when the text already stands within 3
/// bytes of the capacity, so a message that fills the 512-byte buffer that
/// way panics (index out of range in src/fmtbuf.rs) and `ss_last_error()`
/// returns `""`. Expected: the message, cut with `...`, at most 511 bytes.
/// The same code builds trace lines (`FixedBuf<640>`) outside the panic
/// boundary, where such a panic would abort the process.
#[test]
fn finding_long_message_is_cut_not_lost() {
    let fd = ffi::ss_socket(libc::AF_INET6, libc::SOCK_STREAM, 0);
    assert!(fd >= 0);
    // An AF_UNIX address of the largest length whose name is all NUL bytes:
    // each is printed as \x00, more than a message holds.
    let mut a = [0u8; 128];
    a[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
    // SAFETY: a local address of 128 bytes, of which 110 are passed.
    let r = unsafe { ffi::ss_bind(fd, a.as_ptr().cast(), 110) };
    assert_eq!(r, -1);
    assert_eq!(errno(), libc::EAFNOSUPPORT);
    let m = last_error();
    ffi::ss_close(fd);
    assert!(m.starts_with("ss_bind(fd "), "{m:?}");
    // The decoded arguments are cut; the system's text and errno name stay.
    assert!(
        m.len() <= 511 && m.contains("...") && m.contains("(EAFNOSUPPORT)"),
        "{m:?}"
    );
}

/// Found by `fuzz/` (calls): `ss_write(fd, buf, 0)` on a number safesock
/// last saw as a non-stream descriptor, which now holds a stream socket that
/// cannot send (unconnected, shut down or peer gone; the number was closed
/// and reused behind safesock's back), uses plain `write`, and the kernel
/// raises SIGPIPE. `ss_send_all(fd, buf, 0)` too. Expected (API.md safety
/// default 2, and the README on Linux 6.18): -1/EPIPE, no SIGPIPE.
#[test]
fn finding_zero_length_write_on_reused_number_raises_no_sigpipe() {
    // In a single-threaded child, so that no other test takes the number
    // between the close and the reuse.
    let report = run_forked(|| {
        // SIGPIPE blocked: a raised one stays pending and is seen.
        // SAFETY: sigset_t is plain data; the calls only change this thread's mask.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGPIPE);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            let u = ffi::ss_socket(libc::AF_INET, libc::SOCK_DGRAM, 0); // learnt: not a stream
            libc::close(u); // closed behind safesock's back
            let t = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert_eq!(t, u, "the number was reused");
            let r = ffi::ss_write(t, b"x".as_ptr().cast(), 0);
            let e = errno();
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            let raised = libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) == libc::SIGPIPE;
            libc::close(t);
            assert!(!raised, "ss_write(fd, buf, 0) on a socket raised SIGPIPE");
            assert_eq!((r, e), (-1, libc::EPIPE));
        }
        String::new()
    });
    assert_eq!(report.ended, Ended::Exited(0), "{}", report.output);
}

/// Found by `fuzz/` (addr): `ss_addr_format` prints AF_UNIX addresses that
/// `ss_addr_parse` refuses, though the header calls them exact inverses: an
/// abstract name with `addrlen` 111..=128 (longer than `sockaddr_un`; the
/// kernel refuses such an address with EINVAL) and a path that fills all 108
/// bytes of `sun_path` without a NUL. Expected: format refuses the first
/// with EINVAL, and what it prints parses back.
#[test]
fn finding_formatted_unix_addresses_parse_back() {
    let mut a = [b'a'; 128];
    a[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
    a[2] = 0; // abstract
    let mut buf = [0u8; 512];
    // SAFETY: a local address and buffer of the sizes given.
    let r = unsafe { ffi::ss_addr_format(a.as_ptr().cast(), 112, buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(
        (r, errno()),
        (-1, libc::EINVAL),
        "addrlen 112 is longer than sockaddr_un"
    );

    a[2] = b'a'; // a path of 108 bytes, no NUL
    // SAFETY: as above.
    let r = unsafe { ffi::ss_addr_format(a.as_ptr().cast(), 110, buf.as_mut_ptr().cast(), buf.len()) };
    assert!(r > 0);
    let mut out: libc::sockaddr_storage = unsafe_zeroed();
    let mut len: libc::socklen_t = 0;
    // SAFETY: `buf` holds the NUL-terminated text; local out-parameters.
    let p = unsafe { ffi::ss_addr_parse(buf.as_ptr().cast(), &mut out, &mut len) };
    assert_eq!(p, 0, "the formatted path does not parse back: {}", last_error());
}

/// Found by `fuzz/` (messages, with `SAFESOCK_TRACE` set): the trace line
/// is built in a `FixedBuf<640>` with the same `push_cut` bug, and it is
/// built outside the panic boundary, so the panic cannot be contained: a
/// failing call with a long decoded argument (here `ss_tcp_connect` of text
/// with control characters, each shown as `\u{7f}`) aborts the process.
/// Expected: a trace line cut with `...`, and the call returns -1/EINVAL.
/// The check runs in a child (this test binary again, with the variable
/// set), since tracing is decided once per process.
#[test]
fn finding_long_trace_line_does_not_abort() {
    // The child holds copies of this process's descriptors until it execs.
    let _quiet = no_forks();
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            "trace_child_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SAFESOCK_TRACE", "/dev/null")
        .output()
        .expect("the test binary runs");
    assert!(
        out.status.success(),
        "the child died: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The child of [`finding_long_trace_line_does_not_abort`].
#[test]
#[ignore = "run by finding_long_trace_line_does_not_abort with SAFESOCK_TRACE set"]
fn trace_child_entry() {
    for n in 1..=200 {
        let mut text = vec![0x7f_u8; n];
        text.push(0);
        // SAFETY: NUL-terminated text.
        let r = unsafe { ffi::ss_tcp_connect(text.as_ptr().cast(), 10) };
        assert_eq!((r, errno()), (-1, libc::EINVAL), "{n} bytes");
    }
}

/// Found by `fuzz/` (calls): after a non-blocking connect to loopback port
/// 0 (EINPROGRESS, then refused), `ss_tcp_state` succeeds with
/// `SS_TCP_CLOSE` but leaves `errno == ENOTCONN`: its TIME_WAIT check asks
/// for the peer name, which fails, and the errno of that inner call leaks
/// out of a successful call. Expected: a success leaves `errno` alone.
#[test]
fn finding_successful_tcp_state_leaves_errno_alone() {
    let fd = ffi::ss_socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
    assert!(fd >= 0);
    let mut sin: libc::sockaddr_in = unsafe_zeroed_in();
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = 0;
    sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    // SAFETY: a local address of the size given.
    let r = unsafe { ffi::ss_connect(fd, (&raw const sin).cast(), size_of::<libc::sockaddr_in>() as u32) };
    assert_eq!((r, errno()), (-1, libc::EINPROGRESS));
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one local pollfd.
    unsafe { libc::poll(&mut p, 1, 1000) };
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() = 0 };
    let state = ffi::ss_tcp_state(fd);
    let e = errno();
    ffi::ss_close(fd);
    assert_eq!(state, ffi::SS_TCP_CLOSE);
    assert_eq!(e, 0, "a successful ss_tcp_state set errno to {e}");
}

fn unsafe_zeroed_in() -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

fn unsafe_zeroed() -> libc::sockaddr_storage {
    // SAFETY: sockaddr_storage is plain data; all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Found by `fuzz/` (calls): for some IPv6 options (`IPV6_HOPOPTS` and
/// friends) with `optlen` in read-only memory the kernel's getsockopt returns
/// a positive count instead of failing, and libc passes it through; safesock
/// returned 0. Expected (the drop-in rule): the same return value and errno.
#[test]
fn finding_getsockopt_passes_positive_kernel_returns_through() {
    // SAFETY: a fresh private page, filled with a length of 64, then made
    // read-only; unmapped at the end.
    let page = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        p.cast::<libc::socklen_t>().write(64);
        assert_eq!(libc::mprotect(p, 4096, libc::PROT_READ), 0);
        p
    };
    let optlen_ptr = page.cast::<libc::socklen_t>();
    let mut positive = 0;
    for option in [54, 55, 57, 59] {
        let mut value = [0u8; 64];
        // SAFETY: plain integers.
        let plain = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        let ours = ffi::ss_socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
        assert!(plain >= 0 && ours >= 0);
        // SAFETY: the value buffer is local; optlen points into a read-only
        // page the kernel checks.
        let want =
            unsafe { libc::getsockopt(plain, libc::IPPROTO_IPV6, option, value.as_mut_ptr().cast(), optlen_ptr) };
        let want_errno = errno();
        // SAFETY: as above.
        let got =
            unsafe { ffi::ss_getsockopt(ours, libc::IPPROTO_IPV6, option, value.as_mut_ptr().cast(), optlen_ptr) };
        let got_errno = errno();
        // SAFETY: our own plain descriptor.
        unsafe { libc::close(plain) };
        assert_eq!(ffi::ss_close(ours), 0);
        assert_eq!(got, want, "option {option}: return value");
        positive += usize::from(want > 0);
        if want < 0 {
            assert_eq!(got_errno, want_errno, "option {option}: errno");
        }
    }
    // SAFETY: the page mapped above, no longer used.
    unsafe { libc::munmap(page, 4096) };
    assert!(
        positive > 0,
        "the kernel no longer returns a positive count here: the case tests nothing"
    );
}

/// Found by `fuzz/` (calls, a 15-minute campaign): after `ss_close(x)` and a
/// plain `dup` that reuses the number `x`, an `ss_send_all(x, ...)` that
/// moves some bytes and then fails with EAGAIN made the next `ss_close(x)`
/// close the dup. Only a *successful* `ss_` call marks a number in use again
/// (API.md safety default 3); the helper's inner writes succeeded, the call
/// did not. Expected: `ss_close(x)` refused with -1/EBADF, the dup still open.
#[test]
fn finding_partial_send_all_does_not_unlock_a_closed_number() {
    let report = run_forked(|| {
        let mut sv = [-1; 2];
        // SAFETY: `sv` has room for two descriptors.
        let rc = unsafe {
            ffi::ss_socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
                0,
                sv.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0);
        let x = ffi::ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert_eq!(ffi::ss_close(x), 0);
        // SAFETY: a plain dup of our own socket; it takes the lowest free number.
        let d = unsafe { libc::dup(sv[0]) };
        assert_eq!(d, x, "the dup reuses the closed number");
        let big = vec![7u8; 8 << 20];
        // SAFETY: a live buffer of the length given.
        let r = unsafe { ffi::ss_send_all(d, big.as_ptr().cast(), big.len()) };
        let e = errno();
        let moved = ffi::ss_transferred();
        assert_eq!((r, e), (-1, libc::EAGAIN));
        assert!(moved > 0, "some bytes were moved before EAGAIN");
        let closed = ffi::ss_close(d);
        let e = errno();
        // SAFETY: F_GETFD takes no pointer.
        let still_open = unsafe { libc::fcntl(d, libc::F_GETFD) } >= 0;
        // SAFETY: our own descriptors.
        unsafe {
            libc::close(d);
        }
        assert_eq!(ffi::ss_close(sv[0]), 0);
        assert_eq!(ffi::ss_close(sv[1]), 0);
        assert_eq!(
            (closed, e),
            (-1, libc::EBADF),
            "the failed ss_send_all unlocked ss_close"
        );
        assert!(still_open, "the refused ss_close closed the dup");
        String::new()
    });
    assert_eq!(report.ended, Ended::Exited(0), "{}", report.output);
}
