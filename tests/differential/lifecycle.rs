//! Cases for creating, binding, connecting, shutting down and closing sockets.

use std::net::Ipv6Addr;
use std::os::unix::ffi::OsStrExt;

use libc::{AF_INET, AF_INET6, AF_UNIX, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, c_int, socklen_t};

use crate::common::{Wild, reserve_fd};
use crate::fixtures::{ADDR_LENS, Family, RawAddr, bad_fd_cases, value_cases, wait_for, wild_cases};
use crate::harness::{Case, Observed, Owned, Probe, Table};

/// `(name, domain, type, protocol)` for `socket`/`socketpair`.
type Triple = (&'static str, c_int, c_int, c_int);

const SOCKET_TRIPLES: &[Triple] = &[
    ("AF_INET SOCK_STREAM 0", AF_INET, SOCK_STREAM, 0),
    ("AF_INET SOCK_DGRAM 0", AF_INET, SOCK_DGRAM, 0),
    (
        "AF_INET SOCK_STREAM IPPROTO_TCP",
        AF_INET,
        SOCK_STREAM,
        libc::IPPROTO_TCP,
    ),
    ("AF_INET6 SOCK_STREAM 0", AF_INET6, SOCK_STREAM, 0),
    (
        "AF_INET6 SOCK_DGRAM IPPROTO_UDP",
        AF_INET6,
        SOCK_DGRAM,
        libc::IPPROTO_UDP,
    ),
    ("AF_UNIX SOCK_STREAM 0", AF_UNIX, SOCK_STREAM, 0),
    ("AF_UNIX SOCK_DGRAM 0", AF_UNIX, SOCK_DGRAM, 0),
    ("AF_UNIX SOCK_SEQPACKET 0", AF_UNIX, SOCK_SEQPACKET, 0),
    (
        "AF_INET SOCK_STREAM|SOCK_NONBLOCK",
        AF_INET,
        SOCK_STREAM | libc::SOCK_NONBLOCK,
        0,
    ),
    (
        "AF_INET SOCK_STREAM|SOCK_CLOEXEC",
        AF_INET,
        SOCK_STREAM | libc::SOCK_CLOEXEC,
        0,
    ),
    (
        "AF_UNIX SOCK_DGRAM|SOCK_NONBLOCK|SOCK_CLOEXEC",
        AF_UNIX,
        SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        0,
    ),
    (
        "AF_INET SOCK_DGRAM IPPROTO_ICMP (ping)",
        AF_INET,
        SOCK_DGRAM,
        libc::IPPROTO_ICMP,
    ),
    (
        "AF_INET SOCK_RAW IPPROTO_ICMP",
        AF_INET,
        libc::SOCK_RAW,
        libc::IPPROTO_ICMP,
    ),
    (
        "AF_NETLINK SOCK_RAW NETLINK_ROUTE",
        libc::AF_NETLINK,
        libc::SOCK_RAW,
        libc::NETLINK_ROUTE,
    ),
    ("domain -1", -1, SOCK_STREAM, 0),
    ("domain 12345", 12345, SOCK_STREAM, 0),
    ("domain AF_UNSPEC", libc::AF_UNSPEC, SOCK_STREAM, 0),
    ("type -1", AF_INET, -1, 0),
    ("type 0", AF_INET, 0, 0),
    ("type 12345", AF_INET, 12345, 0),
    (
        "type with unknown flag bit 0x100000",
        AF_INET,
        SOCK_STREAM | 0x10_0000,
        0,
    ),
    ("type INT_MIN", AF_INET, c_int::MIN, 0),
    (
        "AF_INET SOCK_STREAM IPPROTO_UDP",
        AF_INET,
        SOCK_STREAM,
        libc::IPPROTO_UDP,
    ),
    ("protocol -1", AF_INET, SOCK_STREAM, -1),
    ("protocol INT_MAX", AF_INET, SOCK_DGRAM, c_int::MAX),
    ("AF_UNIX SOCK_RAW", AF_UNIX, libc::SOCK_RAW, 0),
    ("AF_UNIX SOCK_STREAM protocol 1", AF_UNIX, SOCK_STREAM, 1),
];

pub fn socket() -> Table {
    let cases = SOCKET_TRIPLES
        .iter()
        .map(|&(name, domain, ty, protocol)| {
            Case::new(name, move |p| {
                // SAFETY: socket takes no pointer.
                p.call_new_fd(-1, |api| unsafe { (api.socket)(domain, ty, protocol) });
            })
        })
        .collect();
    Table {
        func: "ss_socket",
        cases,
    }
}

/// Records `sv` after `socketpair`: on success the two descriptors (by their
/// properties) and whether they are connected to each other; otherwise
/// whether each entry was written.
fn observe_pair(p: &mut Probe, sv: [c_int; 2]) {
    if p.ret() == 0 {
        p.adopt_new_fd("sv[0]", sv[0]);
        p.adopt_new_fd("sv[1]", sv[1]);
        // SAFETY: both are descriptors the call just created; the buffers are live.
        let echoed = unsafe {
            libc::send(sv[0], b"x".as_ptr().cast(), 1, libc::MSG_DONTWAIT);
            let mut got = [0u8; 1];
            libc::recv(sv[1], got.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT)
        };
        p.out("sv[1] receives from sv[0]", echoed);
    } else {
        // Linux writes the numbers it reserved into sv before creating the
        // sockets, so a failed call may leave (now unused) numbers there:
        // which numbers depends on other threads; whether they were written not.
        let written = sv.map(|fd| if fd == UNTOUCHED { "untouched" } else { "overwritten" });
        p.out("sv", format!("{written:?}"));
    }
}

const UNTOUCHED: c_int = -7;

pub fn socketpair() -> Table {
    let mut cases: Vec<Case> = [
        ("AF_UNIX SOCK_STREAM", AF_UNIX, SOCK_STREAM, 0),
        ("AF_UNIX SOCK_DGRAM", AF_UNIX, SOCK_DGRAM, 0),
        ("AF_UNIX SOCK_SEQPACKET", AF_UNIX, SOCK_SEQPACKET, 0),
        (
            "AF_UNIX SOCK_STREAM|SOCK_NONBLOCK",
            AF_UNIX,
            SOCK_STREAM | libc::SOCK_NONBLOCK,
            0,
        ),
        (
            "AF_UNIX SOCK_DGRAM|SOCK_CLOEXEC",
            AF_UNIX,
            SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ),
        ("AF_INET SOCK_STREAM", AF_INET, SOCK_STREAM, 0),
        ("AF_INET6 SOCK_DGRAM", AF_INET6, SOCK_DGRAM, 0),
        ("domain -1", -1, SOCK_STREAM, 0),
        ("type -1", AF_UNIX, -1, 0),
        ("type with unknown flag bit", AF_UNIX, SOCK_STREAM | 0x10_0000, 0),
        ("AF_UNIX SOCK_RAW", AF_UNIX, libc::SOCK_RAW, 0),
        ("AF_UNIX protocol 1", AF_UNIX, SOCK_STREAM, 1),
    ]
    .into_iter()
    .map(|(name, domain, ty, protocol)| {
        Case::new(name, move |p| {
            let mut sv = [UNTOUCHED; 2];
            // SAFETY: sv is a live two-element array.
            p.call(-1, |api| unsafe {
                (api.socketpair)(domain, ty, protocol, sv.as_mut_ptr())
            });
            observe_pair(p, sv);
        })
    })
    .collect();
    cases.extend(wild_cases("sv", &Wild::FOR_OUTPUT, |p, wild| {
        // SAFETY: the wild pointer only reaches the kernel, which faults on it (EFAULT).
        p.call(-1, |api| unsafe {
            (api.socketpair)(AF_UNIX, SOCK_STREAM, 0, wild.ptr())
        });
    }));
    cases.push(Case::new("sv misaligned by one byte", |p| {
        let mut raw = [0u8; 12];
        let sv_ptr = raw.as_mut_ptr().wrapping_add(1).cast::<c_int>();
        // SAFETY: sv_ptr points at 8 writable bytes inside raw; the kernel
        // writes them without any alignment requirement.
        p.call(-1, |api| unsafe { (api.socketpair)(AF_UNIX, SOCK_STREAM, 0, sv_ptr) });
        // SAFETY: as above; read_unaligned copes with the alignment.
        let sv = unsafe { [sv_ptr.read_unaligned(), sv_ptr.add(1).read_unaligned()] };
        observe_pair(p, sv);
    }));
    Table {
        func: "ss_socketpair",
        cases,
    }
}

/// A case calling `bind` on a fresh socket of `family`/`ty` with an address
/// built by `addr` and its own length.
fn bind_case(name: &str, family: Family, ty: c_int, addr: fn(&mut Probe) -> RawAddr) -> Case {
    Case::new(name, move |p| {
        let fd = p.sock(family.domain(), ty);
        let a = addr(p);
        // SAFETY: a is a live 256-byte buffer; a.len is at most that.
        p.call(fd, |api| unsafe { (api.bind)(fd, a.ptr(), a.len) });
        p.out_sockname("local address after", fd);
    })
}

fn loopback_v4(_: &mut Probe) -> RawAddr {
    RawAddr::v4([127, 0, 0, 1], 0)
}

pub fn bind() -> Table {
    let mut cases = vec![
        bind_case("AF_INET 127.0.0.1:0", Family::V4, SOCK_STREAM, loopback_v4),
        bind_case("AF_INET 0.0.0.0:0", Family::V4, SOCK_STREAM, |_| RawAddr::v4([0; 4], 0)),
        bind_case("AF_INET UDP 127.0.0.1:0", Family::V4, SOCK_DGRAM, loopback_v4),
        bind_case("AF_INET6 [::1]:0", Family::V6, SOCK_STREAM, |_| {
            RawAddr::v6(Ipv6Addr::LOCALHOST, 0)
        }),
        bind_case("AF_INET6 v4-mapped 127.0.0.1", Family::V6, SOCK_STREAM, |_| {
            RawAddr::v6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1), 0)
        }),
        bind_case("AF_INET6 address on AF_INET socket", Family::V4, SOCK_STREAM, |_| {
            RawAddr::v6(Ipv6Addr::LOCALHOST, 0)
        }),
        bind_case(
            "AF_INET address on AF_INET6 socket",
            Family::V6,
            SOCK_STREAM,
            loopback_v4,
        ),
        bind_case("AF_UNSPEC INADDR_ANY on AF_INET", Family::V4, SOCK_STREAM, |_| {
            RawAddr::v4([0; 4], 0).with_family(libc::AF_UNSPEC)
        }),
        bind_case("AF_UNSPEC 127.0.0.1 on AF_INET", Family::V4, SOCK_STREAM, |_| {
            RawAddr::v4([127, 0, 0, 1], 0).with_family(libc::AF_UNSPEC)
        }),
        bind_case("family 12345", Family::V4, SOCK_STREAM, |_| {
            RawAddr::v4([127, 0, 0, 1], 0).with_family(12345)
        }),
        bind_case("non-local 198.51.100.1", Family::V4, SOCK_STREAM, |_| {
            RawAddr::v4([198, 51, 100, 1], 0)
        }),
        bind_case("port held by a listener", Family::V4, SOCK_STREAM, |p| {
            p.listener(Family::V4, SOCK_STREAM).1
        }),
        bind_case("AF_UNIX path", Family::UnixPath, SOCK_STREAM, |p| {
            p.unix_addr(Family::UnixPath)
        }),
        bind_case("AF_UNIX path that exists", Family::UnixPath, SOCK_STREAM, |p| {
            p.bound(Family::UnixPath, SOCK_DGRAM).1
        }),
        bind_case(
            "AF_UNIX path in a missing directory",
            Family::UnixPath,
            SOCK_STREAM,
            |p| {
                let dir = p.dir();
                RawAddr::unix(format!("{}/missing/s", dir.display()).as_bytes(), 1)
            },
        ),
        bind_case("AF_UNIX abstract name", Family::UnixAbstract, SOCK_DGRAM, |p| {
            p.unix_addr(Family::UnixAbstract)
        }),
        bind_case("AF_UNIX autobind (addrlen 2)", Family::UnixPath, SOCK_SEQPACKET, |_| {
            RawAddr::unix(b"", 0)
        }),
        bind_case(
            "AF_UNIX 108-byte path without NUL (addrlen 110)",
            Family::UnixPath,
            SOCK_STREAM,
            |p| {
                let dir = p.dir().display().to_string();
                let name = format!("{dir}/{}", "x".repeat(107 - dir.len()));
                let path = p.path(&name[dir.len() + 1..]);
                p.mark(path.display().to_string().into_bytes());
                RawAddr::unix(name.as_bytes(), 0)
            },
        ),
        bind_case(
            "AF_INET address on AF_UNIX socket",
            Family::UnixPath,
            SOCK_STREAM,
            loopback_v4,
        ),
    ];
    cases.push(Case::new("bound twice", |p| {
        let (fd, _) = p.bound(Family::V4, SOCK_STREAM);
        let a = RawAddr::v4([127, 0, 0, 1], 0);
        // SAFETY: a is a live buffer holding a.len valid bytes.
        p.call(fd, |api| unsafe { (api.bind)(fd, a.ptr(), a.len) });
    }));
    cases.extend(value_cases("addrlen", &ADDR_LENS, |p, len| {
        let fd = p.tcp4();
        let a = RawAddr::v4([127, 0, 0, 1], 0);
        // SAFETY: a is a 256-byte buffer, so every length up to 256 is
        // readable; larger lengths are rejected by the kernel before reading.
        p.call(fd, |api| unsafe { (api.bind)(fd, a.ptr(), len) });
        p.out_sockname("local address after", fd);
    }));
    cases.extend(wild_cases("addr", &Wild::FOR_INPUT, |p, wild| {
        let fd = p.tcp4();
        // SAFETY: the wild pointer only reaches the kernel, which faults on it.
        p.call(fd, |api| unsafe { (api.bind)(fd, wild.ptr(), 16) });
    }));
    cases.extend(bad_fd_cases(|p, fd| {
        let a = RawAddr::v4([127, 0, 0, 1], 0);
        // SAFETY: a is a live buffer holding a.len valid bytes.
        p.call(fd, |api| unsafe { (api.bind)(fd, a.ptr(), a.len) });
    }));
    Table { func: "ss_bind", cases }
}

/// A case calling `listen(fd, backlog)` on a socket `prepare` makes.
fn listen_case(name: &str, backlog: c_int, prepare: fn(&mut Probe) -> c_int) -> Case {
    Case::new(name, move |p| {
        let fd = prepare(p);
        // SAFETY: listen takes no pointer.
        p.call(fd, |api| unsafe { (api.listen)(fd, backlog) });
        p.out_sockopt("SO_ACCEPTCONN after", fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN);
        p.out_sockname("local address after", fd);
    })
}

fn bound_tcp4(p: &mut Probe) -> c_int {
    p.bound(Family::V4, SOCK_STREAM).0
}

pub fn listen() -> Table {
    let mut cases = vec![
        listen_case("bound TCP", 16, bound_tcp4),
        listen_case("unbound TCP (binds a port)", 16, Probe::tcp4),
        listen_case("bound TCP6", 16, |p| p.bound(Family::V6, SOCK_STREAM).0),
        listen_case("UDP", 16, |p| p.bound(Family::V4, SOCK_DGRAM).0),
        listen_case("connected TCP client", 16, |p| p.tcp_conn().client),
        listen_case("already listening", 4, |p| p.listener(Family::V4, SOCK_STREAM).0),
        listen_case("AF_UNIX stream bound to a path", 16, |p| {
            p.bound(Family::UnixPath, SOCK_STREAM).0
        }),
        listen_case("AF_UNIX stream unbound", 16, |p| p.sock(AF_UNIX, SOCK_STREAM)),
        listen_case("AF_UNIX seqpacket abstract", 16, |p| {
            p.bound(Family::UnixAbstract, SOCK_SEQPACKET).0
        }),
        listen_case("AF_UNIX dgram", 16, |p| p.bound(Family::UnixPath, SOCK_DGRAM).0),
        listen_case("AF_UNIX socketpair end", 16, |p| p.pair(SOCK_STREAM).0),
    ];
    cases.extend(value_cases(
        "backlog",
        &[-1, 0, c_int::MAX, c_int::MIN],
        |p, backlog| {
            let fd = bound_tcp4(p);
            // SAFETY: listen takes no pointer.
            p.call(fd, |api| unsafe { (api.listen)(fd, backlog) });
            p.out_sockopt("SO_ACCEPTCONN after", fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN);
        },
    ));
    cases.extend(bad_fd_cases(|p, fd| {
        // SAFETY: listen takes no pointer.
        p.call(fd, |api| unsafe { (api.listen)(fd, 16) });
    }));
    Table {
        func: "ss_listen",
        cases,
    }
}

/// A case calling `connect` from a fresh socket of `domain`/`ty` to the
/// address `target` prepares; records both addresses afterwards.
fn connect_case(name: &str, domain: c_int, ty: c_int, target: fn(&mut Probe) -> RawAddr) -> Case {
    Case::new(name, move |p| {
        let a = target(p);
        let fd = p.sock(domain, ty);
        // SAFETY: a is a live 256-byte buffer; a.len is at most that.
        p.call(fd, |api| unsafe { (api.connect)(fd, a.ptr(), a.len) });
        p.out_peername("peer after", fd);
        p.out_sockname("local after", fd);
    })
}

fn listening_v4(p: &mut Probe) -> RawAddr {
    p.listener(Family::V4, SOCK_STREAM).1
}

pub fn connect() -> Table {
    let mut cases = vec![
        connect_case("TCP to a 127.0.0.1 listener", AF_INET, SOCK_STREAM, listening_v4),
        connect_case("TCP to a [::1] listener", AF_INET6, SOCK_STREAM, |p| {
            p.listener(Family::V6, SOCK_STREAM).1
        }),
        connect_case("TCP to a closed port", AF_INET, SOCK_STREAM, |p| {
            p.closed_addr(Family::V4)
        }),
        connect_case("TCP6 to a closed port", AF_INET6, SOCK_STREAM, |p| {
            p.closed_addr(Family::V6)
        }),
        connect_case("TCP to port 0", AF_INET, SOCK_STREAM, loopback_v4),
        connect_case("TCP with an AF_INET6 address", AF_INET, SOCK_STREAM, |p| {
            p.listener(Family::V6, SOCK_STREAM).1
        }),
        connect_case("TCP6 with an AF_INET address", AF_INET6, SOCK_STREAM, listening_v4),
        connect_case("TCP AF_UNSPEC while unconnected", AF_INET, SOCK_STREAM, |_| {
            RawAddr::v4([0; 4], 0).with_family(libc::AF_UNSPEC)
        }),
        connect_case("UDP to 127.0.0.1", AF_INET, SOCK_DGRAM, |p| {
            p.bound(Family::V4, SOCK_DGRAM).1
        }),
        connect_case("AF_UNIX stream to a path listener", AF_UNIX, SOCK_STREAM, |p| {
            p.listener(Family::UnixPath, SOCK_STREAM).1
        }),
        connect_case(
            "AF_UNIX seqpacket to an abstract listener",
            AF_UNIX,
            SOCK_SEQPACKET,
            |p| p.listener(Family::UnixAbstract, SOCK_SEQPACKET).1,
        ),
        connect_case("AF_UNIX stream to a missing path", AF_UNIX, SOCK_STREAM, |p| {
            p.unix_addr(Family::UnixPath)
        }),
        connect_case("AF_UNIX stream to a regular file", AF_UNIX, SOCK_STREAM, |p| {
            let a = p.unix_addr(Family::UnixPath);
            let path = std::ffi::OsStr::from_bytes(&a.bytes[2..a.len as usize - 1]).to_owned();
            std::fs::write(path, b"not a socket").expect("write the file");
            a
        }),
        connect_case(
            "AF_UNIX stream to a bound, not listening socket",
            AF_UNIX,
            SOCK_STREAM,
            |p| p.bound(Family::UnixPath, SOCK_STREAM).1,
        ),
        connect_case("AF_UNIX stream to a dgram socket", AF_UNIX, SOCK_STREAM, |p| {
            p.bound(Family::UnixPath, SOCK_DGRAM).1
        }),
        connect_case("AF_UNIX dgram to a bound dgram socket", AF_UNIX, SOCK_DGRAM, |p| {
            p.bound(Family::UnixAbstract, SOCK_DGRAM).1
        }),
        connect_case(
            "AF_UNIX stream with an AF_INET address",
            AF_UNIX,
            SOCK_STREAM,
            listening_v4,
        ),
    ];
    cases.push(Case::new("TCP connected twice", |p| {
        let (fd, _) = p.pending(Family::V4, SOCK_STREAM);
        let a = crate::fixtures::sockname(fd);
        let peer = peer_of(fd);
        // SAFETY: peer is a live buffer holding peer.len valid bytes.
        p.call(fd, |api| unsafe { (api.connect)(fd, peer.ptr(), peer.len) });
        p.out_addr("own address", &a, a.len);
    }));
    cases.push(Case::new("TCP on a listening socket", |p| {
        let (fd, _) = p.listener(Family::V4, SOCK_STREAM);
        let target = listening_v4(p);
        // SAFETY: target is a live buffer holding target.len valid bytes.
        p.call(fd, |api| unsafe { (api.connect)(fd, target.ptr(), target.len) });
    }));
    cases.push(Case::new("UDP AF_UNSPEC dissolves the association", |p| {
        let (fd, _) = p.udp_conn();
        let a = RawAddr::v4([0; 4], 0).with_family(libc::AF_UNSPEC);
        // SAFETY: a is a live buffer holding a.len valid bytes.
        p.call(fd, |api| unsafe { (api.connect)(fd, a.ptr(), a.len) });
        p.out_peername("peer after", fd);
    }));
    cases.push(Case::new("AF_UNIX non-blocking to a full backlog", |p| {
        let (listener, a) = p.bound(Family::UnixPath, SOCK_STREAM);
        // SAFETY: listen takes no pointer.
        assert_eq!(unsafe { (p.api.listen)(listener, 0) }, 0);
        let first = p.sock(AF_UNIX, SOCK_STREAM);
        // SAFETY: a is a live buffer holding a.len valid bytes.
        assert_eq!(unsafe { (p.api.connect)(first, a.ptr(), a.len) }, 0);
        let fd = p.sock(AF_UNIX, SOCK_STREAM | libc::SOCK_NONBLOCK);
        // SAFETY: as above.
        p.call(fd, |api| unsafe { (api.connect)(fd, a.ptr(), a.len) });
    }));
    cases.extend(value_cases("addrlen", &ADDR_LENS, |p, len| {
        let a = listening_v4(p);
        let fd = p.tcp4();
        // SAFETY: a is a 256-byte buffer, so every length up to 256 is
        // readable; larger lengths are rejected before the kernel reads.
        p.call(fd, |api| unsafe { (api.connect)(fd, a.ptr(), len) });
        p.out_peername("peer after", fd);
    }));
    cases.extend(wild_cases("addr", &Wild::FOR_INPUT, |p, wild| {
        let fd = p.tcp4();
        // SAFETY: the wild pointer only reaches the kernel, which faults on it.
        p.call(fd, |api| unsafe { (api.connect)(fd, wild.ptr(), 16) });
    }));
    cases.extend(bad_fd_cases(|p, fd| {
        let a = listening_v4(p);
        // SAFETY: a is a live buffer holding a.len valid bytes.
        p.call(fd, |api| unsafe { (api.connect)(fd, a.ptr(), a.len) });
    }));
    Table {
        func: "ss_connect",
        cases,
    }
}

/// The peer address of a connected socket as libc reports it.
fn peer_of(fd: c_int) -> RawAddr {
    let mut raw = RawAddr::pattern();
    let mut len: socklen_t = 128;
    // SAFETY: raw is a live 256-byte buffer and len says 128.
    let rc = unsafe { libc::getpeername(fd, raw.mut_ptr(), &mut len) };
    assert_eq!(rc, 0, "getpeername");
    raw.len = len;
    raw
}

/// A case calling `shutdown(fd, how)` on the local end `prepare` returns
/// (with its peer, or -1), then recording what each end reads now.
fn shutdown_case(name: &str, how: c_int, prepare: fn(&mut Probe) -> (c_int, c_int)) -> Case {
    Case::new(name, move |p| {
        let (fd, peer) = prepare(p);
        // SAFETY: shutdown takes no pointer.
        p.call(fd, |api| unsafe { (api.shutdown)(fd, how) });
        if peer >= 0 && (how == libc::SHUT_WR || how == libc::SHUT_RDWR) && p.ret() == 0 {
            p.out(
                "peer sees end of stream",
                wait_for(peer, libc::POLLIN | libc::POLLRDHUP),
            );
        }
        p.out_arrived("local end reads", fd, 0);
    })
}

fn unix_pair(p: &mut Probe) -> (c_int, c_int) {
    p.pair(SOCK_STREAM)
}

fn tcp_pair(p: &mut Probe) -> (c_int, c_int) {
    let c = p.tcp_conn();
    (c.client, c.server)
}

pub fn shutdown() -> Table {
    let mut cases = vec![
        shutdown_case("TCP SHUT_RD", libc::SHUT_RD, tcp_pair),
        shutdown_case("TCP SHUT_WR", libc::SHUT_WR, tcp_pair),
        shutdown_case("TCP SHUT_RDWR", libc::SHUT_RDWR, tcp_pair),
        shutdown_case("AF_UNIX stream SHUT_WR", libc::SHUT_WR, unix_pair),
        shutdown_case("AF_UNIX seqpacket SHUT_RDWR", libc::SHUT_RDWR, |p| {
            p.pair(SOCK_SEQPACKET)
        }),
        shutdown_case("unconnected TCP", libc::SHUT_RDWR, |p| (p.tcp4(), -1)),
        shutdown_case("listening TCP SHUT_RD", libc::SHUT_RD, |p| {
            (p.listener(Family::V4, SOCK_STREAM).0, -1)
        }),
        shutdown_case("listening TCP SHUT_WR", libc::SHUT_WR, |p| {
            (p.listener(Family::V4, SOCK_STREAM).0, -1)
        }),
        shutdown_case("unconnected UDP", libc::SHUT_RDWR, |p| (p.udp4(), -1)),
        shutdown_case("connected UDP", libc::SHUT_RDWR, |p| (p.udp_conn().0, -1)),
        shutdown_case("unconnected AF_UNIX dgram", libc::SHUT_WR, |p| {
            (p.sock(AF_UNIX, SOCK_DGRAM), -1)
        }),
    ];
    cases.push(Case::new("TCP SHUT_WR twice", |p| {
        let (fd, _) = tcp_pair(p);
        // SAFETY: shutdown takes no pointer.
        assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_WR) }, 0);
        // SAFETY: as above.
        p.call(fd, |api| unsafe { (api.shutdown)(fd, libc::SHUT_WR) });
    }));
    cases.extend(value_cases("how", &[-1, 3, 42, c_int::MIN, c_int::MAX], |p, how| {
        let (fd, _) = unix_pair(p);
        // SAFETY: shutdown takes no pointer.
        p.call(fd, |api| unsafe { (api.shutdown)(fd, how) });
    }));
    cases.extend(bad_fd_cases(|p, fd| {
        // SAFETY: shutdown takes no pointer.
        p.call(fd, |api| unsafe { (api.shutdown)(fd, libc::SHUT_RDWR) });
    }));
    Table {
        func: "ss_shutdown",
        cases,
    }
}

/// Calls `close(fd)`; on success the probe no longer owns `fd`.
fn close_and_record(p: &mut Probe, fd: c_int) {
    // SAFETY: close takes no pointer; fd is the probe's own (or not open at all).
    p.call(fd, |api| unsafe { (api.close)(fd) });
    if p.ret() == 0 {
        p.forget(fd);
    }
}

/// A socket made through the probe's side, duplicated to a fresh reserved
/// number with plain libc (so no other thread can be handed that number),
/// the original closed through the side. The duplicate is owned by the side.
fn socket_at_reserved(p: &mut Probe) -> c_int {
    let fd = p.tcp4();
    let reserved = reserve_fd();
    // SAFETY: reserved numbers are never open before this dup2.
    assert_eq!(unsafe { libc::dup2(fd, reserved) }, reserved);
    p.close_now(fd);
    p.own(Owned::ByApi(reserved));
    reserved
}

/// Reopens the (closed) number `fd` with a pipe made by plain libc.
fn reopen_with_pipe(p: &mut Probe, fd: c_int) {
    let (read_end, _) = p.pipe_with(b"x");
    // SAFETY: fd is a reserved number this probe just closed; dup2 makes it
    // the pipe's read end again.
    assert_eq!(unsafe { libc::dup2(read_end, fd) }, fd);
    p.own(Owned::ByLibc(fd));
}

/// The documented difference 3: `ss_close` refuses a number it already
/// closed even though plain libc reopened it, and closes nothing.
fn double_close_refused(libc_side: &Observed, ss_side: &Observed) -> Result<(), String> {
    let open_after = |o: &Observed| {
        o.outs
            .iter()
            .find(|(l, _)| l == "reopened fd open after")
            .map(|(_, v)| v.clone())
    };
    let libc_ok =
        libc_side.ret == "0" && libc_side.errno == "untouched" && open_after(libc_side).as_deref() == Some("false");
    let ss_ok =
        ss_side.ret == "-1" && ss_side.errno.starts_with("EBADF") && open_after(ss_side).as_deref() == Some("true");
    if libc_ok && ss_ok {
        Ok(())
    } else {
        Err(
            "expected libc to close the reopened number (0) and ss_close to refuse it (-1/EBADF) leaving it open"
                .to_owned(),
        )
    }
}

pub fn close() -> Table {
    let mut cases = vec![
        Case::new("TCP socket", |p| {
            let fd = p.tcp4();
            close_and_record(p, fd);
        }),
        Case::new("listening TCP socket", |p| {
            let (fd, _) = p.listener(Family::V4, SOCK_STREAM);
            close_and_record(p, fd);
        }),
        Case::new("connected TCP with unread data", |p| {
            let c = p.tcp_conn();
            crate::fixtures::inject(c.client, b"unread");
            assert!(wait_for(c.server, libc::POLLIN));
            close_and_record(p, c.server);
        }),
        Case::new("socketpair end, peer sees end of stream", |p| {
            let (a, b) = unix_pair(p);
            close_and_record(p, a);
            p.out_arrived("peer reads", b, 0);
        }),
        Case::new("fd INT_MAX", |p| close_and_record(p, c_int::MAX)),
        Case::new("socket at a reserved number, closed twice", |p| {
            let fd = socket_at_reserved(p);
            p.close_now(fd);
            close_and_record(p, fd);
        }),
        Case::new("never-open number, then reopened by libc", |p| {
            let fd = reserve_fd();
            // SAFETY: close takes no pointer; fd was never open, so this only fails.
            assert_eq!(unsafe { (p.api.close)(fd) }, -1);
            reopen_with_pipe(p, fd);
            close_and_record(p, fd);
            p.out_open("reopened fd open after", fd);
        }),
        Case::new("reopened by libc, then used by a successful call", |p| {
            let fd = socket_at_reserved(p);
            p.close_now(fd);
            reopen_with_pipe(p, fd);
            let mut byte = [0u8; 1];
            // SAFETY: byte is a live one-byte buffer; the pipe holds one byte.
            assert_eq!(unsafe { (p.api.read)(fd, byte.as_mut_ptr().cast(), 1) }, 1);
            close_and_record(p, fd);
            p.out_open("reopened fd open after", fd);
        }),
        Case::documented(
            "documented: closed by close, reopened by libc, closed again",
            double_close_refused,
            |p| {
                let fd = socket_at_reserved(p);
                p.close_now(fd);
                reopen_with_pipe(p, fd);
                close_and_record(p, fd);
                p.out_open("reopened fd open after", fd);
            },
        ),
    ];
    cases.extend(bad_fd_cases(close_and_record));
    Table {
        func: "ss_close",
        cases,
    }
}
