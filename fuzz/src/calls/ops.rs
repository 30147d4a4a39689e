//! The program a `calls` input decodes to: a sequence of socket calls with
//! symbolic arguments (which resource, which kind of buffer, which length),
//! resolved to real values separately on each side.
//!
//! Arguments are restricted only where a value could reach outside this
//! machine, change it, or block forever; every restriction is in
//! [`sanitize_socket`], [`blocked_option`], and `world::place_addr` (addresses
//! are always loopback or abstract AF_UNIX names).

use crate::input::{Seed, Source};

/// The most calls one input makes (each side).
pub const MAX_OPS: usize = 40;

/// `socket`/`socketpair` domains: the three real ones, `AF_UNSPEC` and invalid
/// values. Families that could reach the network or the kernel's
/// configuration (`AF_PACKET`, `AF_NETLINK`, `AF_KEY` ...) are never used.
pub const DOMAINS: &[i32] = &[
    libc::AF_INET,
    libc::AF_INET6,
    libc::AF_UNIX,
    libc::AF_UNSPEC,
    -1,
    46,
    9999,
];
/// Socket types (flags are added separately). `SOCK_RAW` and `SOCK_PACKET`
/// are left out (they see other traffic and need privileges), `SOCK_DCCP` too
/// (it would load a module).
pub const TYPES: &[i32] = &[
    libc::SOCK_STREAM,
    libc::SOCK_DGRAM,
    libc::SOCK_SEQPACKET,
    0,
    4,
    7,
    11,
    15,
];
/// Extra type flags; `SOCK_NONBLOCK` is always added (nothing may block).
pub const TYPE_FLAGS: &[i32] = &[0, libc::SOCK_CLOEXEC, 0x40, 0x4000, 0x10_0000];
/// Protocols: the usual ones and invalid ones, never a value that loads a
/// module (SCTP, DCCP ...).
pub const PROTOCOLS: &[i32] = &[
    0,
    libc::IPPROTO_TCP,
    libc::IPPROTO_UDP,
    libc::IPPROTO_ICMP,
    255,
    -1,
    256,
];
/// Option levels.
pub const LEVELS: &[i32] = &[
    libc::SOL_SOCKET,
    libc::IPPROTO_IP,
    libc::IPPROTO_TCP,
    libc::IPPROTO_UDP,
    libc::IPPROTO_IPV6,
    libc::SOL_RAW,
    -1,
    282,
];
/// Backlogs.
pub const BACKLOGS: &[i32] = &[0, 1, 5, -1, i32::MAX, i32::MIN, 4096];
/// `shutdown` modes.
pub const HOWS: &[i32] = &[libc::SHUT_RD, libc::SHUT_WR, libc::SHUT_RDWR, 3, -1, i32::MAX];
/// Send flags (any combination can be given raw).
pub const SEND_FLAGS: &[i32] = &[
    0,
    libc::MSG_DONTWAIT,
    libc::MSG_OOB,
    libc::MSG_MORE,
    libc::MSG_EOR,
    libc::MSG_NOSIGNAL,
    libc::MSG_CONFIRM,
    libc::MSG_DONTROUTE,
    libc::MSG_FASTOPEN,
    libc::MSG_ZEROCOPY,
    -1,
];
/// Receive flags; `MSG_DONTWAIT` is always added.
pub const RECV_FLAGS: &[i32] = &[
    0,
    libc::MSG_PEEK,
    libc::MSG_WAITALL,
    libc::MSG_TRUNC,
    libc::MSG_OOB,
    libc::MSG_ERRQUEUE,
    libc::MSG_CMSG_CLOEXEC,
    libc::MSG_PEEK | libc::MSG_TRUNC,
    -1,
];
/// `accept4` flags; `SOCK_NONBLOCK` is always added.
pub const ACCEPT_FLAGS: &[i32] = &[0, libc::SOCK_CLOEXEC, 1, 0x40, -1, i32::MIN];
/// Buffer lengths.
pub const LENS: &[usize] = &[
    0, 1, 2, 3, 4, 7, 8, 12, 16, 17, 28, 64, 100, 128, 255, 256, 512, 1000, 1024, 1500, 4096, 4097, 8192, 16384, 65536,
    65537, 131_072,
];
/// Counts no buffer can hold (paired with a valid pointer).
pub const HUGE: &[usize] = &[
    usize::MAX,
    isize::MAX as usize,
    isize::MAX as usize + 1,
    0x8000_0000,
    0x7fff_f000,
    0x7fff_f001,
    1 << 40,
    1 << 47,
];
/// Address lengths (`socklen_t`).
pub const ADDR_LENS: &[u32] = &[
    0,
    1,
    2,
    3,
    8,
    15,
    16,
    17,
    23,
    24,
    27,
    28,
    29,
    109,
    110,
    111,
    112,
    127,
    128,
    129,
    0x7fff_ffff,
    0xffff_ffff,
];
/// Values for an in/out length (`*addrlen`, `*optlen`).
pub const INOUT_LENS: &[u32] = &[
    0,
    1,
    2,
    4,
    8,
    15,
    16,
    24,
    28,
    100,
    104,
    110,
    111,
    127,
    128,
    129,
    232,
    256,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];
/// Option lengths for setsockopt.
pub const OPT_LENS: &[u32] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    12,
    16,
    20,
    24,
    32,
    64,
    128,
    256,
    0x7fff_ffff,
    0xffff_ffff,
];
/// iovec counts.
pub const IOV_COUNTS: &[i32] = &[0, 1, 2, 3, 4, 8, 1023, 1024, 1025, -1, i32::MIN, i32::MAX];
/// msg_iovlen values.
pub const IOV_LENS: &[usize] = &[
    0,
    1,
    2,
    3,
    4,
    1024,
    1025,
    usize::MAX,
    (1 << 32) | 1,
    isize::MAX as usize + 1,
];
/// msg_controllen values.
pub const CTRL_LENS: &[usize] = &[
    0,
    1,
    15,
    16,
    17,
    20,
    24,
    28,
    32,
    64,
    128,
    256,
    4096,
    8192,
    1 << 20,
    usize::MAX,
];
/// Timeouts for `ss_tcp_connect`: bounded, and never 0 (whether a loopback
/// handshake has finished at the instant of a zero-time poll is a race).
pub const CONNECT_TIMEOUTS: &[i32] = &[20, 100];

/// Where a pointer argument points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// NULL.
    Null,
    /// Its own valid area.
    Valid,
    /// The object starts `n` bytes before a guard page (`n` 0..=15): a short object.
    Tail(u8),
    /// A read-only page.
    ReadOnly,
    /// A guard page (no access).
    Guard,
    /// A kernel address.
    Kernel,
    /// The address 1.
    Low,
}

impl Place {
    fn decode(s: &mut Source<'_>) -> Place {
        let b = s.byte();
        match b % 10 {
            0 => Place::Null,
            1..=3 => Place::Valid,
            4 | 5 => Place::Tail(b / 10 % 16),
            6 => Place::ReadOnly,
            7 => Place::Guard,
            8 => Place::Kernel,
            _ => Place::Low,
        }
    }

    /// The selector byte for this place (seeds).
    pub fn code(self) -> u8 {
        match self {
            Place::Null => 0,
            Place::Valid => 1,
            Place::Tail(n) => 4 + 10 * n.min(15),
            Place::ReadOnly => 6,
            Place::Guard => 7,
            Place::Kernel => 8,
            Place::Low => 9,
        }
    }
}

/// A data buffer and its count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buf {
    /// NULL with a count.
    Null(usize),
    /// A valid buffer at `offset * 64` in the data area.
    Start { offset: u8, len: usize },
    /// A buffer that ends exactly at the guard page.
    AtGuard(usize),
    /// A buffer of which only the first half is mapped before the guard.
    Short(usize),
    /// The read-only page with a count.
    ReadOnly(usize),
    /// A guard page with a count.
    Guard(usize),
    /// A kernel address with a count.
    Kernel(usize),
    /// A valid pointer with a count no buffer can hold.
    Huge { offset: u8, count: usize },
}

impl Buf {
    /// Reads a buffer choice.
    pub fn decode(s: &mut Source<'_>) -> Buf {
        let kind = s.byte();
        match kind % 12 {
            0 => Buf::Null(s.size(LENS)),
            1..=4 => Buf::Start {
                offset: s.byte(),
                len: s.size(LENS),
            },
            5 => Buf::AtGuard(s.size(LENS)),
            6 => Buf::Short(s.size(LENS)),
            7 => Buf::ReadOnly(s.size(LENS)),
            8 => Buf::Guard(s.size(LENS)),
            9 => Buf::Kernel(s.size(LENS)),
            _ => Buf::Huge {
                offset: s.byte(),
                count: s.pick(HUGE),
            },
        }
    }

    /// Writes this choice (seeds); `len` must be in [`LENS`] (or is written raw).
    pub fn encode(self, seed: Seed) -> Seed {
        let len = |seed: Seed, n: usize| match LENS.iter().position(|&l| l == n) {
            Some(i) => seed.byte(i as u8),
            None => seed.raw(n as u32),
        };
        match self {
            Buf::Null(n) => len(seed.byte(0), n),
            Buf::Start { offset, len: n } => len(seed.byte(1).byte(offset), n),
            Buf::AtGuard(n) => len(seed.byte(5), n),
            Buf::Short(n) => len(seed.byte(6), n),
            Buf::ReadOnly(n) => len(seed.byte(7), n),
            Buf::Guard(n) => len(seed.byte(8), n),
            Buf::Kernel(n) => len(seed.byte(9), n),
            Buf::Huge { offset, count } => {
                let i = HUGE.iter().position(|&h| h == count).expect("a HUGE entry");
                seed.byte(10).byte(offset).byte(i as u8)
            }
        }
    }
}

/// The resource addresses an address argument can name (resolved per side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// The TCP listener, 127.0.0.1:port.
    Listener,
    /// The first UDP socket.
    Udp1,
    /// The second UDP socket.
    Udp2,
    /// The IPv6 UDP socket, [::1]:port.
    Udp6,
    /// A loopback port where a socket is bound but nothing listens.
    Dead,
    /// The AF_UNIX listener's abstract name.
    UnixListener,
    /// An `AF_UNSPEC` address (disconnects a connected socket).
    Unspec,
    /// 127.0.0.1:0.
    Any4,
    /// [::1]:0.
    Any6,
    /// An AF_UNIX address with no name (autobind).
    UnixAuto,
    /// The listener as an IPv4-mapped IPv6 address.
    Mapped,
    /// An abstract AF_UNIX name nothing has bound.
    UnixFresh,
}

/// All of [`Named`], in selector order.
pub const NAMED: &[Named] = &[
    Named::Listener,
    Named::Udp1,
    Named::Udp2,
    Named::Udp6,
    Named::Dead,
    Named::UnixListener,
    Named::Unspec,
    Named::Any4,
    Named::Any6,
    Named::UnixAuto,
    Named::Mapped,
    Named::UnixFresh,
];

/// Which port a raw address gets (the port field is never arbitrary, so
/// that a raw address can reach nothing but this input's own sockets).
pub const RAW_PORTS: &[Named] = &[Named::Any4, Named::Dead, Named::Listener, Named::Udp2, Named::Udp6];

/// Address families for raw addresses.
pub const RAW_FAMILIES: &[u16] = &[
    libc::AF_INET as u16,
    libc::AF_INET6 as u16,
    libc::AF_UNIX as u16,
    libc::AF_UNSPEC as u16,
    0xffff,
    libc::AF_PACKET as u16,
];

/// An address argument (pointer and length).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddrIn {
    /// NULL with a length.
    Null(u32),
    /// One of the resources' addresses; `len` `None` means its natural length.
    Named { which: Named, len: Option<u32> },
    /// Fuzzer bytes with a family, made loopback-only (see `world::place_addr`).
    Raw {
        family: u16,
        body: Vec<u8>,
        port: Named,
        len: Option<u32>,
    },
    /// A wild pointer with a length.
    Wild { place: Place, len: u32 },
}

impl AddrIn {
    /// Reads an address choice.
    pub fn decode(s: &mut Source<'_>) -> AddrIn {
        let len = |s: &mut Source<'_>| match s.byte() {
            0xfe => None,
            crate::input::RAW => Some(s.u32()),
            b => Some(ADDR_LENS[usize::from(b) % ADDR_LENS.len()]),
        };
        match s.byte() % 8 {
            0 => AddrIn::Null(len(s).unwrap_or(16)),
            1..=4 => {
                let which = s.pick(NAMED);
                AddrIn::Named { which, len: len(s) }
            }
            5 | 6 => {
                let family = s.pick(RAW_FAMILIES);
                let body = s.bytes(40);
                let port = s.pick(RAW_PORTS);
                AddrIn::Raw {
                    family,
                    body,
                    port,
                    len: len(s),
                }
            }
            _ => {
                let place = Place::decode(s);
                AddrIn::Wild {
                    place,
                    len: len(s).unwrap_or(16),
                }
            }
        }
    }

    /// Writes a named address with its natural length (seeds).
    pub fn encode_named(seed: Seed, which: Named) -> Seed {
        let i = NAMED.iter().position(|&n| n == which).expect("a NAMED entry");
        seed.byte(1).byte(i as u8).byte(0xfe)
    }
}

/// An output address: the address buffer and its in/out length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrOut {
    /// Where the address buffer is.
    pub addr: Place,
    /// Where the length is.
    pub len_at: Place,
    /// The length's value on entry.
    pub len: u32,
}

impl AddrOut {
    /// Reads an output-address choice.
    pub fn decode(s: &mut Source<'_>) -> AddrOut {
        AddrOut {
            addr: Place::decode(s),
            len_at: Place::decode(s),
            len: s.uint(INOUT_LENS),
        }
    }

    /// Writes a valid buffer with room `len` (seeds).
    pub fn encode_valid(seed: Seed, len: u32) -> Seed {
        let seed = seed.byte(Place::Valid.code()).byte(Place::Valid.code());
        match INOUT_LENS.iter().position(|&l| l == len) {
            Some(i) => seed.byte(i as u8),
            None => seed.raw(len),
        }
    }
}

/// An iovec array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iov {
    /// Where the array is.
    pub array: Place,
    /// The count passed to readv/writev.
    pub count: i32,
    /// The entries, repeated to fill the array.
    pub entries: Vec<Buf>,
}

impl Iov {
    /// Reads an iovec choice.
    pub fn decode(s: &mut Source<'_>) -> Iov {
        let array = Place::decode(s);
        let count = s.int(IOV_COUNTS);
        let n = 1 + usize::from(s.byte() % 4);
        let entries = (0..n).map(|_| Buf::decode(s)).collect();
        Iov { array, count, entries }
    }

    /// Writes an iovec choice (seeds); `count` must be in [`IOV_COUNTS`].
    pub fn encode(seed: Seed, array: Place, count: i32, entries: &[Buf]) -> Seed {
        let mut seed = seed
            .byte(array.code())
            .byte(crate::input::index_of(IOV_COUNTS, count))
            .byte(entries.len() as u8 - 1);
        for e in entries {
            seed = e.encode(seed);
        }
        seed
    }
}

/// Control data for sendmsg / room for it in recvmsg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ctrl {
    /// NULL, length 0.
    None,
    /// `SCM_RIGHTS` with these descriptor choices.
    Rights(Vec<u8>),
    /// `SCM_CREDENTIALS` with this process's credentials.
    Creds,
    /// Raw bytes (levels other than SOL_SOCKET that could steer a packet
    /// elsewhere, IP_PKTINFO and the like, are rewritten to an unknown level).
    Raw(Vec<u8>),
    /// A wild pointer.
    Wild(Place),
}

/// A message header for sendmsg/recvmsg.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    /// Where the header is.
    pub header: Place,
    /// msg_name / msg_namelen.
    pub name: AddrIn,
    /// msg_iov.
    pub iov: Iov,
    /// msg_iovlen.
    pub iovlen: usize,
    /// msg_control.
    pub ctrl: Ctrl,
    /// msg_controllen; `None` for the natural length of the control data.
    pub ctrl_len: Option<usize>,
    /// msg_flags on entry.
    pub flags: i32,
}

impl Msg {
    /// Reads a message-header choice.
    pub fn decode(s: &mut Source<'_>) -> Msg {
        let header = Place::decode(s);
        let name = AddrIn::decode(s);
        let iov = Iov::decode(s);
        let iovlen = match s.byte() {
            0xfe => iov.count.max(0) as usize,
            crate::input::RAW => s.u32() as usize,
            b => IOV_LENS[usize::from(b) % IOV_LENS.len()],
        };
        let ctrl = match s.byte() % 6 {
            0 | 1 => Ctrl::None,
            2 => Ctrl::Rights((0..1 + s.byte() % 3).map(|_| s.byte()).collect()),
            3 => Ctrl::Creds,
            4 => Ctrl::Raw(s.bytes(64)),
            _ => Ctrl::Wild(Place::decode(s)),
        };
        let ctrl_len = match s.byte() {
            0xfe => None,
            crate::input::RAW => Some(s.u32() as usize),
            b => Some(CTRL_LENS[usize::from(b) % CTRL_LENS.len()]),
        };
        let flags = s.int(&[0, -1, libc::MSG_CTRUNC, libc::MSG_TRUNC]);
        Msg {
            header,
            name,
            iov,
            iovlen,
            ctrl,
            ctrl_len,
            flags,
        }
    }
}

/// Address texts for the helpers (resolved per side: `{L}` is a port in use,
/// the TCP listener's or the second UDP socket's; `{D}` a port with a
/// socket that does not listen, or the first UDP socket's).
/// Numeric only: nothing here may make the resolver ask DNS.
pub const TEXTS: &[&str] = &[
    "127.0.0.1:0",
    "[::1]:0",
    "127.0.0.1:{L}",
    "127.0.0.1:{D}",
    "[::1]:{L}",
    "[::1]:{D}",
    "[::ffff:127.0.0.1]:{L}",
    "127.0.0.1",
    "unix:@x",
    "",
    "127.0.0.1:99999",
    "[::1",
    "127.0.0.2:{L}",
];

/// One call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    Socket {
        domain: i32,
        ty: i32,
        protocol: i32,
    },
    Socketpair {
        domain: i32,
        ty: i32,
        protocol: i32,
        sv: Place,
    },
    Bind {
        fd: u8,
        addr: AddrIn,
    },
    Listen {
        fd: u8,
        backlog: i32,
    },
    Connect {
        fd: u8,
        addr: AddrIn,
    },
    Accept {
        fd: u8,
        peer: AddrOut,
    },
    Accept4 {
        fd: u8,
        peer: AddrOut,
        flags: i32,
    },
    Read {
        fd: u8,
        buf: Buf,
    },
    Write {
        fd: u8,
        buf: Buf,
    },
    Recv {
        fd: u8,
        buf: Buf,
        flags: i32,
    },
    Send {
        fd: u8,
        buf: Buf,
        flags: i32,
    },
    Readv {
        fd: u8,
        iov: Iov,
    },
    Writev {
        fd: u8,
        iov: Iov,
    },
    Recvmsg {
        fd: u8,
        msg: Msg,
        flags: i32,
    },
    Sendmsg {
        fd: u8,
        msg: Msg,
        flags: i32,
    },
    Recvfrom {
        fd: u8,
        buf: Buf,
        flags: i32,
        peer: AddrOut,
    },
    Sendto {
        fd: u8,
        buf: Buf,
        flags: i32,
        addr: AddrIn,
    },
    Shutdown {
        fd: u8,
        how: i32,
    },
    Close {
        fd: u8,
    },
    Getsockname {
        fd: u8,
        out: AddrOut,
    },
    Getpeername {
        fd: u8,
        out: AddrOut,
    },
    Getsockopt {
        fd: u8,
        level: i32,
        name: i32,
        val: Buf,
        len: AddrOut,
    },
    Setsockopt {
        fd: u8,
        level: i32,
        name: i32,
        val: Buf,
        content: Vec<u8>,
        len: Option<u32>,
    },
    SendAll {
        fd: u8,
        buf: Buf,
    },
    RecvExact {
        fd: u8,
        buf: Buf,
    },
    LocalPort {
        fd: u8,
    },
    TcpState {
        fd: u8,
    },
    TcpListen {
        text: u8,
        backlog: i32,
    },
    UdpBind {
        text: u8,
    },
    TcpConnect {
        text: u8,
        timeout: i32,
    },
    /// A pipe made with plain libc: takes the lowest free numbers, perhaps
    /// ones `ss_close` closed (the "opened in between" case of the contract).
    PlainPipe,
    /// A plain `dup` of a descriptor choice.
    PlainDup {
        fd: u8,
    },
    /// A plain `close` (behind safesock's back).
    PlainClose {
        fd: u8,
    },
}

/// Opcodes, in the order [`decode_op`] numbers them.
pub mod code {
    #![allow(missing_docs)]
    pub const SOCKET: u8 = 0;
    pub const SOCKETPAIR: u8 = 1;
    pub const BIND: u8 = 2;
    pub const LISTEN: u8 = 3;
    pub const CONNECT: u8 = 4;
    pub const ACCEPT: u8 = 5;
    pub const ACCEPT4: u8 = 6;
    pub const READ: u8 = 7;
    pub const WRITE: u8 = 8;
    pub const RECV: u8 = 9;
    pub const SEND: u8 = 10;
    pub const READV: u8 = 11;
    pub const WRITEV: u8 = 12;
    pub const RECVMSG: u8 = 13;
    pub const SENDMSG: u8 = 14;
    pub const RECVFROM: u8 = 15;
    pub const SENDTO: u8 = 16;
    pub const SHUTDOWN: u8 = 17;
    pub const CLOSE: u8 = 18;
    pub const GETSOCKNAME: u8 = 19;
    pub const GETPEERNAME: u8 = 20;
    pub const GETSOCKOPT: u8 = 21;
    pub const SETSOCKOPT: u8 = 22;
    pub const SEND_ALL: u8 = 23;
    pub const RECV_EXACT: u8 = 24;
    pub const LOCAL_PORT: u8 = 25;
    pub const TCP_STATE: u8 = 26;
    pub const TCP_LISTEN: u8 = 27;
    pub const UDP_BIND: u8 = 28;
    pub const TCP_CONNECT: u8 = 29;
    pub const PLAIN_PIPE: u8 = 30;
    pub const PLAIN_DUP: u8 = 31;
    pub const PLAIN_CLOSE: u8 = 32;
    pub const COUNT: u8 = 33;
}

fn decode_op(s: &mut Source<'_>) -> Op {
    let fd = |s: &mut Source<'_>| s.byte();
    match s.byte() % code::COUNT {
        code::SOCKET => Op::Socket {
            domain: s.int(DOMAINS),
            ty: s.pick(TYPES) | s.pick(TYPE_FLAGS),
            protocol: s.pick(PROTOCOLS),
        },
        code::SOCKETPAIR => Op::Socketpair {
            domain: s.int(DOMAINS),
            ty: s.pick(TYPES) | s.pick(TYPE_FLAGS),
            protocol: s.pick(PROTOCOLS),
            sv: Place::decode(s),
        },
        code::BIND => Op::Bind {
            fd: fd(s),
            addr: AddrIn::decode(s),
        },
        code::LISTEN => Op::Listen {
            fd: fd(s),
            backlog: s.int(BACKLOGS),
        },
        code::CONNECT => Op::Connect {
            fd: fd(s),
            addr: AddrIn::decode(s),
        },
        code::ACCEPT => Op::Accept {
            fd: fd(s),
            peer: AddrOut::decode(s),
        },
        code::ACCEPT4 => Op::Accept4 {
            fd: fd(s),
            peer: AddrOut::decode(s),
            flags: s.int(ACCEPT_FLAGS),
        },
        code::READ => Op::Read {
            fd: fd(s),
            buf: Buf::decode(s),
        },
        code::WRITE => Op::Write {
            fd: fd(s),
            buf: Buf::decode(s),
        },
        code::RECV => Op::Recv {
            fd: fd(s),
            buf: Buf::decode(s),
            flags: s.int(RECV_FLAGS),
        },
        code::SEND => Op::Send {
            fd: fd(s),
            buf: Buf::decode(s),
            flags: s.int(SEND_FLAGS),
        },
        code::READV => Op::Readv {
            fd: fd(s),
            iov: Iov::decode(s),
        },
        code::WRITEV => Op::Writev {
            fd: fd(s),
            iov: Iov::decode(s),
        },
        code::RECVMSG => Op::Recvmsg {
            fd: fd(s),
            msg: Msg::decode(s),
            flags: s.int(RECV_FLAGS),
        },
        code::SENDMSG => Op::Sendmsg {
            fd: fd(s),
            msg: Msg::decode(s),
            flags: s.int(SEND_FLAGS),
        },
        code::RECVFROM => Op::Recvfrom {
            fd: fd(s),
            buf: Buf::decode(s),
            flags: s.int(RECV_FLAGS),
            peer: AddrOut::decode(s),
        },
        code::SENDTO => Op::Sendto {
            fd: fd(s),
            buf: Buf::decode(s),
            flags: s.int(SEND_FLAGS),
            addr: AddrIn::decode(s),
        },
        code::SHUTDOWN => Op::Shutdown {
            fd: fd(s),
            how: s.int(HOWS),
        },
        code::CLOSE => Op::Close { fd: fd(s) },
        code::GETSOCKNAME => Op::Getsockname {
            fd: fd(s),
            out: AddrOut::decode(s),
        },
        code::GETPEERNAME => Op::Getpeername {
            fd: fd(s),
            out: AddrOut::decode(s),
        },
        code::GETSOCKOPT => Op::Getsockopt {
            fd: fd(s),
            level: s.int(LEVELS),
            name: option_name(s),
            val: Buf::decode(s),
            len: AddrOut::decode(s),
        },
        code::SETSOCKOPT => {
            let fd = fd(s);
            let level = s.int(LEVELS);
            let name = option_name(s);
            let val = Buf::decode(s);
            let content = s.bytes(32);
            let len = match s.byte() {
                0xfe => None,
                crate::input::RAW => Some(s.u32()),
                b => Some(OPT_LENS[usize::from(b) % OPT_LENS.len()]),
            };
            Op::Setsockopt {
                fd,
                level,
                name,
                val,
                content,
                len,
            }
        }
        code::SEND_ALL => Op::SendAll {
            fd: fd(s),
            buf: Buf::decode(s),
        },
        code::RECV_EXACT => Op::RecvExact {
            fd: fd(s),
            buf: Buf::decode(s),
        },
        code::LOCAL_PORT => Op::LocalPort { fd: fd(s) },
        code::TCP_STATE => Op::TcpState { fd: fd(s) },
        code::TCP_LISTEN => Op::TcpListen {
            text: s.byte(),
            backlog: s.int(BACKLOGS),
        },
        code::UDP_BIND => Op::UdpBind { text: s.byte() },
        code::TCP_CONNECT => Op::TcpConnect {
            text: s.byte(),
            timeout: s.pick(CONNECT_TIMEOUTS),
        },
        code::PLAIN_PIPE => Op::PlainPipe,
        code::PLAIN_DUP => Op::PlainDup { fd: fd(s) },
        _ => Op::PlainClose { fd: fd(s) },
    }
}

/// An option number: the byte itself (0..=254 covers every common option), or raw.
fn option_name(s: &mut Source<'_>) -> i32 {
    match s.byte() {
        crate::input::RAW => s.u32() as i32,
        b => i32::from(b),
    }
}

/// Decodes a whole input into at most [`MAX_OPS`] calls.
pub fn decode(data: &[u8]) -> Vec<Op> {
    let mut s = Source::new(data);
    let mut ops = Vec::new();
    while !s.is_empty() && ops.len() < MAX_OPS {
        ops.push(decode_op(&mut s));
    }
    ops
}

/// Socket arguments made safe: `SOCK_NONBLOCK` always (nothing may block),
/// and never a raw, packet or DCCP socket even from raw type bits.
pub fn sanitize_socket(ty: i32) -> i32 {
    let base = ty & 0xf;
    let base = if matches!(base, 3 | 6 | 10) { 15 } else { base };
    (ty & !0xf) | base | libc::SOCK_NONBLOCK
}

/// Options never set: they would send traffic off this machine (multicast
/// joins send IGMP/MLD reports, binding to a device), load kernel modules
/// (TCP_ULP, TCP_CONGESTION, TCP-AO algorithms), or install IPsec policy.
/// Such calls are made with an unknown option number instead.
pub fn blocked_option(level: i32, name: i32) -> bool {
    match level {
        libc::SOL_SOCKET => matches!(name, 25 | 62), // SO_BINDTODEVICE, SO_BINDTOIFINDEX
        libc::IPPROTO_IP => matches!(name, 16 | 17 | 35..=48),
        libc::IPPROTO_IPV6 => matches!(name, 20 | 21 | 27 | 28 | 34 | 35 | 42..=48),
        libc::IPPROTO_TCP => matches!(name, 13 | 31 | 38..=42),
        _ => false,
    }
}

/// An option number no level knows.
pub const UNKNOWN_OPTION: i32 = 0x7ead;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_decodes() {
        for seed in 0u32..2000 {
            let data: Vec<u8> = (0..seed % 97)
                .map(|i| (seed.wrapping_mul(2_654_435_761) >> (i % 24)) as u8)
                .collect();
            let ops = decode(&data);
            assert!(ops.len() <= MAX_OPS);
        }
        assert!(decode(&[]).is_empty());
    }

    #[test]
    fn sanitized_types_never_raw() {
        for ty in [3, 10, 6, 3 | libc::SOCK_CLOEXEC, -1, i32::MIN] {
            let t = sanitize_socket(ty);
            assert!(!matches!(t & 0xf, 3 | 6 | 10));
            assert_ne!(t & libc::SOCK_NONBLOCK, 0);
        }
    }
}
