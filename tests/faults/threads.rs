//! Diagnostics under concurrency, and inputs that must never reach a panic.
//!
//! `ss_last_error()` is per thread: many threads failing at once each see
//! their own message, and the pointer one thread got stays valid and
//! unchanged until its own next `ss_` call, whatever the others do.
//!
//! No C input may provoke a panic (which the boundary would turn into
//! `EIO` and an "internal error:" message): every exported function is
//! called with random arguments, generated deterministically, within what
//! is safe for this process to do (its own non-blocking sockets or bad
//! descriptor numbers, real buffers no smaller than the lengths passed, or
//! pointers that fault at their first byte; loopback addresses only; no
//! socket options that wait on close, load kernel modules, join multicast
//! groups or create descriptors). Every failure must come with a message
//! that names the call.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString, c_int, c_void};
use std::sync::Barrier;

use libc::{iovec, msghdr, sockaddr, socklen_t};
use safesock::ffi;

use crate::common::{
    Rng, SsFd, Wild, c_text, errno, errno_name, fd_or_panic, last_error, recv_exact, reserve_fd, send_all,
    set_nonblocking, ss_pair, tcp_listen, tcp_pair, udp_bind, unix_pair,
};

#[test]
fn ss_last_error_stays_per_thread_while_many_threads_fail_at_once() {
    const THREADS: usize = 32;
    const ROUNDS: usize = 400;
    let start = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let start = &start;
            s.spawn(move || {
                let fd = -2 - t as c_int;
                let [a, b] = unix_pair();
                let mine = vec![t as u8; t + 1];
                start.wait();
                for round in 0..ROUNDS {
                    let backlog = round as c_int;
                    assert_eq!(ffi::ss_listen(fd, backlog), -1);
                    let at = ffi::ss_last_error();
                    // SAFETY: valid until this thread's next ss_ call; copied at once.
                    let text = unsafe { CStr::from_ptr(at) }.to_string_lossy().into_owned();
                    let head = format!("ss_listen(fd {fd}, backlog {backlog}): Bad file descriptor (EBADF)");
                    assert!(text.starts_with(&head), "thread {t}: {text:?}");
                    std::thread::yield_now();
                    // SAFETY: no ss_ call on this thread since `at` was returned.
                    let later = unsafe { CStr::from_ptr(at) }.to_string_lossy().into_owned();
                    assert_eq!(
                        later, text,
                        "thread {t}: the message changed under another thread's calls"
                    );
                    if round % 4 == 0 {
                        // Successes leave the message alone; ss_transferred is per thread too.
                        send_all(a.raw(), &mine);
                        assert_eq!(ffi::ss_transferred(), t + 1);
                        assert_eq!(recv_exact(b.raw(), t + 1), mine);
                        assert_eq!(ffi::ss_transferred(), t + 1);
                        assert_eq!(last_error(), text, "thread {t}: a success changed the message");
                    }
                    if round % 7 == 0 {
                        ffi::ss_clear_error();
                        assert_eq!(last_error(), "", "thread {t}: ss_clear_error");
                    }
                }
            });
        }
    });
}

// ---------------------------------------------------------------------------
// Random C inputs
// ---------------------------------------------------------------------------

/// Room in every real buffer; lengths passed with a real buffer never exceed it.
const ROOM: usize = 256;

/// What the fuzz calls work on: its own non-blocking sockets (made by `ss_`
/// calls, closed with `ss_close`), and numbers that are not open.
struct Sockets {
    owned: Vec<SsFd>,
    /// Datagram sockets `ss_connect` and `ss_sendto` may aim at [`address`]es.
    datagram: Vec<c_int>,
    bad: Vec<c_int>,
    /// The port of the UDP socket, where IPv4 datagrams go.
    port: u16,
}

impl Sockets {
    fn new() -> Sockets {
        let listener = fd_or_panic(tcp_listen("127.0.0.1:0", 4), "ss_tcp_listen");
        let (client, server) = tcp_pair("127.0.0.1:0");
        let udp = fd_or_panic(udp_bind("127.0.0.1:0"), "ss_udp_bind");
        let mut owned = vec![listener, client, server, udp];
        for ty in [libc::SOCK_DGRAM, libc::SOCK_STREAM, libc::SOCK_SEQPACKET] {
            owned.extend(ss_pair(ty).map(SsFd));
        }
        for fd in &owned {
            set_nonblocking(fd.raw(), true);
        }
        let datagram = vec![owned[3].raw(), owned[4].raw()];
        let port = u16::try_from(ffi::ss_local_port(owned[3].raw())).expect("a port");
        Sockets {
            owned,
            datagram,
            bad: vec![-1, c_int::MIN, 1_000_000, reserve_fd()],
            port,
        }
    }

    /// A datagram socket or a bad number.
    fn datagram_or_bad(&self, rng: &mut Rng) -> c_int {
        if rng.chance(5) {
            self.bad[rng.below(self.bad.len() as u64) as usize]
        } else {
            self.datagram[rng.below(self.datagram.len() as u64) as usize]
        }
    }

    /// Any but the connected TCP pair. Once that pair is shut down or
    /// reset (CLOSE), `ss_tcp_state` asks the kernel for a dump of every
    /// TIME_WAIT entry on the host, which would tie this test's time to the
    /// machine's traffic.
    fn any_but_the_pair(&self, rng: &mut Rng) -> c_int {
        match self.any(rng) {
            fd if fd == self.owned[1].raw() || fd == self.owned[2].raw() => self.owned[0].raw(),
            fd => fd,
        }
    }

    fn any(&self, rng: &mut Rng) -> c_int {
        if rng.chance(5) {
            self.bad[rng.below(self.bad.len() as u64) as usize]
        } else {
            self.owned[rng.below(self.owned.len() as u64) as usize].raw()
        }
    }
}

/// One of a few values that matter, or anything.
fn int(rng: &mut Rng) -> c_int {
    const EDGES: [c_int; 8] = [0, 1, -1, 2, 16, c_int::MIN, c_int::MAX, 0x4000_0000];
    if rng.chance(2) {
        EDGES[rng.below(EDGES.len() as u64) as usize]
    } else {
        rng.next_u64() as c_int
    }
}

/// A length for a buffer: within [`ROOM`] for a real buffer, anything for a
/// wild pointer (which faults at its first byte).
fn len(rng: &mut Rng, real: bool) -> usize {
    match (real, rng.below(4)) {
        (true, 0) => 0,
        (true, _) => rng.below(ROOM as u64 + 1) as usize,
        (false, 0) => usize::MAX,
        (false, 1) => isize::MAX as usize,
        (false, _) => rng.below(1 << 20) as usize,
    }
}

/// A buffer pointer: one of `bufs` (each [`ROOM`] bytes) or a wild pointer.
fn pointer(rng: &mut Rng, real: *mut u8) -> (*mut c_void, bool) {
    if rng.chance(3) {
        let wild = Wild::FOR_OUTPUT[rng.below(Wild::FOR_OUTPUT.len() as u64) as usize];
        (wild.ptr(), false)
    } else {
        (real.cast(), true)
    }
}

/// Random address bytes in `out` and a length for them. An IPv4 address is
/// 127.0.0.1 with port 0 or `port` (the fuzz's own UDP socket), so nothing
/// is ever sent to anything else; IPv6 is ::1.
fn address(rng: &mut Rng, out: &mut [u8; ROOM], port: u16) -> socklen_t {
    rng.fill(out);
    let family = match rng.below(6) {
        0 => libc::AF_INET,
        1 => libc::AF_INET6,
        2 => libc::AF_UNIX,
        3 => libc::AF_UNSPEC,
        4 => libc::AF_NETLINK,
        _ => c_int::from(rng.next_u64() as u16),
    };
    out[..2].copy_from_slice(&(family as u16).to_ne_bytes());
    match family {
        libc::AF_INET => {
            let port = if rng.chance(2) { port } else { 0 };
            out[2..4].copy_from_slice(&port.to_be_bytes());
            out[4..8].copy_from_slice(&[127, 0, 0, 1]);
        }
        libc::AF_INET6 => {
            out[8..24].copy_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
            out[24..28].copy_from_slice(&rng.next_u64().to_ne_bytes()[..4]);
        }
        // An abstract name: connecting to it creates nothing on disk.
        libc::AF_UNIX => out[2] = 0,
        _ => {}
    }
    match rng.below(4) {
        0 => [0, 1, 2, 16, 28, 110, 128, 129, 0xffff_ffff][rng.below(9) as usize],
        _ => rng.below(ROOM as u64 - 16) as socklen_t,
    }
}

/// A socket option level and name that are safe to set here.
fn option(rng: &mut Rng) -> (c_int, c_int) {
    let level = [libc::SOL_SOCKET, libc::IPPROTO_TCP, libc::SOL_SOCKET, int(rng)][rng.below(4) as usize];
    let name = if rng.chance(8) {
        int(rng)
    } else {
        rng.below(76) as c_int
    };
    let unsafe_here = matches!(
        (level, name),
        // Waits on close; creates descriptors (pidfds); loads congestion or ULP modules.
        (libc::SOL_SOCKET, libc::SO_LINGER | 76 | 77) | (libc::IPPROTO_TCP, 13 | 31)
    );
    if unsafe_here {
        (libc::SOL_SOCKET, libc::SO_TYPE)
    } else {
        (level, name)
    }
}

/// Text near the forms `ss_addr_parse` knows, mutated at random.
fn address_text(rng: &mut Rng) -> CString {
    const FORMS: [&str; 8] = [
        "127.0.0.1:80",
        "[::1]:0",
        "[fe80::1%lo]:8080",
        "[::ffff:1.2.3.4]:65535",
        "unix:/tmp/x",
        "unix:@name\\x00\\\\",
        "10.0.0.1",
        "",
    ];
    const PIECES: &[u8] = b"0123456789abcdef:.[]%@\\x/unix:ff";
    let mut text = FORMS[rng.below(FORMS.len() as u64) as usize].as_bytes().to_vec();
    for _ in 0..=rng.below(6) {
        let at = rng.below(text.len() as u64 + 1) as usize;
        match rng.below(5) {
            0 => text.insert(at, PIECES[rng.below(PIECES.len() as u64) as usize]),
            1 => text.insert(at, rng.byte().max(1)),
            2 if at < text.len() => {
                text.remove(at);
            }
            3 => text
                .splice(at..at, std::iter::repeat_n(b'9', rng.below(30) as usize))
                .for_each(drop),
            _ if !text.is_empty() => text.extend_from_within(..at.min(text.len())),
            _ => {}
        }
    }
    if rng.chance(50) {
        text.resize(1100, b'1');
    }
    CString::new(text.into_iter().map(|b| b.max(1)).collect::<Vec<u8>>()).expect("no NUL")
}

/// The calls, by name. Every one takes the random source, the sockets and
/// two real buffers, and returns what it returned (as i64) if it failed
/// in a way that needs checking.
type Fuzz = fn(&mut Rng, &Sockets, &mut [u8; ROOM], &mut [u8; ROOM]) -> i64;

/// Closes a descriptor a fuzz call made.
fn close_new(ret: i64) {
    if ret >= 0 {
        assert_eq!(ffi::ss_close(ret as c_int), 0, "{}", last_error());
    }
}

/// A domain, type and protocol for `ss_socket`/`ss_socketpair`. Any type
/// and protocol for AF_UNIX and for domains the kernel rejects outright;
/// for AF_INET/AF_INET6 only what exists, since asking those for an unknown
/// type or protocol makes the kernel try to load a module.
fn creation(rng: &mut Rng) -> (c_int, c_int, c_int) {
    let domain = [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, -1, 12345, c_int::MAX][rng.below(6) as usize];
    if domain == libc::AF_INET || domain == libc::AF_INET6 {
        let base = [libc::SOCK_STREAM, libc::SOCK_DGRAM][rng.below(2) as usize];
        let flags = [0, libc::SOCK_NONBLOCK, libc::SOCK_CLOEXEC, 1 << 20, c_int::MIN][rng.below(5) as usize];
        (domain, base | flags, 0)
    } else {
        (domain, int(rng), int(rng))
    }
}

const FUZZ: &[(&str, Fuzz)] = &[
    ("ss_socket", |rng, _, _, _| {
        let (domain, ty, protocol) = creation(rng);
        let ret = i64::from(ffi::ss_socket(domain, ty, protocol));
        close_new(ret);
        ret
    }),
    ("ss_socketpair", |rng, _, a, _| {
        let (p, real) = pointer(rng, a.as_mut_ptr());
        let (domain, ty, protocol) = creation(rng);
        // SAFETY: `p` is a real buffer of ROOM bytes or faults at its first byte.
        let ret = i64::from(unsafe { ffi::ss_socketpair(domain, ty, protocol, p.cast()) });
        if ret == 0 && real {
            for i in 0..2 {
                close_new(c_int::from_ne_bytes(a[4 * i..4 * i + 4].try_into().expect("4 bytes")).into());
            }
        }
        ret
    }),
    ("ss_bind", |rng, s, a, _| {
        let fd = ffi::ss_socket(
            [libc::AF_INET, libc::AF_INET6][rng.below(2) as usize],
            libc::SOCK_DGRAM,
            0,
        );
        let addr_len = address(rng, a, s.port);
        let (p, _) = pointer(rng, a.as_mut_ptr());
        // SAFETY: `p` is a real buffer of ROOM bytes (the length is below that) or faults at once.
        let ret = i64::from(unsafe { ffi::ss_bind(fd, p.cast(), addr_len) });
        close_new(fd.into());
        ret
    }),
    ("ss_listen", |rng, s, _, _| {
        i64::from(ffi::ss_listen(s.any(rng), int(rng)))
    }),
    ("ss_connect", |rng, s, a, _| {
        let fd = s.datagram_or_bad(rng);
        let addr_len = address(rng, a, s.port);
        let (p, _) = pointer(rng, a.as_mut_ptr());
        // SAFETY: as for ss_bind; only datagram sockets connect (no traffic).
        i64::from(unsafe { ffi::ss_connect(fd, p.cast(), addr_len) })
    }),
    ("ss_accept4", |rng, s, a, b| {
        let (p, _) = pointer(rng, a.as_mut_ptr());
        let (l, _) = pointer(rng, b.as_mut_ptr());
        b[..4].copy_from_slice(&(rng.below(ROOM as u64) as socklen_t).to_ne_bytes());
        // SAFETY: real buffers of ROOM bytes (the length asked is below it) or wild pointers.
        let ret = i64::from(unsafe { ffi::ss_accept4(s.any(rng), p.cast(), l.cast(), int(rng)) });
        close_new(ret);
        ret
    }),
    ("ss_recv", |rng, s, a, _| {
        let (p, real) = pointer(rng, a.as_mut_ptr());
        // SAFETY: the length never exceeds a real buffer; a wild one faults at once.
        unsafe { ffi::ss_recv(s.any(rng), p, len(rng, real), int(rng)) as i64 }
    }),
    ("ss_read", |rng, s, a, _| {
        let (p, real) = pointer(rng, a.as_mut_ptr());
        // SAFETY: as above.
        unsafe { ffi::ss_read(s.any(rng), p, len(rng, real)) as i64 }
    }),
    ("ss_send", |rng, s, a, _| {
        let (p, real) = pointer(rng, a.as_mut_ptr());
        // SAFETY: as above; the sockets are connected to each other or not at all.
        unsafe { ffi::ss_send(s.any(rng), p, len(rng, real), int(rng) & !libc::MSG_FASTOPEN) as i64 }
    }),
    ("ss_write", |rng, s, a, _| {
        let (p, real) = pointer(rng, a.as_mut_ptr());
        // SAFETY: as above.
        unsafe { ffi::ss_write(s.any(rng), p, len(rng, real)) as i64 }
    }),
    ("ss_readv", |rng, s, a, b| vector(rng, s, a, b, true)),
    ("ss_writev", |rng, s, a, b| vector(rng, s, a, b, false)),
    ("ss_recvmsg", |rng, s, a, b| message(rng, s, a, b, true)),
    ("ss_sendmsg", |rng, s, a, b| message(rng, s, a, b, false)),
    ("ss_recvfrom", |rng, s, a, b| {
        let (p, real) = pointer(rng, a.as_mut_ptr());
        let (from, _) = pointer(rng, b.as_mut_ptr());
        let mut from_len = rng.below(ROOM as u64) as socklen_t;
        let len_ptr = if rng.chance(4) {
            std::ptr::null_mut()
        } else {
            &raw mut from_len
        };
        // SAFETY: as above for the buffer; the address buffer has ROOM bytes, more than any length.
        unsafe { ffi::ss_recvfrom(s.any(rng), p, len(rng, real), int(rng), from.cast(), len_ptr) as i64 }
    }),
    ("ss_sendto", |rng, s, a, b| {
        let (p, real) = pointer(rng, a.as_mut_ptr());
        let fd = s.datagram_or_bad(rng);
        let to_len = address(rng, b, s.port);
        let to = if rng.chance(4) {
            std::ptr::null()
        } else {
            b.as_ptr().cast()
        };
        // SAFETY: as above; datagrams go to loopback or an abstract AF_UNIX name only.
        unsafe { ffi::ss_sendto(fd, p, len(rng, real), int(rng) & !libc::MSG_FASTOPEN, to, to_len) as i64 }
    }),
    ("ss_shutdown", |rng, s, _, _| {
        i64::from(ffi::ss_shutdown(s.any(rng), int(rng)))
    }),
    ("ss_getsockname", |rng, s, a, b| name(rng, s, a, b, false)),
    ("ss_getpeername", |rng, s, a, b| name(rng, s, a, b, true)),
    ("ss_getsockopt", |rng, s, a, b| {
        let (level, opt) = option(rng);
        let (p, real) = pointer(rng, a.as_mut_ptr());
        let mut opt_len = if real {
            rng.below(ROOM as u64) as socklen_t
        } else {
            int(rng) as socklen_t
        };
        let (l, _) = pointer(rng, b.as_mut_ptr());
        let l = if l == b.as_mut_ptr().cast() {
            (&raw mut opt_len).cast()
        } else {
            l
        };
        // SAFETY: the kernel writes at most *optlen bytes (below ROOM) into a real buffer.
        i64::from(unsafe { ffi::ss_getsockopt(s.any(rng), level, opt, p, l.cast()) })
    }),
    ("ss_setsockopt", |rng, s, a, _| {
        let (level, opt) = option(rng);
        rng.fill(a);
        let (p, real) = pointer(rng, a.as_mut_ptr());
        let opt_len = len(rng, real).min(u32::MAX as usize) as socklen_t;
        // SAFETY: the kernel reads at most `opt_len` bytes (ROOM at most for a real buffer).
        i64::from(unsafe { ffi::ss_setsockopt(s.any(rng), level, opt, p, opt_len) })
    }),
    ("ss_local_port", |rng, s, _, _| {
        i64::from(ffi::ss_local_port(s.any(rng)))
    }),
    ("ss_tcp_state", |rng, s, _, _| {
        i64::from(ffi::ss_tcp_state(s.any_but_the_pair(rng)))
    }),
    ("ss_addr_parse", |rng, _, a, _| {
        let text = address_text(rng);
        let mut len: socklen_t = 0;
        // SAFETY: a NUL-terminated string and real buffers (sockaddr_storage fits in ROOM).
        i64::from(unsafe { ffi::ss_addr_parse(text.as_ptr(), a.as_mut_ptr().cast(), &mut len) })
    }),
    ("ss_addr_format", |rng, _, a, b| {
        let addr_len = address(rng, a, 0);
        let addr_len = if rng.chance(3) {
            rng.below(130) as socklen_t
        } else {
            addr_len
        };
        let (out, real) = pointer(rng, b.as_mut_ptr());
        let room = if real {
            rng.below(ROOM as u64 + 1) as usize
        } else {
            len(rng, false)
        };
        // SAFETY: the address has ROOM readable bytes; the text buffer has `room` at most.
        i64::from(unsafe { ffi::ss_addr_format(a.as_ptr().cast(), addr_len, out.cast(), room) })
    }),
];

/// `ss_readv`/`ss_writev` with up to 4 entries over real or wild buffers, or
/// a wild array with any count.
fn vector(rng: &mut Rng, s: &Sockets, a: &mut [u8; ROOM], b: &mut [u8; ROOM], read: bool) -> i64 {
    let mut iov = [iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; 4];
    for (i, entry) in iov.iter_mut().enumerate() {
        let (p, real) = pointer(rng, a.as_mut_ptr().wrapping_add(i * ROOM / 4));
        *entry = iovec {
            iov_base: p,
            iov_len: if real { len(rng, true) / 4 } else { len(rng, false) },
        };
    }
    let (array, count): (*const iovec, c_int) = if rng.chance(4) {
        (pointer(rng, b.as_mut_ptr()).0.cast(), int(rng))
    } else {
        (iov.as_ptr(), rng.below(5) as c_int)
    };
    // SAFETY: a real array has 4 entries and a count of at most 4; each entry
    // names at most its quarter of a ROOM buffer, or faults at its first byte.
    unsafe {
        if read {
            ffi::ss_readv(s.any(rng), array, count) as i64
        } else {
            ffi::ss_writev(s.any(rng), array, count) as i64
        }
    }
}

/// `ss_recvmsg`/`ss_sendmsg` with a header of random, bounded parts (no
/// control data is ever sent, so no descriptor can arrive).
fn message(rng: &mut Rng, s: &Sockets, a: &mut [u8; ROOM], b: &mut [u8; ROOM], recv: bool) -> i64 {
    let mut iov = iovec {
        iov_base: a.as_mut_ptr().cast(),
        iov_len: len(rng, true) / 2,
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: msghdr = unsafe { std::mem::zeroed() };
    let (name, real_name) = pointer(rng, b.as_mut_ptr());
    msg.msg_name = if rng.chance(3) { std::ptr::null_mut() } else { name };
    msg.msg_namelen = if real_name {
        rng.below(ROOM as u64 / 2) as socklen_t
    } else {
        int(rng) as socklen_t
    };
    let (iov_ptr, real_iov) = pointer(rng, (&raw mut iov).cast());
    msg.msg_iov = iov_ptr.cast();
    msg.msg_iovlen = if real_iov {
        rng.below(2) as usize
    } else {
        len(rng, false)
    };
    if recv {
        let (control, real) = pointer(rng, b.as_mut_ptr().wrapping_add(ROOM / 2));
        msg.msg_control = control;
        msg.msg_controllen = if real {
            rng.below(ROOM as u64 / 2) as usize
        } else {
            len(rng, false)
        };
    } else if rng.chance(3) {
        msg.msg_control = pointer(rng, std::ptr::null_mut()).0;
        msg.msg_controllen = len(rng, false);
    }
    let msg_ptr: *mut msghdr = if rng.chance(8) {
        pointer(rng, std::ptr::null_mut()).0.cast()
    } else {
        &raw mut msg
    };
    let flags = int(rng) & !libc::MSG_FASTOPEN;
    // SAFETY: every part of the header is a real buffer with a length below
    // its size, NULL, or a pointer that faults at its first byte; a real
    // header names at most one iovec.
    unsafe {
        if recv {
            ffi::ss_recvmsg(s.any(rng), msg_ptr, flags) as i64
        } else {
            ffi::ss_sendmsg(s.any(rng), msg_ptr, flags) as i64
        }
    }
}

/// `ss_getsockname`/`ss_getpeername` into a real or wild address with any length.
fn name(rng: &mut Rng, s: &Sockets, a: &mut [u8; ROOM], b: &mut [u8; ROOM], peer: bool) -> i64 {
    let (p, _) = pointer(rng, a.as_mut_ptr());
    b[..4].copy_from_slice(&(int(rng) as socklen_t).to_ne_bytes());
    let (l, _) = pointer(rng, b.as_mut_ptr());
    let (p, l): (*mut sockaddr, *mut socklen_t) = (p.cast(), l.cast());
    // SAFETY: the kernel writes at most the address size (128 bytes) into a
    // real ROOM buffer whatever *addrlen says; wild pointers fault at once.
    i64::from(unsafe {
        if peer {
            ffi::ss_getpeername(s.any(rng), p, l)
        } else {
            ffi::ss_getsockname(s.any(rng), p, l)
        }
    })
}

#[test]
fn random_c_inputs_never_reach_a_panic_and_every_failure_explains_itself() {
    const CALLS: usize = 40_000;
    let sockets = Sockets::new();
    let mut rng = Rng::new(0xfa17_5afe);
    let (mut a, mut b) = ([0u8; ROOM], [0u8; ROOM]);
    let mut tally: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut wrong = Vec::new();
    for i in 0..CALLS {
        let (name, call) = FUZZ[rng.below(FUZZ.len() as u64) as usize];
        let ret = call(&mut rng, &sockets, &mut a, &mut b);
        let errno = errno();
        let entry = tally.entry(name).or_default();
        entry.0 += 1;
        if ret < 0 {
            entry.1 += 1;
            let message = last_error();
            if errno == libc::EIO && message.starts_with("internal error") || !message.starts_with(&format!("{name}("))
            {
                wrong.push(format!("call {i}, {name}: errno {errno}, message {message:?}"));
            }
        }
    }
    for err in [-1, 0, 1, 133, 134, 4095, c_int::MAX, c_int::MIN] {
        let (e, s) = (errno_name(err), c_text(ffi::ss_tcp_state_name(err)));
        assert!(!e.is_empty() && !s.is_empty(), "names for {err}");
    }
    assert!(
        wrong.is_empty(),
        "{} failures without a proper message:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let summary: Vec<String> = tally
        .iter()
        .map(|(n, (calls, failed))| format!("{n} {failed}/{calls}"))
        .collect();
    eprintln!("{CALLS} random calls, failed/made: {}", summary.join(", "));
}
