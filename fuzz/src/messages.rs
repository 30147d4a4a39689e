//! The `messages` target: failing `ss_` calls with arbitrary arguments, and
//! the text each leaves in `ss_last_error`; `ss_errno_name` and
//! `ss_tcp_state_name` for any value; the text helpers on arbitrary strings.
//!
//! After every failing call the message must be valid UTF-8, NUL-terminated,
//! at most 511 bytes, start with the call's name and `(`, name the errno
//! (`(ECONNREFUSED)`), and never be an `internal error` (a contained panic);
//! a successful call must leave `errno` and the message alone. Wild pointers
//! are passed on purpose: a message decodes an address only after the kernel
//! has read it, and prints the pointer otherwise; reading one would crash.
//!
//! Nothing here reaches beyond this machine: calls that could send get a
//! descriptor that is not a socket or an address rewritten to loopback, and
//! a helper's text goes to the helper only if it is numeric loopback,
//! `localhost`, or text that fails before any lookup (no DNS query is ever
//! made).

use core::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use libc::{sockaddr, socklen_t};

use crate::calls::api::{errno, set_errno};
use crate::input::{ADDRESS_FAMILIES, Source};

const SENTINEL: c_int = 4242;

fn arena() -> &'static crate::arena::Arena {
    static A: OnceLock<crate::arena::Arena> = OnceLock::new();
    A.get_or_init(crate::arena::Arena::new)
}

/// Descriptors the calls act on, made once.
struct Fds {
    /// A pipe end: open, not a socket.
    pipe: c_int,
    /// A number ss_close closed.
    closed: c_int,
    /// An unbound TCP socket (connects go to loopback only).
    tcp: c_int,
    /// A bound UDP socket.
    udp: c_int,
    /// A listening TCP socket.
    listener: c_int,
    /// A port where nothing listens.
    dead_port: u16,
}

fn fds() -> &'static Fds {
    static F: OnceLock<Fds> = OnceLock::new();
    F.get_or_init(|| {
        crate::calls::world::block_sigpipe();
        let mut p = [-1; 2];
        // SAFETY: `p` has room for two descriptors.
        let rc = unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        assert_eq!(rc, 0, "pipe2");
        // A number ss_close closed (far above anything else here, so nothing reuses it).
        let s = safesock::ffi::ss_socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        // SAFETY: dup2 onto a number this process does not use; then the original goes.
        unsafe {
            libc::dup2(s, 600);
            libc::close(s);
        }
        safesock::ffi::ss_close(600);
        let closed = 600;
        let nb = libc::SOCK_NONBLOCK;
        let tcp = safesock::ffi::ss_socket(libc::AF_INET, libc::SOCK_STREAM | nb, 0);
        // SAFETY: NUL-terminated literals.
        let (udp, listener) = unsafe {
            (
                safesock::ffi::ss_udp_bind(c"127.0.0.1:0".as_ptr()),
                safesock::ffi::ss_tcp_listen(c"127.0.0.1:0".as_ptr(), 4),
            )
        };
        let dead = safesock::ffi::ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let (ss, len) = crate::calls::world::sockaddr_of(&"127.0.0.1:0".parse().expect("literal"));
        // SAFETY: a local address of the length given.
        unsafe { safesock::ffi::ss_bind(dead, (&raw const ss).cast(), len) };
        let dead_port = u16::try_from(safesock::ffi::ss_local_port(dead)).unwrap_or(9);
        for fd in [udp, listener] {
            // SAFETY: fcntl with integer arguments.
            unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
        }
        Fds {
            pipe: p[1],
            closed,
            tcp,
            udp,
            listener,
            dead_port,
        }
    })
}

/// A descriptor choice: invalid numbers, a closed one, a non-socket, sockets.
fn fd(s: &mut Source<'_>) -> (c_int, bool) {
    let f = fds();
    match s.byte() % 10 {
        0 => (-1, false),
        1 => (c_int::MAX, false),
        2 => (c_int::MIN, false),
        3 => (f.closed, false),
        4 => (f.pipe, false),
        5 => (100_000, false),
        6 => (f.tcp, true),
        7 => (f.udp, true),
        8 => (f.listener, true),
        // Raw numbers, but never one this process may have open (stdin,
        // libFuzzer's files, the sockets above): a read there could block.
        _ => match s.u32() as c_int {
            v @ 0..100_000 => (v + 100_000, false),
            v => (v, false),
        },
    }
}

/// A pointer: NULL, valid memory, or wild.
fn ptr(s: &mut Source<'_>, valid: *mut u8) -> *mut c_void {
    match s.byte() % 6 {
        0 => core::ptr::null_mut(),
        1 | 2 => valid.cast(),
        3 => core::ptr::without_provenance_mut(1),
        4 => core::ptr::without_provenance_mut(0xffff_ffff_8000_0000),
        _ => arena().guard().cast(),
    }
}

/// Option levels for `ss_getsockopt`/`ss_setsockopt`, and one no level has.
const OPTION_LEVELS: &[c_int] = &[
    libc::SOL_SOCKET,
    libc::IPPROTO_TCP,
    libc::IPPROTO_IP,
    libc::IPPROTO_IPV6,
    -1,
];

/// Address bytes: arbitrary, made loopback-only when they go to a socket.
fn address(s: &mut Source<'_>, buf: &mut [u8; 256], to_socket: bool, dead_port: u16) -> socklen_t {
    let family = s.pick(ADDRESS_FAMILIES);
    buf.fill(0);
    buf[..2].copy_from_slice(&family.to_ne_bytes());
    let body = s.bytes(126);
    buf[2..2 + body.len()].copy_from_slice(&body);
    if to_socket {
        if c_int::from(family) == libc::AF_UNIX {
            buf[2] = 0;
            buf[3..7].copy_from_slice(b"ssfm");
        } else {
            buf[2..4].copy_from_slice(&dead_port.to_be_bytes());
            if c_int::from(family) == libc::AF_INET6 {
                buf[8..24].copy_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
            } else {
                buf[4..8].copy_from_slice(&[127, 0, 0, 1]);
            }
        }
    }
    s.uint(&[0, 1, 2, 3, 15, 16, 17, 24, 28, 110, 111, 128, 129, 256, u32::MAX])
}

/// An address argument: the bytes [`address`] made or, one time in three,
/// the wild pointer `wild`; with the length [`address`] chose.
fn address_arg(
    s: &mut Source<'_>,
    buf: &mut [u8; 256],
    to_socket: bool,
    dead_port: u16,
    wild: *mut c_void,
) -> (*const sockaddr, socklen_t) {
    let len = address(s, buf, to_socket, dead_port);
    let ptr = if s.byte() % 3 == 0 {
        wild.cast_const().cast()
    } else {
        buf.as_ptr().cast::<sockaddr>()
    };
    (ptr, len)
}

fn last_error() -> Vec<u8> {
    let p = safesock::ffi::ss_last_error();
    // SAFETY: ss_last_error returns a NUL-terminated string valid until the
    // next ss_ call on this thread; copied at once.
    unsafe { CStr::from_ptr(p) }.to_bytes().to_vec()
}

/// Checks the outcome of one call named `name` that returned `ret`.
fn check(name: &str, ret: i64, previous: &[u8]) {
    let e = errno();
    if ret != -1 {
        assert_eq!(e, SENTINEL, "{name} succeeded ({ret}) but changed errno to {e}");
        assert_eq!(last_error(), previous, "{name} succeeded but changed ss_last_error");
        return;
    }
    assert_ne!(e, SENTINEL, "{name} failed without setting errno");
    let bytes = last_error();
    let m = core::str::from_utf8(&bytes).unwrap_or_else(|_| panic!("{name}: message is not UTF-8: {bytes:?}"));
    assert!(m.len() <= 511, "{name}: message over 511 bytes ({}): {m}", m.len());
    assert!(!m.starts_with("internal error"), "{name}: a panic was contained: {m}");
    assert!(
        m.starts_with(&format!("{name}(")),
        "{name}: message does not start with the call: {m}"
    );
    // SAFETY: ss_errno_name returns a static NUL-terminated string.
    let en = unsafe { CStr::from_ptr(safesock::ffi::ss_errno_name(e)) }
        .to_string_lossy()
        .into_owned();
    assert!(
        m.contains(&format!("({en})")),
        "{name}: message does not name errno {e} ({en}): {m}"
    );
    safesock::ffi::ss_clear_error();
    assert!(last_error().is_empty(), "ss_clear_error left a message");
}

/// A helper's text is passed on only if it cannot make the resolver ask
/// DNS and cannot reach beyond loopback.
fn safe_text(text: &[u8]) -> bool {
    let Ok(t) = core::str::from_utf8(text) else {
        return true; // refused as malformed before any lookup
    };
    if t.starts_with("unix:") || t.len() > 1024 {
        return true;
    }
    match safesock::addr::parse(t) {
        Ok(a) => match a.decode() {
            safesock::addr::Decoded::Inet(sa) => sa.ip().is_loopback() || is_mapped_loopback(&sa),
            _ => true,
        },
        Err(safesock::addr::ParseError::Host) if !t.starts_with('[') => {
            // Would go to getaddrinfo: only when it is a valid port and the
            // host is localhost (answered from /etc/hosts), or when the
            // port is malformed (refused before any lookup).
            match t.rsplit_once(':') {
                Some((host, port)) => port.parse::<u16>().is_err() || host == "localhost",
                None => true,
            }
        }
        Err(_) => true,
    }
}

fn is_mapped_loopback(sa: &std::net::SocketAddr) -> bool {
    match sa.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        std::net::IpAddr::V4(_) => false,
    }
}

/// Whether `text` is refused by the network helpers before any lookup (so
/// they must answer -1/EINVAL, and quickly).
fn malformed(text: &[u8]) -> bool {
    let Ok(t) = core::str::from_utf8(text) else {
        return true;
    };
    if t.starts_with("unix:") || t.len() > 1024 {
        return true;
    }
    match safesock::addr::parse(t) {
        Ok(_) => false,
        Err(safesock::addr::ParseError::Host) if !t.starts_with('[') => {
            t.rsplit_once(':').is_none_or(|(_, port)| port.parse::<u16>().is_err())
        }
        Err(_) => true,
    }
}

fn helpers(s: &mut Source<'_>) {
    let which = s.byte() % 4;
    let raw = s.rest(1100);
    let text: Vec<u8> = raw.iter().copied().take_while(|&b| b != 0).collect();
    if !safe_text(&text) {
        return;
    }
    let mut c = text.clone();
    c.push(0);
    let t: *const c_char = c.as_ptr().cast();
    let started = Instant::now();
    let previous = last_error();
    set_errno(SENTINEL);
    let (name, ret) = match which {
        // SAFETY: NUL-terminated text.
        0 => (
            "ss_tcp_listen",
            i64::from(unsafe { safesock::ffi::ss_tcp_listen(t, 1) }),
        ),
        // SAFETY: as above.
        1 => ("ss_udp_bind", i64::from(unsafe { safesock::ffi::ss_udp_bind(t) })),
        // SAFETY: as above; the wait is bounded.
        2 => (
            "ss_tcp_connect",
            i64::from(unsafe { safesock::ffi::ss_tcp_connect(t, 20) }),
        ),
        _ => {
            // SAFETY: sockaddr_storage is plain data.
            let mut out: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
            let mut len: socklen_t = 0;
            // SAFETY: NUL-terminated text and local out-parameters.
            (
                "ss_addr_parse",
                i64::from(unsafe { safesock::ffi::ss_addr_parse(t, &mut out, &mut len) }),
            )
        }
    };
    let elapsed = started.elapsed();
    let err = errno();
    check(name, ret, &previous);
    if ret >= 0 && name != "ss_addr_parse" {
        // SAFETY: closing the descriptor the helper returned.
        unsafe { libc::close(ret as c_int) };
    }
    let refused = if name == "ss_addr_parse" {
        core::str::from_utf8(&text).map_or(true, |t| t.len() > 1024 || safesock::addr::parse(t).is_err())
    } else {
        malformed(&text)
    };
    if refused {
        assert!(
            ret == -1 && err == libc::EINVAL,
            "{name}({:?}) of malformed text gave {ret} errno {err}, not -1/EINVAL",
            String::from_utf8_lossy(&text)
        );
        assert!(
            elapsed < Duration::from_secs(1),
            "{name}({:?}) of malformed text took {elapsed:?}",
            String::from_utf8_lossy(&text)
        );
    }
}

/// One failing (or not) call of a mirror function.
#[allow(clippy::too_many_lines)]
fn call(s: &mut Source<'_>) {
    let f = fds();
    let valid = arena().data();
    let (fd, is_sock) = fd(s);
    let mut addr = [0u8; 256];
    let op = s.byte() % 21;
    let previous = last_error();
    let n = s
        .size(&[0, 1, 16, 4096, usize::MAX, 1 << 40])
        .min(if is_sock { 4096 } else { usize::MAX });
    let flags = s.int(&[0, libc::MSG_DONTWAIT, -1, libc::MSG_OOB, libc::MSG_PEEK]) | libc::MSG_DONTWAIT;
    let p = ptr(s, valid);
    let p2 = ptr(s, valid);
    set_errno(SENTINEL);
    // SAFETY (each call): wild pointers go to the kernel, which checks them;
    // the sockets are non-blocking, so nothing waits.
    let (name, ret): (&str, i64) = match op {
        0 => {
            let (a, l) = address_arg(s, &mut addr, is_sock, f.dead_port, p);
            // SAFETY: see above.
            ("ss_bind", i64::from(unsafe { safesock::ffi::ss_bind(fd, a, l) }))
        }
        1 => {
            let (a, l) = address_arg(s, &mut addr, is_sock, f.dead_port, p);
            // SAFETY: see above.
            ("ss_connect", i64::from(unsafe { safesock::ffi::ss_connect(fd, a, l) }))
        }
        2 => {
            let (a, l) = address_arg(s, &mut addr, is_sock, f.dead_port, p2);
            // SAFETY: see above.
            ("ss_sendto", unsafe { safesock::ffi::ss_sendto(fd, p, n, flags, a, l) }
                as i64)
        }
        // SAFETY: see above.
        3 => (
            "ss_listen",
            i64::from(safesock::ffi::ss_listen(fd, s.int(&[0, -1, 5, i32::MAX]))),
        ),
        // SAFETY: see above.
        4 => (
            "ss_accept",
            i64::from(unsafe { safesock::ffi::ss_accept(fd, p.cast(), p2.cast()) }),
        ),
        5 => {
            let fl = s.int(&[0, -1, 1, libc::SOCK_CLOEXEC]);
            // SAFETY: see above.
            (
                "ss_accept4",
                i64::from(unsafe { safesock::ffi::ss_accept4(fd, p.cast(), p2.cast(), fl) }),
            )
        }
        // SAFETY: see above.
        6 => ("ss_read", unsafe { safesock::ffi::ss_read(fd, p, n) } as i64),
        // SAFETY: see above.
        7 => ("ss_write", unsafe { safesock::ffi::ss_write(fd, p, n) } as i64),
        // SAFETY: see above.
        8 => ("ss_recv", unsafe { safesock::ffi::ss_recv(fd, p, n, flags) } as i64),
        // SAFETY: see above.
        9 => ("ss_send", unsafe { safesock::ffi::ss_send(fd, p, n, flags) } as i64),
        10 => {
            let c = s.int(&[0, 1, 1024, 1025, -1, i32::MAX]);
            // SAFETY: see above.
            ("ss_readv", unsafe { safesock::ffi::ss_readv(fd, p.cast(), c) } as i64)
        }
        11 => {
            let c = s.int(&[0, 1, 1024, 1025, -1, i32::MAX]);
            // SAFETY: see above.
            ("ss_writev", unsafe { safesock::ffi::ss_writev(fd, p.cast(), c) } as i64)
        }
        // SAFETY: see above (a wild header is refused by the kernel).
        12 => (
            "ss_recvmsg",
            unsafe { safesock::ffi::ss_recvmsg(fd, wild_msg(p), flags) } as i64,
        ),
        // SAFETY: see above.
        13 => (
            "ss_sendmsg",
            unsafe { safesock::ffi::ss_sendmsg(fd, wild_msg(p), flags) } as i64,
        ),
        14 => (
            "ss_shutdown",
            i64::from(safesock::ffi::ss_shutdown(fd, s.int(&[0, 1, 2, 3, -1]))),
        ),
        // SAFETY: see above.
        15 => (
            "ss_getsockname",
            i64::from(unsafe { safesock::ffi::ss_getsockname(fd, p.cast(), p2.cast()) }),
        ),
        // SAFETY: see above.
        16 => (
            "ss_getpeername",
            i64::from(unsafe { safesock::ffi::ss_getpeername(fd, p.cast(), p2.cast()) }),
        ),
        17 => {
            let level = s.int(OPTION_LEVELS);
            let opt = i32::from(s.byte());
            // SAFETY: see above.
            let r = unsafe { safesock::ffi::ss_getsockopt(fd, level, opt, p, p2.cast()) };
            ("ss_getsockopt", i64::from(r))
        }
        18 => {
            // Options are only set on descriptors that are not sockets
            // (or with an option no level knows): nothing may change how a
            // socket reaches the network.
            let level = s.int(OPTION_LEVELS);
            let opt = if is_sock { 0x7ead } else { i32::from(s.byte()) };
            let l = s.uint(&[0, 1, 4, 8, 64, u32::MAX]);
            // SAFETY: see above.
            (
                "ss_setsockopt",
                i64::from(unsafe { safesock::ffi::ss_setsockopt(fd, level, opt, p, l) }),
            )
        }
        19 => {
            // Only numbers that are not open (this target's sockets stay).
            let target = if is_sock || fd == f.pipe { f.closed } else { fd };
            ("ss_close", i64::from(safesock::ffi::ss_close(target)))
        }
        _ => {
            // ss_socket with safe families only (others could load modules).
            let domain = s.int(&[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, -1, 46, 1000]);
            let domain = if (0..46).contains(&domain) && ![1, 2, 10].contains(&domain) {
                46
            } else {
                domain
            };
            let ty = s.int(&[libc::SOCK_STREAM, libc::SOCK_DGRAM, 0, 15, -1, 0x40]);
            let ty = if [3, 10, 6].contains(&(ty & 0xf)) { ty | 0xf } else { ty };
            let proto = s.pick(&[0, 6, 17, 255, -1, 1000]);
            let r = safesock::ffi::ss_socket(domain, ty, proto);
            if r >= 0 {
                // SAFETY: closing the socket just made.
                unsafe { libc::close(r) };
            }
            ("ss_socket", i64::from(r))
        }
    };
    check(name, ret, &previous);
    if ret >= 0 && matches!(op, 4 | 5) {
        // SAFETY: closing an accepted connection.
        unsafe { libc::close(ret as c_int) };
    }
}

/// A message header: NULL, wild, or one in the arena with wild insides.
fn wild_msg(p: *mut c_void) -> *mut libc::msghdr {
    p.cast()
}

fn names(s: &mut Source<'_>) {
    let v = s.u32() as c_int;
    // SAFETY: ss_errno_name returns a static NUL-terminated string.
    let name = unsafe { CStr::from_ptr(safesock::ffi::ss_errno_name(v)) }
        .to_str()
        .expect("ASCII");
    assert!(
        name == "E?"
            || (name.starts_with('E') && name[1..].bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())),
        "ss_errno_name({v}) = {name:?}"
    );
    assert_eq!(
        name == "E?",
        !(1..=133).contains(&v) || v == 41 || v == 58,
        "ss_errno_name({v}) = {name:?}"
    );
    // SAFETY: ss_tcp_state_name returns a static NUL-terminated string.
    let state = unsafe { CStr::from_ptr(safesock::ffi::ss_tcp_state_name(v)) }
        .to_str()
        .expect("ASCII");
    let known = safesock::tcp::STATE_NAMES.iter().any(|n| n.to_str() == Ok(state));
    assert!(known, "ss_tcp_state_name({v}) = {state:?}");
    assert_eq!(
        state == "UNKNOWN",
        !(1..=12).contains(&v),
        "ss_tcp_state_name({v}) = {state:?}"
    );
}

/// Runs one input: a few calls, lookups and helper texts.
pub fn run(data: &[u8]) {
    let mut s = Source::new(data);
    let mut budget = 16;
    while !s.is_empty() && budget > 0 {
        budget -= 1;
        match s.byte() % 4 {
            0 => names(&mut s),
            1 => {
                helpers(&mut s);
                break; // the helper text takes the rest of the input
            }
            _ => call(&mut s),
        }
    }
}
