//! Cases for socket names (`getsockname`, `getpeername`) and options
//! (`getsockopt`, `setsockopt`).

use libc::{AF_UNIX, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, c_int, c_void, sockaddr, socklen_t};

use crate::common::Wild;
use crate::fixtures::{ADDR_LENS, Family, PATTERN, RawAddr, bad_fd_cases, escape, value_cases, wild_cases};
use crate::harness::{Api, Case, Probe, Table};

/// `getsockname` or `getpeername`.
#[derive(Clone, Copy)]
enum Name {
    Local,
    Peer,
}

impl Name {
    fn func(self) -> &'static str {
        match self {
            Name::Local => "ss_getsockname",
            Name::Peer => "ss_getpeername",
        }
    }

    /// # Safety
    ///
    /// `addr`/`len` must be valid for the kernel to write, or deliberately
    /// invalid pointers that only the kernel dereferences.
    unsafe fn call(self, api: &Api, fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
        match self {
            // SAFETY: forwarded from this function's contract.
            Name::Local => unsafe { (api.getsockname)(fd, addr, len) },
            // SAFETY: forwarded from this function's contract.
            Name::Peer => unsafe { (api.getpeername)(fd, addr, len) },
        }
    }
}

/// Calls `which` into a pattern-filled buffer with `*addrlen = len` and
/// records the bytes written and the length.
fn name_into(p: &mut Probe, which: Name, fd: c_int, len: socklen_t) {
    let mut addr = RawAddr::pattern();
    let mut addrlen = len;
    // SAFETY: addr is a live 256-byte buffer; lengths above that are
    // rejected by the kernel (it never writes more than 128 bytes).
    p.call(fd, |api| unsafe { which.call(api, fd, addr.mut_ptr(), &mut addrlen) });
    p.out_addr("addr", &addr, addrlen);
}

type Prepare = fn(&mut Probe) -> c_int;

/// The table for `which`: the given socket states, then the shared
/// length, pointer and descriptor cases on the socket `typical` makes.
fn name_table(which: Name, states: Vec<(&'static str, Prepare)>, typical: Prepare) -> Table {
    let mut cases: Vec<Case> = states
        .into_iter()
        .map(|(name, prepare)| {
            Case::new(name, move |p| {
                let fd = prepare(p);
                name_into(p, which, fd, 128);
            })
        })
        .collect();
    cases.extend(value_cases("*addrlen", &ADDR_LENS, move |p, len| {
        let fd = typical(p);
        name_into(p, which, fd, len);
    }));
    cases.extend(wild_cases("addr", &Wild::FOR_OUTPUT, move |p, wild| {
        let fd = typical(p);
        let mut len: socklen_t = 128;
        // SAFETY: len is live; the wild pointer only reaches the kernel.
        p.call(fd, |api| unsafe { which.call(api, fd, wild.ptr(), &mut len) });
        p.out("addrlen", len);
    }));
    cases.extend(wild_cases("addrlen pointer", &Wild::FOR_OUTPUT, move |p, wild| {
        let fd = typical(p);
        let mut addr = RawAddr::pattern();
        // SAFETY: addr is live; the wild pointer only reaches the kernel.
        p.call(fd, |api| unsafe { which.call(api, fd, addr.mut_ptr(), wild.ptr()) });
        p.out_addr("addr", &addr, 0);
    }));
    cases.extend(bad_fd_cases(move |p, fd| name_into(p, which, fd, 128)));
    Table {
        func: which.func(),
        cases,
    }
}

fn autobound(p: &mut Probe) -> c_int {
    let fd = p.sock(AF_UNIX, SOCK_DGRAM);
    let a = RawAddr::unix(b"", 0);
    // SAFETY: a is a live buffer holding a.len (2) valid bytes.
    assert_eq!(unsafe { (p.api.bind)(fd, a.ptr(), a.len) }, 0);
    fd
}

pub fn getsockname() -> Table {
    let states: Vec<(&'static str, Prepare)> = vec![
        ("TCP bound to 127.0.0.1", |p| p.bound(Family::V4, SOCK_STREAM).0),
        ("TCP unbound", Probe::tcp4),
        ("TCP6 bound to ::1", |p| p.bound(Family::V6, SOCK_STREAM).0),
        ("TCP6 unbound", |p| p.sock(libc::AF_INET6, SOCK_STREAM)),
        ("UDP bound to 127.0.0.1", |p| p.bound(Family::V4, SOCK_DGRAM).0),
        ("listening TCP", |p| p.listener(Family::V4, SOCK_STREAM).0),
        ("connected TCP client", |p| p.tcp_conn().client),
        ("AF_UNIX bound to a path", |p| p.bound(Family::UnixPath, SOCK_STREAM).0),
        ("AF_UNIX bound to an abstract name", |p| {
            p.bound(Family::UnixAbstract, SOCK_SEQPACKET).0
        }),
        ("AF_UNIX unbound", |p| p.sock(AF_UNIX, SOCK_STREAM)),
        ("AF_UNIX socketpair end", |p| p.pair(SOCK_STREAM).0),
        ("AF_UNIX autobound", autobound),
    ];
    name_table(Name::Local, states, |p| p.bound(Family::V4, SOCK_STREAM).0)
}

pub fn getpeername() -> Table {
    let states: Vec<(&'static str, Prepare)> = vec![
        ("connected TCP client", |p| p.tcp_conn().client),
        ("accepted TCP (server side)", |p| p.tcp_conn().server),
        ("connected TCP6 client", |p| p.connected(Family::V6, SOCK_STREAM).client),
        ("unconnected TCP", Probe::tcp4),
        ("listening TCP", |p| p.listener(Family::V4, SOCK_STREAM).0),
        ("connected UDP", |p| p.udp_conn().0),
        ("unconnected UDP", Probe::udp4),
        ("AF_UNIX socketpair end", |p| p.pair(SOCK_DGRAM).0),
        ("AF_UNIX client connected to a path", |p| {
            p.connected(Family::UnixPath, SOCK_STREAM).client
        }),
        ("AF_UNIX accepted side (unnamed peer)", |p| {
            p.connected(Family::UnixPath, SOCK_STREAM).server
        }),
        ("AF_UNIX seqpacket client connected to an abstract name", |p| {
            p.connected(Family::UnixAbstract, SOCK_SEQPACKET).client
        }),
        ("AF_UNIX dgram connected to a bound socket", |p| {
            let (_, target) = p.bound(Family::UnixPath, SOCK_DGRAM);
            let fd = p.sock(AF_UNIX, SOCK_DGRAM);
            // SAFETY: target is a live buffer holding target.len valid bytes.
            assert_eq!(unsafe { (p.api.connect)(fd, target.ptr(), target.len) }, 0);
            fd
        }),
    ];
    name_table(Name::Peer, states, |p| p.tcp_conn().client)
}

/// A pattern-filled option buffer large enough for every option a case reads.
#[repr(C, align(8))]
struct OptBuf([u8; 64]);

/// Calls `getsockopt(fd, level, name)` into a pattern-filled buffer with
/// `*optlen = len`; records the bytes written and the length.
fn getopt_into(p: &mut Probe, fd: c_int, level: c_int, name: c_int, len: socklen_t) {
    let mut value = OptBuf([PATTERN; 64]);
    let mut optlen = len;
    // SAFETY: value is a live 64-byte buffer; the options read here are at
    // most 64 bytes, and the kernel writes no more than the option's size.
    p.call(fd, |api| unsafe {
        (api.getsockopt)(fd, level, name, value.0.as_mut_ptr().cast(), &mut optlen)
    });
    let used = value.0.iter().rposition(|&b| b != PATTERN).map_or(0, |i| i + 1);
    p.out("optval", escape(&value.0[..used]));
    p.out("optlen", optlen);
}

fn tcp(p: &mut Probe) -> c_int {
    p.tcp4()
}

pub fn getsockopt() -> Table {
    type Opt = (&'static str, Prepare, c_int, c_int);
    let options: [Opt; 24] = [
        ("SO_TYPE", tcp, libc::SOL_SOCKET, libc::SO_TYPE),
        ("SO_DOMAIN", tcp, libc::SOL_SOCKET, libc::SO_DOMAIN),
        ("SO_PROTOCOL", Probe::udp4, libc::SOL_SOCKET, libc::SO_PROTOCOL),
        ("SO_ERROR", tcp, libc::SOL_SOCKET, libc::SO_ERROR),
        ("SO_REUSEADDR", tcp, libc::SOL_SOCKET, libc::SO_REUSEADDR),
        ("SO_KEEPALIVE", tcp, libc::SOL_SOCKET, libc::SO_KEEPALIVE),
        (
            "SO_ACCEPTCONN on a listener",
            |p| p.listener(Family::V4, SOCK_STREAM).0,
            libc::SOL_SOCKET,
            libc::SO_ACCEPTCONN,
        ),
        ("SO_RCVBUF", tcp, libc::SOL_SOCKET, libc::SO_RCVBUF),
        (
            "SO_SNDBUF on AF_UNIX dgram",
            |p| p.sock(AF_UNIX, SOCK_DGRAM),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
        ),
        ("SO_LINGER", tcp, libc::SOL_SOCKET, libc::SO_LINGER),
        ("SO_RCVTIMEO", tcp, libc::SOL_SOCKET, libc::SO_RCVTIMEO),
        (
            "SO_PEERCRED on a socketpair",
            |p| p.pair(SOCK_STREAM).0,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
        ),
        (
            "SO_PEERCRED on unconnected TCP",
            tcp,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
        ),
        (
            "SO_TYPE on AF_UNIX seqpacket",
            |p| p.sock(AF_UNIX, SOCK_SEQPACKET),
            libc::SOL_SOCKET,
            libc::SO_TYPE,
        ),
        ("TCP_NODELAY", tcp, libc::IPPROTO_TCP, libc::TCP_NODELAY),
        ("TCP_MAXSEG unconnected", tcp, libc::IPPROTO_TCP, libc::TCP_MAXSEG),
        ("IP_TTL", tcp, libc::IPPROTO_IP, libc::IP_TTL),
        (
            "IPV6_V6ONLY on TCP6",
            |p| p.sock(libc::AF_INET6, SOCK_STREAM),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
        ),
        (
            "IPV6_V6ONLY on an AF_INET socket",
            tcp,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
        ),
        ("TCP_NODELAY on UDP", Probe::udp4, libc::IPPROTO_TCP, libc::TCP_NODELAY),
        (
            "TCP_NODELAY on AF_UNIX",
            |p| p.sock(AF_UNIX, SOCK_STREAM),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
        ),
        ("level 12345", tcp, 12345, libc::SO_TYPE),
        ("level -1", tcp, -1, libc::SO_TYPE),
        ("SOL_SOCKET optname 12345", tcp, libc::SOL_SOCKET, 12345),
    ];
    let mut cases: Vec<Case> = options
        .into_iter()
        .map(|(name, prepare, level, opt)| {
            Case::new(name, move |p| {
                let fd = prepare(p);
                getopt_into(p, fd, level, opt, 64);
            })
        })
        .collect();
    let lens: [socklen_t; 11] = [0, 1, 2, 3, 4, 5, 8, 64, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF];
    cases.extend(value_cases("SO_TYPE optlen", &lens, |p, len| {
        let fd = p.tcp4();
        getopt_into(p, fd, libc::SOL_SOCKET, libc::SO_TYPE, len);
    }));
    cases.extend(value_cases("SO_LINGER optlen", &[0, 4, 7, 9], |p, len| {
        let fd = p.tcp4();
        getopt_into(p, fd, libc::SOL_SOCKET, libc::SO_LINGER, len);
    }));
    cases.extend(wild_cases("optval", &Wild::FOR_OUTPUT, |p, wild| {
        let fd = p.tcp4();
        let mut len = size_of::<c_int>() as socklen_t;
        // SAFETY: len is live; the wild pointer only reaches the kernel.
        p.call(fd, |api| unsafe {
            (api.getsockopt)(fd, libc::SOL_SOCKET, libc::SO_TYPE, wild.ptr(), &mut len)
        });
        p.out("optlen", len);
    }));
    cases.extend(wild_cases("optlen pointer", &Wild::FOR_OUTPUT, |p, wild| {
        let fd = p.tcp4();
        let mut value = OptBuf([PATTERN; 64]);
        // SAFETY: value is live; the wild pointer only reaches the kernel.
        p.call(fd, |api| unsafe {
            (api.getsockopt)(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TYPE,
                value.0.as_mut_ptr().cast(),
                wild.ptr(),
            )
        });
        p.out("optval", escape(&value.0[..8]));
    }));
    cases.extend(bad_fd_cases(|p, fd| {
        getopt_into(p, fd, libc::SOL_SOCKET, libc::SO_TYPE, 4)
    }));
    Table {
        func: "ss_getsockopt",
        cases,
    }
}

/// An option value to set.
#[derive(Clone, Copy)]
enum OptValue {
    Int(c_int),
    Linger(c_int, c_int),
    Timeval(libc::time_t, libc::suseconds_t),
    Bytes(&'static [u8]),
}

impl OptValue {
    /// The value's bytes in a buffer larger than any length a case passes.
    fn buffer(self) -> OptBuf {
        let mut buf = OptBuf([0; 64]);
        let bytes: Vec<u8> = match self {
            OptValue::Int(v) => v.to_ne_bytes().to_vec(),
            OptValue::Linger(on, secs) => [on.to_ne_bytes(), secs.to_ne_bytes()].concat(),
            OptValue::Timeval(sec, usec) => [sec.to_ne_bytes(), usec.to_ne_bytes()].concat(),
            OptValue::Bytes(b) => b.to_vec(),
        };
        buf.0[..bytes.len()].copy_from_slice(&bytes);
        buf
    }

    fn len(self) -> socklen_t {
        let n = match self {
            OptValue::Int(_) => size_of::<c_int>(),
            OptValue::Linger(..) => size_of::<libc::linger>(),
            OptValue::Timeval(..) => size_of::<libc::timeval>(),
            OptValue::Bytes(b) => b.len(),
        };
        socklen_t::try_from(n).expect("small")
    }
}

/// Reads an option back with plain libc after a `setsockopt` case.
fn read_back(p: &mut Probe, fd: c_int, level: c_int, name: c_int) {
    let mut value = OptBuf([PATTERN; 64]);
    let mut len: socklen_t = 64;
    // SAFETY: value is a live 64-byte buffer and len says so.
    let rc = unsafe { libc::getsockopt(fd, level, name, value.0.as_mut_ptr().cast::<c_void>(), &mut len) };
    let text = if rc == 0 {
        escape(&value.0[..len.min(64) as usize])
    } else {
        format!("errno {}", crate::common::errno())
    };
    p.out("value read back", text);
}

fn setopt(p: &mut Probe, fd: c_int, level: c_int, name: c_int, value: OptValue, len: socklen_t) {
    let buf = value.buffer();
    // SAFETY: buf is a live 64-byte buffer; the kernel reads at most the
    // option's own size from it whatever length is passed.
    p.call(fd, |api| unsafe {
        (api.setsockopt)(fd, level, name, buf.0.as_ptr().cast(), len)
    });
    read_back(p, fd, level, name);
}

pub fn setsockopt() -> Table {
    type Opt = (&'static str, Prepare, c_int, c_int, OptValue);
    let sol = libc::SOL_SOCKET;
    let options: [Opt; 22] = [
        ("SO_REUSEADDR 1", tcp, sol, libc::SO_REUSEADDR, OptValue::Int(1)),
        ("SO_REUSEPORT 1", Probe::udp4, sol, libc::SO_REUSEPORT, OptValue::Int(1)),
        ("SO_KEEPALIVE 1", tcp, sol, libc::SO_KEEPALIVE, OptValue::Int(1)),
        ("SO_RCVBUF 65536", tcp, sol, libc::SO_RCVBUF, OptValue::Int(65536)),
        ("SO_SNDBUF 0 (clamped)", tcp, sol, libc::SO_SNDBUF, OptValue::Int(0)),
        ("SO_LINGER on, 5 s", tcp, sol, libc::SO_LINGER, OptValue::Linger(1, 5)),
        (
            "SO_RCVTIMEO 1.5 s",
            tcp,
            sol,
            libc::SO_RCVTIMEO,
            OptValue::Timeval(1, 500_000),
        ),
        (
            "SO_RCVTIMEO usec 1000000",
            tcp,
            sol,
            libc::SO_RCVTIMEO,
            OptValue::Timeval(0, 1_000_000),
        ),
        (
            "SO_SNDTIMEO negative seconds",
            tcp,
            sol,
            libc::SO_SNDTIMEO,
            OptValue::Timeval(-1, 0),
        ),
        (
            "SO_PASSCRED on AF_UNIX",
            |p| p.sock(AF_UNIX, SOCK_DGRAM),
            sol,
            libc::SO_PASSCRED,
            OptValue::Int(1),
        ),
        (
            "SO_BINDTODEVICE lo",
            tcp,
            sol,
            libc::SO_BINDTODEVICE,
            OptValue::Bytes(b"lo\0"),
        ),
        (
            "SO_BINDTODEVICE unknown device",
            tcp,
            sol,
            libc::SO_BINDTODEVICE,
            OptValue::Bytes(b"nosuchdev0\0"),
        ),
        ("SO_TYPE (read-only)", tcp, sol, libc::SO_TYPE, OptValue::Int(1)),
        (
            "TCP_NODELAY 1",
            tcp,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            OptValue::Int(1),
        ),
        (
            "TCP_NODELAY on UDP",
            Probe::udp4,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            OptValue::Int(1),
        ),
        ("IP_TTL 64", tcp, libc::IPPROTO_IP, libc::IP_TTL, OptValue::Int(64)),
        ("IP_TTL 0", tcp, libc::IPPROTO_IP, libc::IP_TTL, OptValue::Int(0)),
        ("IP_TTL 256", tcp, libc::IPPROTO_IP, libc::IP_TTL, OptValue::Int(256)),
        (
            "IPV6_V6ONLY 1 on TCP6",
            |p| p.sock(libc::AF_INET6, SOCK_STREAM),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            OptValue::Int(1),
        ),
        (
            "IPV6_V6ONLY on an AF_INET socket",
            tcp,
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            OptValue::Int(1),
        ),
        ("level 12345", tcp, 12345, libc::SO_REUSEADDR, OptValue::Int(1)),
        ("SOL_SOCKET optname 12345", tcp, sol, 12345, OptValue::Int(1)),
    ];
    let mut cases: Vec<Case> = options
        .into_iter()
        .map(|(name, prepare, level, opt, value)| {
            Case::new(name, move |p| {
                let fd = prepare(p);
                setopt(p, fd, level, opt, value, value.len());
            })
        })
        .collect();
    let lens: [socklen_t; 10] = [0, 1, 2, 3, 4, 8, 64, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF];
    cases.extend(value_cases("SO_REUSEADDR optlen", &lens, |p, len| {
        let fd = p.tcp4();
        setopt(p, fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, OptValue::Int(1), len);
    }));
    cases.extend(wild_cases("optval", &Wild::FOR_INPUT, |p, wild| {
        let fd = p.tcp4();
        // SAFETY: the wild pointer only reaches the kernel, which faults on it.
        p.call(fd, |api| unsafe {
            (api.setsockopt)(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, wild.ptr(), 4)
        });
        read_back(p, fd, libc::SOL_SOCKET, libc::SO_REUSEADDR);
    }));
    cases.push(Case::new("optval NULL, optlen 0", |p| {
        let fd = p.tcp4();
        // SAFETY: a NULL value with length 0 is passed to the kernel unread.
        p.call(fd, |api| unsafe {
            (api.setsockopt)(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, std::ptr::null(), 0)
        });
    }));
    cases.extend(bad_fd_cases(|p, fd| {
        let buf = OptValue::Int(1).buffer();
        // SAFETY: buf is a live 64-byte buffer; 4 bytes are passed.
        p.call(fd, |api| unsafe {
            (api.setsockopt)(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, buf.0.as_ptr().cast(), 4)
        });
    }));
    Table {
        func: "ss_setsockopt",
        cases,
    }
}
