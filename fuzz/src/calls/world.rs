//! One side of a differential run: the resources, made through that side's
//! own functions, the calls of the program with their arguments placed in
//! the arena, and what each call did, written down in a form that is equal
//! on both sides exactly when the drop-in rule holds.
//!
//! Both sides run in processes with identical descriptor tables (the libc
//! side in a child forked just before), so descriptor numbers are compared as
//! they are. What differs by nature between the two runs is masked: port
//! numbers (each side's sockets get their own ephemeral ports; a port is
//! written as the name of the resource that owns it, or by order of first
//! appearance), AF_UNIX autobind names, process ids in credentials, and the
//! few option values that are clocks, cookies or counters.

use core::ffi::{c_int, c_void};
use core::fmt::Write as _;
use std::collections::{BTreeMap, BTreeSet};

use libc::{iovec, msghdr, sockaddr, socklen_t};

use super::api::{Api, Side, errno, set_errno};
use super::ops::{self, AddrIn, AddrOut, Buf, Ctrl, Iov, Msg, Named, Op, Place};
use crate::arena::{self, Arena, CTRL_LEN, DATA_LEN, IOV_LEN, TailArea, small};

/// What `errno` holds before every call: a call that succeeds must leave it.
pub const ERRNO_SENTINEL: c_int = 7777;

/// A kernel address (never accessible from user space).
const KERNEL: usize = 0xffff_ffff_8000_0000;

/// Numbers of the fixed resources, in the order descriptor choices name them.
pub const RESOURCES: &[&str] = &[
    "L", "C1", "S1", "C2", "T4", "T6", "U1", "U2", "U6", "US0", "US1", "UD0", "UD1", "UQ0", "UQ1", "UL", "UC", "P0",
    "P1", "F", "X",
];

/// Process-wide state shared by both sides (made before the first fork).
pub struct Globals {
    /// The memory every call points into.
    pub arena: Arena,
    /// A loopback TCP port with a bound socket that does not listen.
    pub dead_port: u16,
    /// The descriptor holding that port (a high number, never a choice).
    pub dead_fd: c_int,
    /// A number that is never open but below the descriptor limit.
    pub unused_fd: c_int,
    /// Four bytes unique to this fuzzing process, in every AF_UNIX name.
    pub tag: [u8; 4],
}

impl Globals {
    /// Makes the arena and the dead port.
    pub fn new() -> Globals {
        let arena = Arena::new();
        // SAFETY: integer arguments only.
        let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        assert!(s >= 0, "socket for the dead port");
        let (ss, len) = sockaddr_of(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        // SAFETY: a local address of the length given.
        let rc = unsafe { libc::bind(s, (&raw const ss).cast(), len) };
        assert_eq!(rc, 0, "bind the dead port");
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a local rlimit.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        let cur = c_int::try_from(limit.rlim_cur).unwrap_or(c_int::MAX).min(1 << 20);
        // Far above anything an input opens, below the limit.
        // SAFETY: fcntl with integer arguments.
        let dead_fd = unsafe { libc::fcntl(s, libc::F_DUPFD_CLOEXEC, (cur - 8).max(256)) };
        assert!(dead_fd >= 0, "moving the dead port's socket up");
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(s) };
        let dead_port = local_port(dead_fd).expect("the dead port is bound");
        // SAFETY: getpid takes no argument.
        let pid = unsafe { libc::getpid() } as u32;
        Globals {
            arena,
            dead_port,
            dead_fd,
            unused_fd: (cur - 16).max(200),
            tag: pid.to_le_bytes(),
        }
    }
}

impl Default for Globals {
    fn default() -> Self {
        Globals::new()
    }
}

/// A socket address in a `sockaddr_storage`, with its length.
pub fn sockaddr_of(a: &std::net::SocketAddr) -> (libc::sockaddr_storage, socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all zeroes is valid.
    let mut ss: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
    let len = match a {
        std::net::SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is larger than sockaddr_in and suitably aligned.
            let sin = unsafe { &mut *(&raw mut ss).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
            size_of::<libc::sockaddr_in>()
        }
        std::net::SocketAddr::V6(v6) => {
            // SAFETY: sockaddr_storage is larger than sockaddr_in6 and suitably aligned.
            let sin6 = unsafe { &mut *(&raw mut ss).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_scope_id = v6.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as socklen_t)
}

/// The local port of an IPv4/IPv6 socket, read with plain libc.
pub fn local_port(fd: c_int) -> Option<u16> {
    let (bytes, _) = plain_name(fd, false)?;
    (bytes.len() >= 4).then(|| u16::from_be_bytes([bytes[2], bytes[3]]))
}

/// getsockname/getpeername with plain libc (observing, never a mirrored call).
fn plain_name(fd: c_int, peer: bool) -> Option<(Vec<u8>, socklen_t)> {
    // SAFETY: sockaddr_storage is plain data.
    let mut ss: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as socklen_t;
    // SAFETY: both pointers refer to locals of the sizes given.
    let rc = unsafe {
        if peer {
            libc::getpeername(fd, (&raw mut ss).cast(), &mut len)
        } else {
            libc::getsockname(fd, (&raw mut ss).cast(), &mut len)
        }
    };
    if rc != 0 {
        return None;
    }
    let keep = (len as usize).min(size_of::<libc::sockaddr_storage>());
    // SAFETY: the kernel filled `keep` bytes of the local storage.
    let bytes = unsafe { core::slice::from_raw_parts((&raw const ss).cast::<u8>(), keep) }.to_vec();
    Some((bytes, len))
}

/// Whether `fd` is open.
pub fn is_open(fd: c_int) -> bool {
    // SAFETY: F_GETFD takes no pointer.
    fd >= 0 && unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0
}

fn cloexec(fd: c_int) -> bool {
    // SAFETY: F_GETFD takes no pointer.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    flags >= 0 && flags & libc::FD_CLOEXEC != 0
}

fn set_nonblocking(fd: c_int) {
    // SAFETY: fcntl with integer arguments.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }
}

/// Whether `fd` is an open socket (fstat; safesock never sees it).
pub fn is_socket(fd: c_int) -> bool {
    if fd < 0 {
        return false;
    }
    // SAFETY: stat is plain data; fstat fills it or fails.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: the pointer refers to the local above.
    let rc = unsafe { libc::fstat(fd, &mut st) };
    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
}

fn poll_one(fd: c_int, events: i16, ms: c_int) -> bool {
    let mut pfd = libc::pollfd { fd, events, revents: 0 };
    // SAFETY: one pollfd, a local.
    unsafe { libc::poll(&mut pfd, 1, ms) > 0 }
}

/// SIGPIPE is blocked on the fuzzing thread (and ignored process-wide), so
/// one raised by a call stays pending until taken here.
fn take_sigpipe() -> bool {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it.
    let set = unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        set
    };
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    let mut raised = false;
    // SAFETY: all pointers refer to locals; a NULL siginfo is allowed.
    while unsafe { libc::sigtimedwait(&set, core::ptr::null_mut(), &zero) } == libc::SIGPIPE {
        raised = true;
    }
    raised
}

/// Blocks SIGPIPE on this thread and ignores it process-wide.
pub fn block_sigpipe() {
    // SAFETY: installing SIG_IGN and changing this thread's mask have no other effect.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
    }
}

/// 64-bit FNV-1a, for observing large buffers compactly.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Masks what differs between the two runs by nature.
#[derive(Default)]
struct Canon {
    ports: BTreeMap<u16, String>,
    autobind: BTreeMap<Vec<u8>, String>,
}

impl Canon {
    fn name_port(&mut self, port: u16, name: &str) {
        self.ports.entry(port).or_insert_with(|| format!("P.{name}"));
    }

    fn port(&mut self, port: u16) -> String {
        if port == 0 {
            return "0".to_owned();
        }
        let n = self.ports.len();
        self.ports.entry(port).or_insert_with(|| format!("P?{n}")).clone()
    }

    /// An address as the kernel wrote it: hex, with the port of an
    /// IPv4/IPv6 address and an autobind name replaced by their masks.
    fn addr(&mut self, bytes: &[u8]) -> String {
        if bytes.len() < 2 {
            return hex(bytes);
        }
        let family = c_int::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
        if matches!(family, libc::AF_INET | libc::AF_INET6) && bytes.len() > 2 {
            if bytes.len() == 3 {
                return format!("{}[port byte]", hex(&bytes[..2]));
            }
            let port = self.port(u16::from_be_bytes([bytes[2], bytes[3]]));
            return format!("{}[{port}]{}", hex(&bytes[..2]), hex(&bytes[4..]));
        }
        // An autobind name: NUL and five hex digits.
        if family == libc::AF_UNIX
            && bytes.len() == 8
            && bytes[2] == 0
            && bytes[3..8].iter().all(|b| b.is_ascii_hexdigit())
        {
            let n = self.autobind.len();
            let mask = self
                .autobind
                .entry(bytes[2..].to_vec())
                .or_insert_with(|| format!("auto{n}"))
                .clone();
            return format!("{}[{mask}]", hex(&bytes[..2]));
        }
        hex(bytes)
    }
}

/// What one side of a run saw.
pub struct SideOutcome {
    /// One line per setup step and call.
    pub log: Vec<String>,
    /// Breaches of the documented safety defaults (ss side only).
    pub problems: Vec<String>,
}

/// A side's run in progress.
struct Run<'a> {
    api: &'static Api,
    g: &'a Globals,
    /// Descriptor choices: the resources, then the special numbers.
    fixed: Vec<c_int>,
    /// Descriptors made by calls, in order (choices too).
    made: Vec<c_int>,
    /// Every descriptor this run owns and must close.
    open: BTreeSet<c_int>,
    /// What was open before the run (never touched).
    baseline: BTreeSet<c_int>,
    /// The resources' addresses.
    named: BTreeMap<&'static str, Vec<u8>>,
    canon: Canon,
    /// ss side: numbers ss_close closed that no ss_ call has handed out or
    /// used successfully since (the double-close model).
    closed_by_ss: BTreeSet<c_int>,
    log: Vec<String>,
    problems: Vec<String>,
    step: usize,
    highest: c_int,
}

/// Highest number scanned for descriptors nobody asked for.
fn scan_limit(highest: c_int) -> c_int {
    highest.saturating_add(24).min(4096)
}

fn open_set(upto: c_int) -> BTreeSet<c_int> {
    (0..=upto).filter(|&fd| is_open(fd)).collect()
}

impl<'a> Run<'a> {
    fn new(api: &'static Api, g: &'a Globals) -> Self {
        let baseline = open_set(256);
        Run {
            api,
            g,
            fixed: Vec::new(),
            made: Vec::new(),
            open: BTreeSet::new(),
            baseline,
            named: BTreeMap::new(),
            canon: Canon::default(),
            closed_by_ss: BTreeSet::new(),
            log: Vec::new(),
            problems: Vec::new(),
            step: 0,
            highest: 2,
        }
    }

    fn is_ss(&self) -> bool {
        self.api.side == Side::Ss
    }

    /// Records a descriptor a call of this side created.
    fn adopt(&mut self, fd: c_int, from_api: bool, what: &str) {
        if fd < 0 {
            return;
        }
        self.open.insert(fd);
        self.made.push(fd);
        self.highest = self.highest.max(fd);
        if from_api && self.is_ss() {
            self.closed_by_ss.remove(&fd);
            if !cloexec(fd) {
                self.problems.push(format!(
                    "step {}: fd {fd} from {what} lacks FD_CLOEXEC (safety default 1)",
                    self.step
                ));
            }
        }
    }

    /// The ss side's model of a successful call on `fd` (it is in use again).
    fn used(&mut self, fd: c_int, ret: i64) {
        if self.is_ss() && ret >= 0 {
            self.closed_by_ss.remove(&fd);
        }
    }

    fn fd(&self, sel: u8) -> c_int {
        if sel >= 128 && !self.made.is_empty() {
            return self.made[usize::from(sel - 128) % self.made.len()];
        }
        self.fixed[usize::from(sel) % self.fixed.len()]
    }

    fn lowest_free(&self) -> c_int {
        (0..).find(|&fd| !is_open(fd)).unwrap_or(0)
    }

    // ----- setup -------------------------------------------------------------

    fn setup(&mut self) {
        let mut notes = String::from("setup:");
        let nb = libc::SOCK_NONBLOCK;
        let a = self.api;
        let any4 = sockaddr_of(&"127.0.0.1:0".parse().expect("literal"));
        let any6 = sockaddr_of(&"[::1]:0".parse().expect("literal"));
        // SAFETY: every call in this block gets integer arguments or pointers
        // to locals (or arena bytes) of the sizes given.
        let fds = unsafe {
            let sock = |d, t| (a.socket)(d, t | nb, 0);
            let one: c_int = 1;
            let l = sock(libc::AF_INET, libc::SOCK_STREAM);
            (a.setsockopt)(l, libc::SOL_SOCKET, libc::SO_REUSEADDR, (&raw const one).cast(), 4);
            (a.bind)(l, (&raw const any4.0).cast(), any4.1);
            (a.listen)(l, 8);
            let (laddr, llen) = plain_name(l, false).unwrap_or_default();
            let c1 = sock(libc::AF_INET, libc::SOCK_STREAM);
            (a.connect)(c1, laddr.as_ptr().cast(), llen);
            poll_one(c1, libc::POLLOUT, 1000);
            poll_one(l, libc::POLLIN, 1000);
            let s1 = (a.accept4)(l, core::ptr::null_mut(), core::ptr::null_mut(), nb);
            let c2 = sock(libc::AF_INET, libc::SOCK_STREAM);
            (a.connect)(c2, laddr.as_ptr().cast(), llen);
            poll_one(c2, libc::POLLOUT, 1000);
            poll_one(l, libc::POLLIN, 1000);
            let t4 = sock(libc::AF_INET, libc::SOCK_STREAM);
            let t6 = sock(libc::AF_INET6, libc::SOCK_STREAM);
            let u1 = sock(libc::AF_INET, libc::SOCK_DGRAM);
            (a.bind)(u1, (&raw const any4.0).cast(), any4.1);
            let u2 = sock(libc::AF_INET, libc::SOCK_DGRAM);
            (a.bind)(u2, (&raw const any4.0).cast(), any4.1);
            let (u2addr, u2len) = plain_name(u2, false).unwrap_or_default();
            (a.connect)(u1, u2addr.as_ptr().cast(), u2len);
            let u6 = sock(libc::AF_INET6, libc::SOCK_DGRAM);
            (a.bind)(u6, (&raw const any6.0).cast(), any6.1);
            let mut pairs = [[-1; 2]; 3];
            for (p, ty) in pairs
                .iter_mut()
                .zip([libc::SOCK_STREAM, libc::SOCK_DGRAM, libc::SOCK_SEQPACKET])
            {
                (a.socketpair)(libc::AF_UNIX, ty | nb, 0, p.as_mut_ptr());
            }
            let ul = sock(libc::AF_UNIX, libc::SOCK_STREAM);
            let ulname = self.unix_name(b"L");
            (a.bind)(ul, ulname.as_ptr().cast(), ulname.len() as socklen_t);
            (a.listen)(ul, 8);
            let uc = sock(libc::AF_UNIX, libc::SOCK_STREAM);
            (a.connect)(uc, ulname.as_ptr().cast(), ulname.len() as socklen_t);
            let mut pipe = [-1; 2];
            libc::pipe2(pipe.as_mut_ptr(), libc::O_NONBLOCK);
            let f = libc::memfd_create(c"ssfz".as_ptr(), 0);
            let content: Vec<u8> = (0..200).map(arena::pattern).collect();
            libc::write(f, content.as_ptr().cast(), content.len());
            libc::lseek(f, 0, libc::SEEK_SET);
            let x = sock(libc::AF_UNIX, libc::SOCK_STREAM);
            // Data waiting in every kind of socket, so receives find some.
            let data: Vec<u8> = (0..100).map(|i| arena::pattern(i + 7)).collect();
            (a.send)(c1, data.as_ptr().cast(), 100, 0);
            (a.send)(pairs[0][0], data.as_ptr().cast(), 100, 0);
            (a.send)(pairs[1][0], data.as_ptr().cast(), 60, 0);
            (a.send)(pairs[2][0], data.as_ptr().cast(), 40, 0);
            (a.sendto)(u2, data.as_ptr().cast(), 30, 0, core::ptr::null(), 0);
            let u1addr = plain_name(u1, false).unwrap_or_default();
            (a.sendto)(u2, data.as_ptr().cast(), 30, 0, u1addr.0.as_ptr().cast(), u1addr.1);
            libc::write(pipe[1], data.as_ptr().cast(), 50);
            poll_one(s1, libc::POLLIN, 1000);
            poll_one(u1, libc::POLLIN, 1000);
            self.named.insert("L", laddr);
            self.named.insert("U2", u2addr);
            [
                l,
                c1,
                s1,
                c2,
                t4,
                t6,
                u1,
                u2,
                u6,
                pairs[0][0],
                pairs[0][1],
                pairs[1][0],
                pairs[1][1],
                pairs[2][0],
                pairs[2][1],
                ul,
                uc,
                pipe[0],
                pipe[1],
                f,
                x,
            ]
        };
        for (name, &fd) in RESOURCES.iter().zip(fds.iter()) {
            let _ = write!(notes, " {name}={fd}");
            if fd >= 0 {
                self.open.insert(fd);
                self.highest = self.highest.max(fd);
                if let Some(port) = local_port(fd) {
                    self.canon.name_port(port, name);
                }
            }
        }
        self.canon.name_port(self.g.dead_port, "D");
        for (name, idx) in [("U1", 6), ("U6", 8)] {
            if let Some((bytes, _)) = plain_name(fds[idx], false) {
                self.named.insert(name, bytes);
            }
        }
        // X: a number the side's own close closed (on the ss side,
        // one ss_close refuses from now on).
        let x = fds[20];
        // SAFETY: closing a descriptor this run made.
        let rc = unsafe { (self.api.close)(x) };
        let _ = write!(notes, " close(X)={rc}");
        if rc == 0 {
            self.open.remove(&x);
            if self.is_ss() {
                self.closed_by_ss.insert(x);
            }
        }
        self.fixed = fds.to_vec();
        self.fixed.extend([-1, c_int::MAX, c_int::MIN, self.g.unused_fd]);
        self.log.push(notes);
    }

    /// An abstract AF_UNIX address unique to this fuzzing process.
    fn unix_name(&self, suffix: &[u8]) -> Vec<u8> {
        let mut v = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        v.push(0);
        v.extend_from_slice(b"ssfz");
        v.extend_from_slice(hex(&self.g.tag).as_bytes());
        v.extend_from_slice(suffix);
        v
    }

    fn named_bytes(&self, which: Named) -> Vec<u8> {
        let inet = |s: &str| {
            let (ss, len) = sockaddr_of(&s.parse().expect("literal"));
            // SAFETY: the storage holds `len` initialised bytes.
            unsafe { core::slice::from_raw_parts((&raw const ss).cast::<u8>(), len as usize) }.to_vec()
        };
        match which {
            Named::Listener => self.named.get("L").cloned().unwrap_or_default(),
            Named::Udp1 => self.named.get("U1").cloned().unwrap_or_default(),
            Named::Udp2 => self.named.get("U2").cloned().unwrap_or_default(),
            Named::Udp6 => self.named.get("U6").cloned().unwrap_or_default(),
            Named::Dead => inet(&format!("127.0.0.1:{}", self.g.dead_port)),
            Named::UnixListener => self.unix_name(b"L"),
            Named::Unspec => {
                let mut v = vec![0u8; 16];
                v[..2].copy_from_slice(&(libc::AF_UNSPEC as u16).to_ne_bytes());
                v
            }
            Named::Any4 => inet("127.0.0.1:0"),
            Named::Any6 => inet("[::1]:0"),
            Named::UnixAuto => (libc::AF_UNIX as u16).to_ne_bytes().to_vec(),
            Named::Mapped => {
                let port = self.port_of(Named::Listener);
                inet(&format!("[::ffff:127.0.0.1]:{port}"))
            }
            Named::UnixFresh => self.unix_name(b"fresh"),
        }
    }

    fn port_of(&self, which: Named) -> u16 {
        let b = self.named_bytes(which);
        if b.len() >= 4 {
            u16::from_be_bytes([b[2], b[3]])
        } else {
            0
        }
    }

    // ----- placing arguments ---------------------------------------------

    fn small_place(&self, place: Place, valid_at: usize, tail: TailArea) -> *mut c_void {
        let ar = &self.g.arena;
        match place {
            Place::Null => core::ptr::null_mut(),
            // SAFETY: the offsets lie in the small page.
            Place::Valid => unsafe { ar.small().add(valid_at) }.cast(),
            // SAFETY: as above; the object runs into the guard page after it.
            Place::Tail(k) => unsafe { ar.tail_end(tail).sub(usize::from(k)) }.cast(),
            Place::ReadOnly => ar.read_only().cast(),
            Place::Guard => ar.guard().cast(),
            Place::Kernel => core::ptr::without_provenance_mut(KERNEL),
            Place::Low => core::ptr::without_provenance_mut(1),
        }
    }

    /// Writes as much of `bytes` at `ptr` as lies in a writable area.
    fn put(&self, ptr: *mut c_void, bytes: &[u8]) {
        let keep = self.g.arena.observable(ptr, bytes.len()).len();
        self.g.arena.write(ptr, &bytes[..keep]);
    }

    fn buf(&self, b: Buf) -> (*mut c_void, usize) {
        let ar = &self.g.arena;
        let data = |off: usize| {
            // SAFETY: `off` is below DATA_LEN, inside the data area.
            unsafe { ar.data().add(off % DATA_LEN) }.cast::<c_void>()
        };
        match b {
            Buf::Null(n) => (core::ptr::null_mut(), n),
            Buf::Start { offset, len } => (data(usize::from(offset) * 64), len),
            Buf::AtGuard(n) => (data(DATA_LEN - n.min(DATA_LEN)), n),
            Buf::Short(n) => (data(DATA_LEN - (n / 2).min(DATA_LEN)), n),
            Buf::ReadOnly(n) => (ar.read_only().cast(), n),
            Buf::Guard(n) => (ar.guard().cast(), n),
            Buf::Kernel(n) => (core::ptr::without_provenance_mut(KERNEL), n),
            Buf::Huge { offset, count } => (data(usize::from(offset) * 64), count),
        }
    }

    /// Places an address argument in the small page (or points it wild).
    ///
    /// Raw addresses are made loopback-only: for every family but AF_UNIX
    /// the port is one of this side's own (or 0) and the IPv4 address field
    /// is 127.0.0.1 (the IPv6 one ::1), since an AF_UNSPEC or mismatched
    /// family can still be read as IPv4 by the kernel; an AF_UNIX name is
    /// always abstract and carries this process's tag (no file is ever made).
    fn addr_in(&self, a: &AddrIn) -> (*const sockaddr, socklen_t) {
        self.addr_arg(a, true)
    }

    /// As [`Run::addr_in`]; with `fill` false the bytes are not written (a
    /// receive's name buffer keeps the arena's content, the same on both sides).
    fn addr_arg(&self, a: &AddrIn, fill: bool) -> (*const sockaddr, socklen_t) {
        let (place, bytes, len) = match a {
            AddrIn::Null(len) => return (core::ptr::null(), *len),
            AddrIn::Wild { place, len } => {
                return (
                    self.small_place(*place, small::ADDR_IN, TailArea::Addr)
                        .cast_const()
                        .cast(),
                    *len,
                );
            }
            AddrIn::Named { which, len } => {
                let bytes = self.named_bytes(*which);
                let natural = bytes.len() as u32;
                (Place::Valid, bytes, len.unwrap_or(natural))
            }
            AddrIn::Raw {
                family,
                body,
                port,
                len,
            } => {
                let mut bytes = vec![0u8; 128];
                bytes[..2].copy_from_slice(&family.to_ne_bytes());
                let n = body.len().min(126);
                bytes[2..2 + n].copy_from_slice(&body[..n]);
                let natural = if c_int::from(*family) == libc::AF_UNIX {
                    bytes[2] = 0;
                    let tag = hex(&self.g.tag);
                    bytes[3..11].copy_from_slice(tag.as_bytes());
                    (2 + n).max(3)
                } else {
                    bytes[2..4].copy_from_slice(&self.port_of(*port).to_be_bytes());
                    if c_int::from(*family) == libc::AF_INET6 {
                        bytes[8..24].copy_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
                        28
                    } else {
                        bytes[4..8].copy_from_slice(&[127, 0, 0, 1]);
                        16
                    }
                };
                (Place::Valid, bytes, len.unwrap_or(natural as u32))
            }
        };
        let ptr = self.small_place(place, small::ADDR_IN, TailArea::Addr);
        if !fill {
            return (ptr.cast_const().cast(), len);
        }
        let mut room = vec![0u8; small::ADDR_ROOM];
        room[..bytes.len().min(small::ADDR_ROOM)].copy_from_slice(&bytes[..bytes.len().min(small::ADDR_ROOM)]);
        self.put(ptr, &room);
        (ptr.cast_const().cast(), len)
    }

    /// Places an output address and its length.
    fn addr_out(&self, o: &AddrOut, valid_at: usize) -> (*mut sockaddr, *mut socklen_t) {
        let addr = self.small_place(o.addr, valid_at, TailArea::Addr);
        let len = self.small_place(o.len_at, small::LEN, TailArea::Len);
        self.put(len, &o.len.to_ne_bytes());
        (addr.cast(), len.cast())
    }

    /// Observes an output address after a call: the length and the bytes.
    fn observe_addr_out(&mut self, out: &mut String, o: &AddrOut, addr: *mut sockaddr, len: *mut socklen_t) {
        let len_bytes = self.g.arena.observable(len.cast(), 4).to_vec();
        let _ = write!(out, " len={}", hex(&len_bytes));
        let room = (o.len as usize).min(small::ADDR_ROOM);
        let bytes = self.g.arena.observable(addr.cast(), room).to_vec();
        let written = if len_bytes.len() == 4 {
            (u32::from_ne_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize).min(bytes.len())
        } else {
            bytes.len()
        };
        let shown = self.canon.addr(&bytes[..written]);
        let _ = write!(out, " addr={shown} rest={:016x}", fnv(&bytes[written..]));
    }

    fn iov(&self, iov: &Iov, entries_for: usize) -> *mut iovec {
        let ar = &self.g.arena;
        let base: *mut c_void = match iov.array {
            Place::Valid => ar.iov().cast(),
            // SAFETY: the offset lies in the iovec area, which a guard page follows.
            Place::Tail(k) => unsafe { ar.iov().add(IOV_LEN - usize::from(k) * 4) }.cast(),
            other => return self.small_place(other, 0, TailArea::Header).cast(),
        };
        let n = entries_for.clamp(1, 1100);
        let mut bytes = Vec::with_capacity(n * size_of::<iovec>());
        for i in 0..n {
            let (p, l) = self.buf(iov.entries[i % iov.entries.len()]);
            bytes.extend_from_slice(&(p as usize).to_ne_bytes());
            bytes.extend_from_slice(&l.to_ne_bytes());
        }
        self.put(base, &bytes);
        base.cast()
    }

    /// Hashes of the data buffers a receive may have written.
    fn observe_bufs(&self, out: &mut String, bufs: &[Buf]) {
        let mut seen = BTreeSet::new();
        for &b in bufs {
            let (p, n) = self.buf(b);
            if !seen.insert((p as usize, n)) {
                continue;
            }
            let bytes = self.g.arena.observable(p, n);
            if !bytes.is_empty() {
                let _ = write!(out, " data={:016x}/{}", fnv(bytes), bytes.len());
            }
        }
    }

    fn ctrl_area(&self) -> *mut u8 {
        self.g.arena.ctrl()
    }

    /// Walks control messages as the kernel does (CMSG_FIRSTHDR/NXTHDR with
    /// CMSG_OK) and calls `each` with each header's offset.
    fn walk_cmsgs(&self, len: usize, mut each: impl FnMut(usize, &[u8])) {
        let area = self.g.arena.observable(self.ctrl_area().cast(), len.min(CTRL_LEN));
        let area = area.to_vec();
        let mut at = 0usize;
        let hdr = size_of::<libc::cmsghdr>();
        while at + hdr <= area.len() {
            let cl = usize::from_ne_bytes(area[at..at + 8].try_into().expect("8 bytes"));
            if cl < hdr || cl > area.len() - at {
                break;
            }
            each(at, &area[at..at + cl]);
            let next = at + ((cl + 7) & !7);
            if next + hdr > area.len() || next <= at {
                break;
            }
            at = next;
        }
    }

    /// Makes raw control data safe: a header at a level that could steer a
    /// packet (SOL_IP, SOL_IPV6: IP_PKTINFO picks the interface) gets a
    /// level no protocol reads.
    fn sanitize_ctrl(&self, len: usize) {
        let mut rewrite = Vec::new();
        self.walk_cmsgs(len, |at, h| {
            let level = c_int::from_ne_bytes(h[8..12].try_into().expect("4 bytes"));
            if level != libc::SOL_SOCKET {
                rewrite.push(at);
            }
        });
        for at in rewrite {
            // SAFETY: `at + 12` lies in the control area (the walk checked the header).
            unsafe {
                core::ptr::copy_nonoverlapping(0x7eadi32.to_ne_bytes().as_ptr(), self.ctrl_area().add(at + 8), 4);
            }
        }
    }

    fn msg(&self, m: &Msg, send: bool) -> *mut msghdr {
        let (name, namelen) = self.addr_arg(&m.name, send);
        let iov = self.iov(&m.iov, m.iovlen.min(1100));
        let ctrl_at = self.ctrl_area();
        let (control, natural): (*mut c_void, usize) = match &m.ctrl {
            Ctrl::None => (core::ptr::null_mut(), 0),
            Ctrl::Wild(p) => (self.small_place(*p, 0, TailArea::Len), 64),
            Ctrl::Rights(sels) if send => {
                let fds: Vec<c_int> = sels.iter().map(|&s| self.fd(s)).collect();
                // SAFETY: CMSG_LEN/CMSG_SPACE are size computations.
                let (l, space) = unsafe {
                    (
                        libc::CMSG_LEN(4 * fds.len() as u32),
                        libc::CMSG_SPACE(4 * fds.len() as u32),
                    )
                };
                let mut v = (l as usize).to_ne_bytes().to_vec();
                v.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
                v.extend_from_slice(&libc::SCM_RIGHTS.to_ne_bytes());
                for fd in fds {
                    v.extend_from_slice(&fd.to_ne_bytes());
                }
                self.put(ctrl_at.cast(), &v);
                (ctrl_at.cast(), space as usize)
            }
            Ctrl::Creds if send => {
                // SAFETY: CMSG_LEN/CMSG_SPACE are size computations; the ids are plain calls.
                let (l, space, pid, uid, gid) = unsafe {
                    (
                        libc::CMSG_LEN(12),
                        libc::CMSG_SPACE(12),
                        libc::getpid(),
                        libc::getuid(),
                        libc::getgid(),
                    )
                };
                let mut v = (l as usize).to_ne_bytes().to_vec();
                v.extend_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
                v.extend_from_slice(&libc::SCM_CREDENTIALS.to_ne_bytes());
                v.extend_from_slice(&pid.to_ne_bytes());
                v.extend_from_slice(&uid.to_ne_bytes());
                v.extend_from_slice(&gid.to_ne_bytes());
                self.put(ctrl_at.cast(), &v);
                (ctrl_at.cast(), space as usize)
            }
            Ctrl::Raw(bytes) if send => {
                self.put(ctrl_at.cast(), bytes);
                (ctrl_at.cast(), bytes.len())
            }
            _ => (ctrl_at.cast(), 64),
        };
        let controllen = m.ctrl_len.unwrap_or(natural);
        if send && control == ctrl_at.cast() {
            self.sanitize_ctrl(controllen);
        }
        // SAFETY: msghdr is plain data; all zeroes is valid.
        let mut h: msghdr = unsafe { core::mem::zeroed() };
        h.msg_name = name.cast_mut().cast();
        h.msg_namelen = namelen;
        h.msg_iov = iov;
        h.msg_iovlen = m.iovlen;
        h.msg_control = control;
        h.msg_controllen = controllen;
        h.msg_flags = m.flags;
        let at = self.small_place(m.header, small::MSG, TailArea::Header);
        // SAFETY: viewing a local msghdr as bytes.
        let bytes = unsafe { core::slice::from_raw_parts((&raw const h).cast::<u8>(), size_of::<msghdr>()) };
        self.put(at, bytes);
        at.cast()
    }

    /// Writes a helper's address text. Ports are of the helper's own
    /// protocol (a TCP helper gets TCP ports, UDP gets UDP ones): whether a
    /// port number is free in the other protocol's space depends on what
    /// else the machine runs, so it would differ between the two runs.
    fn text(&self, sel: u8, udp: bool) -> *const core::ffi::c_char {
        if sel == 0xfe {
            return core::ptr::null();
        }
        let (l, d) = if udp {
            (self.port_of(Named::Udp2), self.port_of(Named::Udp1))
        } else {
            (self.port_of(Named::Listener), self.g.dead_port)
        };
        let t = ops::TEXTS[usize::from(sel) % ops::TEXTS.len()]
            .replace("{L}", &l.to_string())
            .replace("{D}", &d.to_string());
        let mut bytes = t.into_bytes();
        bytes.push(0);
        // SAFETY: the text slot lies in the small page.
        let at = unsafe { self.g.arena.small().add(small::TEXT) };
        self.g
            .arena
            .write(at.cast(), &bytes[..bytes.len().min(small::TEXT_ROOM)]);
        at.cast_const().cast()
    }

    // ----- running calls -------------------------------------------------

    /// Runs one call with errno set to the sentinel and SIGPIPE watched;
    /// returns the result, errno, and whether SIGPIPE was raised.
    fn call(&mut self, f: impl FnOnce(&Api) -> i64) -> (i64, c_int, bool) {
        take_sigpipe();
        set_errno(ERRNO_SENTINEL);
        let ret = f(self.api);
        let e = errno();
        let pipe = take_sigpipe();
        (ret, e, pipe)
    }

    fn run_op(&mut self, op: &Op) {
        let mut o = String::new();
        let target = op_fd(op).map(|s| self.fd(s));
        let on_socket = target.is_some_and(is_socket);
        let (ret, e, pipe) = self.dispatch(op, target.unwrap_or(-1), &mut o);
        let name = op_name(op);
        let mut line = format!("{name} ret={ret} errno={e}");
        if pipe {
            if on_socket {
                if self.is_ss() {
                    self.problems.push(format!(
                        "step {}: {name} on socket fd {} raised SIGPIPE (safety default 2)",
                        self.step,
                        target.unwrap_or(-1)
                    ));
                }
            } else {
                line.push_str(" SIGPIPE");
            }
        }
        line.push_str(&o);
        if self.is_ss() && ret == -1 && name.starts_with("ss_") {
            self.check_message(name);
        }
        // Descriptors no one asked for (a leak, or ones the kernel installs
        // even when the call then fails): compared, then owned and closed.
        let stray: Vec<c_int> = open_set(scan_limit(self.highest))
            .into_iter()
            .filter(|fd| !self.open.contains(fd) && !self.baseline.contains(fd))
            .collect();
        if !stray.is_empty() {
            let _ = write!(line, " new-fds={stray:?}");
            for fd in stray {
                self.adopt(fd, false, "");
            }
        }
        let gone: Vec<c_int> = self.open.iter().copied().filter(|&fd| !is_open(fd)).collect();
        if !gone.is_empty() {
            let _ = write!(line, " closed-fds={gone:?}");
            for fd in gone {
                self.open.remove(&fd);
            }
        }
        self.log.push(line);
    }

    fn check_message(&mut self, name: &str) {
        let ptr = safesock::ffi::ss_last_error();
        // SAFETY: ss_last_error returns a NUL-terminated string valid until
        // the next ss_ call on this thread; it is copied at once.
        let bytes = unsafe { core::ffi::CStr::from_ptr(ptr) }.to_bytes().to_vec();
        let step = self.step;
        match core::str::from_utf8(&bytes) {
            Err(_) => self
                .problems
                .push(format!("step {step}: ss_last_error is not UTF-8: {bytes:?}")),
            Ok(m) if m.len() > 511 => self
                .problems
                .push(format!("step {step}: ss_last_error over 511 bytes: {m}")),
            Ok(m) if m.starts_with("internal error") => {
                self.problems.push(format!("step {step}: a panic was contained: {m}"));
            }
            Ok(m) if !m.starts_with(&format!("{name}(")) => {
                self.problems
                    .push(format!("step {step}: ss_last_error does not name {name}: {m}"));
            }
            Ok(_) => {}
        }
    }

    #[allow(clippy::too_many_lines)]
    fn dispatch(&mut self, op: &Op, fd: c_int, o: &mut String) -> (i64, c_int, bool) {
        let w = |r: isize| r as i64;
        let i = |r: c_int| i64::from(r);
        match op {
            Op::Socket { domain, ty, protocol } => {
                let ty = ops::sanitize_socket(*ty);
                // SAFETY: integer arguments only.
                let r = self.call(|a| i(unsafe { (a.socket)(*domain, ty, *protocol) }));
                self.adopt(r.0 as c_int, true, "socket");
                r
            }
            Op::Socketpair {
                domain,
                ty,
                protocol,
                sv,
            } => {
                let ty = ops::sanitize_socket(*ty);
                let p = self.small_place(*sv, small::SV, TailArea::Header);
                // SAFETY: the kernel checks `sv`.
                let r = self.call(|a| i(unsafe { (a.socketpair)(*domain, ty, *protocol, p.cast()) }));
                let got = self.g.arena.observable(p, 8).to_vec();
                let _ = write!(o, " sv={}", hex(&got));
                if r.0 == 0 && got.len() == 8 {
                    for chunk in got.chunks(4) {
                        self.adopt(
                            c_int::from_ne_bytes(chunk.try_into().expect("4 bytes")),
                            true,
                            "socketpair",
                        );
                    }
                }
                r
            }
            Op::Bind { addr, .. } => {
                let (p, l) = self.addr_in(addr);
                // SAFETY: the kernel checks the address.
                let r = self.call(|a| i(unsafe { (a.bind)(fd, p, l) }));
                self.used(fd, r.0);
                r
            }
            Op::Listen { backlog, .. } => {
                // SAFETY: integer arguments only.
                let r = self.call(|a| i(unsafe { (a.listen)(fd, *backlog) }));
                self.used(fd, r.0);
                r
            }
            Op::Connect { addr, .. } => {
                let (p, l) = self.addr_in(addr);
                // SAFETY: the kernel checks the address.
                let r = self.call(|a| i(unsafe { (a.connect)(fd, p, l) }));
                self.used(fd, r.0);
                self.settle(fd, r);
                r
            }
            Op::Accept { peer, .. } | Op::Accept4 { peer, .. } => {
                let (p, l) = self.addr_out(peer, small::ADDR_OUT);
                let r = match op {
                    Op::Accept4 { flags, .. } => {
                        let flags = flags | libc::SOCK_NONBLOCK;
                        // SAFETY: the kernel checks both pointers.
                        self.call(|a| i(unsafe { (a.accept4)(fd, p, l, flags) }))
                    }
                    // SAFETY: the kernel checks both pointers.
                    _ => self.call(|a| i(unsafe { (a.accept)(fd, p, l) })),
                };
                self.observe_addr_out(o, peer, p, l);
                self.used(fd, r.0);
                if r.0 >= 0 {
                    set_nonblocking(r.0 as c_int);
                    self.adopt(r.0 as c_int, true, "accept");
                }
                r
            }
            Op::Read { buf, .. } | Op::Recv { buf, .. } | Op::RecvExact { buf, .. } => {
                let (p, n) = self.buf(*buf);
                let r = match op {
                    Op::Recv { flags, .. } => {
                        let flags = flags | libc::MSG_DONTWAIT;
                        // SAFETY: the kernel checks the buffer.
                        self.call(|a| w(unsafe { (a.recv)(fd, p, n, flags) }))
                    }
                    Op::RecvExact { .. } => {
                        // SAFETY: the kernel checks the buffer.
                        let r = self.call(|a| w(unsafe { (a.recv_exact)(fd, p, n) }));
                        // SAFETY: no arguments.
                        let t = unsafe { (self.api.transferred)() };
                        let _ = write!(o, " transferred={t}");
                        r
                    }
                    // SAFETY: the kernel checks the buffer.
                    _ => self.call(|a| w(unsafe { (a.read)(fd, p, n) })),
                };
                self.observe_bufs(o, &[*buf]);
                self.used(fd, r.0);
                r
            }
            Op::Write { buf, .. } | Op::Send { buf, .. } | Op::SendAll { buf, .. } => {
                let (p, n) = self.buf(*buf);
                let r = match op {
                    // SAFETY: the kernel checks the buffer.
                    Op::Send { flags, .. } => self.call(|a| w(unsafe { (a.send)(fd, p, n, *flags) })),
                    Op::SendAll { .. } => {
                        // SAFETY: the kernel checks the buffer.
                        let r = self.call(|a| w(unsafe { (a.send_all)(fd, p, n) }));
                        // SAFETY: no arguments.
                        let t = unsafe { (self.api.transferred)() };
                        let _ = write!(o, " transferred={t}");
                        r
                    }
                    // SAFETY: the kernel checks the buffer.
                    _ => self.call(|a| w(unsafe { (a.write)(fd, p, n) })),
                };
                self.used(fd, r.0);
                r
            }
            Op::Readv { iov, .. } | Op::Writev { iov, .. } => {
                let arr = self.iov(iov, iov.count.max(0) as usize);
                let count = iov.count;
                let r = if matches!(op, Op::Readv { .. }) {
                    // SAFETY: the kernel checks the array and buffers.
                    self.call(|a| w(unsafe { (a.readv)(fd, arr, count) }))
                } else {
                    // SAFETY: the kernel checks the array and buffers.
                    self.call(|a| w(unsafe { (a.writev)(fd, arr, count) }))
                };
                if matches!(op, Op::Readv { .. }) {
                    self.observe_bufs(o, &iov.entries);
                }
                self.used(fd, r.0);
                r
            }
            Op::Recvmsg { msg, flags, .. } => {
                let h = self.msg(msg, false);
                let flags = flags | libc::MSG_DONTWAIT;
                // SAFETY: the kernel checks the header and what it points to.
                let r = self.call(|a| w(unsafe { (a.recvmsg)(fd, h, flags) }));
                self.observe_msg(o, msg, h, r.0);
                self.used(fd, r.0);
                r
            }
            Op::Sendmsg { msg, flags, .. } => {
                let h = self.msg(msg, true);
                // SAFETY: the kernel checks the header and what it points to.
                let r = self.call(|a| w(unsafe { (a.sendmsg)(fd, h, *flags) }));
                self.used(fd, r.0);
                self.settle(fd, r);
                r
            }
            Op::Recvfrom { buf, flags, peer, .. } => {
                let (p, n) = self.buf(*buf);
                let (ap, al) = self.addr_out(peer, small::ADDR_OUT);
                let flags = flags | libc::MSG_DONTWAIT;
                // SAFETY: the kernel checks every pointer.
                let r = self.call(|a| w(unsafe { (a.recvfrom)(fd, p, n, flags, ap, al) }));
                self.observe_bufs(o, &[*buf]);
                self.observe_addr_out(o, peer, ap, al);
                self.used(fd, r.0);
                r
            }
            Op::Sendto { buf, flags, addr, .. } => {
                let (p, n) = self.buf(*buf);
                let (ap, al) = self.addr_in(addr);
                // SAFETY: the kernel checks every pointer.
                let r = self.call(|a| w(unsafe { (a.sendto)(fd, p, n, *flags, ap, al) }));
                self.used(fd, r.0);
                self.settle(fd, r);
                r
            }
            Op::Shutdown { how, .. } => {
                // SAFETY: integer arguments only.
                let r = self.call(|a| i(unsafe { (a.shutdown)(fd, *how) }));
                self.used(fd, r.0);
                r
            }
            Op::Close { .. } => self.close(fd),
            Op::Getsockname { out, .. } | Op::Getpeername { out, .. } => {
                let (p, l) = self.addr_out(out, small::ADDR_OUT);
                let r = if matches!(op, Op::Getsockname { .. }) {
                    // SAFETY: the kernel checks both pointers.
                    self.call(|a| i(unsafe { (a.getsockname)(fd, p, l) }))
                } else {
                    // SAFETY: the kernel checks both pointers.
                    self.call(|a| i(unsafe { (a.getpeername)(fd, p, l) }))
                };
                self.observe_addr_out(o, out, p, l);
                self.used(fd, r.0);
                r
            }
            Op::Getsockopt {
                level, name, val, len, ..
            } => {
                let (p, _) = self.buf(*val);
                let lp = self.small_place(len.len_at, small::LEN, TailArea::Len);
                self.put(lp, &len.len.to_ne_bytes());
                // SAFETY: the kernel checks both pointers.
                let r = self.call(|a| i(unsafe { (a.getsockopt)(fd, *level, *name, p, lp.cast()) }));
                let lb = self.g.arena.observable(lp, 4).to_vec();
                let _ = write!(o, " optlen={}", hex(&lb));
                let n = if lb.len() == 4 {
                    (u32::from_ne_bytes([lb[0], lb[1], lb[2], lb[3]]) as usize)
                        .min(len.len as usize)
                        .min(512)
                } else {
                    0
                };
                let bytes = self.g.arena.observable(p, n).to_vec();
                let shown = self.option_value(*level, *name, &bytes);
                let _ = write!(o, " val={shown}");
                self.used(fd, r.0);
                r
            }
            Op::Setsockopt {
                level,
                name,
                val,
                content,
                len,
                ..
            } => {
                let mut name = *name;
                let mut val = *val;
                let mut content = content.clone();
                if ops::blocked_option(*level, name) {
                    name = ops::UNKNOWN_OPTION;
                }
                if *level == libc::SOL_SOCKET && name == libc::SO_LINGER {
                    // A lingering close could block: l_linger is always 0.
                    val = Buf::Start { offset: 0, len: 8 };
                    content.resize(8, 0);
                    content[4..8].fill(0);
                }
                let (p, _) = self.buf(val);
                self.put(p, &content);
                let l = len.unwrap_or(content.len() as u32);
                // SAFETY: the kernel checks the pointer.
                let r = self.call(|a| i(unsafe { (a.setsockopt)(fd, *level, name, p, l) }));
                self.used(fd, r.0);
                r
            }
            Op::LocalPort { .. } => {
                // SAFETY: integer arguments only.
                let r = self.call(|a| i(unsafe { (a.local_port)(fd) }));
                self.used(fd, r.0);
                if r.0 >= 0 {
                    let shown = self.canon.port(r.0 as u16);
                    let _ = write!(o, " port={shown}");
                    return (0, r.1, r.2);
                }
                r
            }
            Op::TcpState { .. } => {
                // SAFETY: integer arguments only.
                let r = self.call(|a| i(unsafe { (a.tcp_state)(fd) }));
                self.used(fd, r.0);
                // The emulation reads tcpi_state alone; safesock tells a
                // socket whose connection went to TIME_WAIT (the socket
                // itself reads CLOSE) through sock_diag.
                if r.0 == 6 || r.0 == 7 {
                    return (67, r.1, r.2);
                }
                r
            }
            Op::TcpListen { .. } | Op::TcpConnect { .. } | Op::UdpBind { .. } => {
                let (sel, arg) = match op {
                    Op::TcpListen { text, backlog } => (*text, *backlog),
                    Op::TcpConnect { text, timeout } => (*text, *timeout),
                    Op::UdpBind { text } => (*text, 0),
                    _ => unreachable!("matched above"),
                };
                let t = self.text(sel, matches!(op, Op::UdpBind { .. }));
                let parses = !t.is_null() && {
                    // SAFETY: the text was just written NUL-terminated.
                    let s = unsafe { core::ffi::CStr::from_ptr(t) };
                    s.to_str()
                        .ok()
                        .and_then(|s| s.parse::<std::net::SocketAddr>().ok())
                        .is_some()
                };
                let lowest = self.lowest_free();
                let r = match op {
                    // SAFETY: the text is NUL-terminated (or NULL).
                    Op::TcpListen { .. } => self.call(|a| i(unsafe { (a.tcp_listen)(t, arg) })),
                    // SAFETY: as above.
                    Op::TcpConnect { .. } => self.call(|a| i(unsafe { (a.tcp_connect)(t, arg) })),
                    // SAFETY: as above.
                    _ => self.call(|a| i(unsafe { (a.udp_bind)(t) })),
                };
                if parses && self.is_ss() {
                    // The helper made a socket on the lowest free number:
                    // handed out, or released again on failure.
                    self.closed_by_ss.remove(&lowest);
                }
                if r.0 >= 0 {
                    set_nonblocking(r.0 as c_int);
                    self.adopt(r.0 as c_int, true, "a helper");
                }
                r
            }
            Op::PlainPipe => {
                let mut p = [-1; 2];
                // SAFETY: `p` has room for two descriptors.
                let r = self.call(|_| i(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK) }));
                if r.0 == 0 {
                    let _ = write!(o, " fds={p:?}");
                    self.adopt(p[0], false, "");
                    self.adopt(p[1], false, "");
                }
                r
            }
            Op::PlainDup { .. } => {
                // SAFETY: F_DUPFD with integer arguments.
                let r = self.call(|_| i(unsafe { libc::fcntl(fd, libc::F_DUPFD, 0) }));
                self.adopt(r.0 as c_int, false, "");
                r
            }
            Op::PlainClose { .. } => {
                if is_open(fd) && !self.open.contains(&fd) {
                    // Never close what this run does not own.
                    return (-2, 0, false);
                }
                // SAFETY: closing a descriptor this run owns (or none).
                let r = self.call(|_| i(unsafe { libc::close(fd) }));
                if r.0 == 0 {
                    self.open.remove(&fd);
                }
                r
            }
        }
    }

    /// The double-close model: a number ss_close closed, and no ss_ call
    /// handed out or used since, is refused with EBADF and stays as it is
    /// (open if plain code reopened it). Then the harness does what the
    /// contract tells a program to do, a plain `close`, so that both sides
    /// continue with the same descriptors.
    fn close(&mut self, fd: c_int) -> (i64, c_int, bool) {
        if is_open(fd) && !self.open.contains(&fd) {
            return (-2, 0, false);
        }
        let refused = self.is_ss() && self.closed_by_ss.contains(&fd);
        let was_open = is_open(fd);
        // SAFETY: closing a descriptor this run owns (or none).
        let r = self.call(|a| i64::from(unsafe { (a.close)(fd) }));
        if refused {
            if r.0 != -1 || r.1 != libc::EBADF {
                self.problems.push(format!(
                    "step {}: ss_close({fd}) of a number ss_close closed returned {} errno {} (safety default 3: -1/EBADF)",
                    self.step, r.0, r.1
                ));
            }
            if was_open != is_open(fd) {
                self.problems.push(format!(
                    "step {}: the refused ss_close({fd}) closed the descriptor",
                    self.step
                ));
            }
            let m = last_error_text();
            if !m.contains("already closed by ss_close") {
                self.problems.push(format!(
                    "step {}: the refused ss_close({fd}) does not say why: {m}",
                    self.step
                ));
            }
            if was_open {
                // SAFETY: the descriptor is open and this run owns it.
                let rc = unsafe { libc::close(fd) };
                self.open.remove(&fd);
                return (i64::from(rc), ERRNO_SENTINEL, r.2);
            }
            return r;
        }
        if r.0 == 0 {
            self.open.remove(&fd);
            if self.is_ss() {
                self.closed_by_ss.insert(fd);
            }
        }
        r
    }

    /// After a call that may have started a loopback handshake, waits for it
    /// (bounded), so that the next call sees the same state on both sides.
    fn settle(&self, fd: c_int, r: (i64, c_int, bool)) {
        if r.0 == -1 && r.1 == libc::EINPROGRESS {
            poll_one(fd, libc::POLLOUT, 50);
        }
    }

    fn observe_msg(&mut self, o: &mut String, m: &Msg, h: *mut msghdr, ret: i64) {
        if m.header != Place::Valid {
            return;
        }
        // SAFETY: a Valid header lies in the small page, which we own.
        let after: msghdr = unsafe { core::ptr::read_unaligned(h) };
        let _ = write!(
            o,
            " namelen={} controllen={} flags={:#x}",
            after.msg_namelen, after.msg_controllen, after.msg_flags
        );
        if !after.msg_name.is_null() {
            let room = (match &m.name {
                AddrIn::Null(l) | AddrIn::Wild { len: l, .. } => *l,
                AddrIn::Named { len, .. } | AddrIn::Raw { len, .. } => len.unwrap_or(128),
            } as usize)
                .min(small::ADDR_ROOM);
            let bytes = self.g.arena.observable(after.msg_name, room).to_vec();
            let n = (after.msg_namelen as usize).min(bytes.len());
            let shown = self.canon.addr(&bytes[..n]);
            let _ = write!(o, " name={shown}");
        }
        self.observe_bufs(o, &m.iov.entries);
        if after.msg_control == self.ctrl_area().cast() {
            let mut cmsgs = Vec::new();
            self.walk_cmsgs(after.msg_controllen, |_, c| cmsgs.push(c.to_vec()));
            for c in cmsgs {
                let level = c_int::from_ne_bytes(c[8..12].try_into().expect("4 bytes"));
                let ty = c_int::from_ne_bytes(c[12..16].try_into().expect("4 bytes"));
                let data = &c[16..];
                let shown = match (level, ty) {
                    (libc::SOL_SOCKET, libc::SCM_CREDENTIALS) if data.len() >= 12 => {
                        format!("creds(uid {}, gid {})", hex(&data[4..8]), hex(&data[8..12]))
                    }
                    (libc::SOL_SOCKET, 29 | 35 | 37 | 63 | 64 | 65) => "timestamp".to_owned(),
                    (libc::SOL_IP, 20) | (libc::SOL_IPV6, 74) => self.canon.addr(data),
                    (libc::SOL_SOCKET, libc::SCM_RIGHTS) if ret >= 0 => {
                        let fds: Vec<c_int> = data
                            .chunks_exact(4)
                            .map(|ch| c_int::from_ne_bytes(ch.try_into().expect("4")))
                            .collect();
                        for &fd in &fds {
                            if is_open(fd) && !self.open.contains(&fd) {
                                self.adopt(fd, true, "recvmsg SCM_RIGHTS");
                            }
                        }
                        format!("fds{fds:?}")
                    }
                    _ => hex(data),
                };
                let _ = write!(o, " cmsg({level},{ty})={shown}");
            }
        }
    }

    /// An option value, with what differs between runs by nature masked.
    fn option_value(&mut self, level: c_int, name: c_int, bytes: &[u8]) -> String {
        let volatile = match level {
            // SO_COOKIE, SO_MEMINFO, SO_INCOMING_CPU, SO_INCOMING_NAPI_ID
            libc::SOL_SOCKET => matches!(name, 49 | 55 | 56 | 57),
            // TCP_INFO, TCP_QUEUE_SEQ, TCP_TIMESTAMP, TCP_CC_INFO, TCP_SAVED_SYN,
            // TCP_REPAIR_WINDOW, TCP_ZEROCOPY_RECEIVE: clocks, sequence numbers, SYN headers
            libc::IPPROTO_TCP => matches!(name, 11 | 17 | 24 | 26 | 28 | 29 | 35),
            // IP_PROTOCOL (for TCP and UDP the local port: each side's
            // socket has its own), SO_ORIGINAL_DST
            libc::IPPROTO_IP => matches!(name, 52 | 80),
            _ => false,
        };
        if volatile {
            return format!("<volatile {} bytes>", bytes.len());
        }
        match (level, name) {
            // SO_PEERCRED: the peer's pid is the process that made it.
            (libc::SOL_SOCKET, libc::SO_PEERCRED) if bytes.len() >= 4 => format!("pid?{}", hex(&bytes[4..])),
            // SO_PEERNAME: an address.
            (libc::SOL_SOCKET, 28) => self.canon.addr(bytes),
            _ => hex(bytes),
        }
    }

    /// Closes everything this run owns; on the ss side also forgets what
    /// safesock's descriptor table learnt about the numbers used, so that
    /// the next input starts from the same state (reproducible findings).
    fn cleanup(&mut self) {
        for &fd in &self.open {
            // SAFETY: this run owns the descriptor.
            unsafe { libc::close(fd) };
        }
        self.open.clear();
        if self.is_ss() {
            let hi = scan_limit(self.highest);
            for fd in (0..=hi).chain([self.g.unused_fd, c_int::MAX]) {
                if !is_open(fd) {
                    safesock::fdtable::released(fd);
                }
            }
        }
    }
}

fn last_error_text() -> String {
    let ptr = safesock::ffi::ss_last_error();
    // SAFETY: ss_last_error returns a NUL-terminated string; copied at once.
    unsafe { core::ffi::CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
}

/// The descriptor choice an op acts on.
fn op_fd(op: &Op) -> Option<u8> {
    Some(match op {
        Op::Bind { fd, .. }
        | Op::Listen { fd, .. }
        | Op::Connect { fd, .. }
        | Op::Accept { fd, .. }
        | Op::Accept4 { fd, .. }
        | Op::Read { fd, .. }
        | Op::Write { fd, .. }
        | Op::Recv { fd, .. }
        | Op::Send { fd, .. }
        | Op::Readv { fd, .. }
        | Op::Writev { fd, .. }
        | Op::Recvmsg { fd, .. }
        | Op::Sendmsg { fd, .. }
        | Op::Recvfrom { fd, .. }
        | Op::Sendto { fd, .. }
        | Op::Shutdown { fd, .. }
        | Op::Close { fd }
        | Op::Getsockname { fd, .. }
        | Op::Getpeername { fd, .. }
        | Op::Getsockopt { fd, .. }
        | Op::Setsockopt { fd, .. }
        | Op::SendAll { fd, .. }
        | Op::RecvExact { fd, .. }
        | Op::LocalPort { fd }
        | Op::TcpState { fd }
        | Op::PlainDup { fd }
        | Op::PlainClose { fd } => *fd,
        _ => return None,
    })
}

/// Whether a call may write into the data area (then it is reset after it).
fn writes_data(op: &Op) -> bool {
    matches!(
        op,
        Op::Read { .. }
            | Op::Recv { .. }
            | Op::Readv { .. }
            | Op::Recvmsg { .. }
            | Op::Recvfrom { .. }
            | Op::RecvExact { .. }
            | Op::Getsockopt { .. }
            | Op::Setsockopt { .. }
    )
}

/// The ss_ name of an op (plain ops are named for what they do).
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Socket { .. } => "ss_socket",
        Op::Socketpair { .. } => "ss_socketpair",
        Op::Bind { .. } => "ss_bind",
        Op::Listen { .. } => "ss_listen",
        Op::Connect { .. } => "ss_connect",
        Op::Accept { .. } => "ss_accept",
        Op::Accept4 { .. } => "ss_accept4",
        Op::Read { .. } => "ss_read",
        Op::Write { .. } => "ss_write",
        Op::Recv { .. } => "ss_recv",
        Op::Send { .. } => "ss_send",
        Op::Readv { .. } => "ss_readv",
        Op::Writev { .. } => "ss_writev",
        Op::Recvmsg { .. } => "ss_recvmsg",
        Op::Sendmsg { .. } => "ss_sendmsg",
        Op::Recvfrom { .. } => "ss_recvfrom",
        Op::Sendto { .. } => "ss_sendto",
        Op::Shutdown { .. } => "ss_shutdown",
        Op::Close { .. } => "ss_close",
        Op::Getsockname { .. } => "ss_getsockname",
        Op::Getpeername { .. } => "ss_getpeername",
        Op::Getsockopt { .. } => "ss_getsockopt",
        Op::Setsockopt { .. } => "ss_setsockopt",
        Op::SendAll { .. } => "ss_send_all",
        Op::RecvExact { .. } => "ss_recv_exact",
        Op::LocalPort { .. } => "ss_local_port",
        Op::TcpState { .. } => "ss_tcp_state",
        Op::TcpListen { .. } => "ss_tcp_listen",
        Op::UdpBind { .. } => "ss_udp_bind",
        Op::TcpConnect { .. } => "ss_tcp_connect",
        Op::PlainPipe => "plain pipe2",
        Op::PlainDup { .. } => "plain dup",
        Op::PlainClose { .. } => "plain close",
    }
}

/// Runs the whole program on one side: setup, every call, cleanup.
pub fn run_side(api: &'static Api, g: &Globals, ops: &[Op]) -> SideOutcome {
    g.arena.reset();
    let mut run = Run::new(api, g);
    run.setup();
    for (step, op) in ops.iter().enumerate() {
        run.step = step;
        run.run_op(op);
        g.arena.reset_small();
        if writes_data(op) {
            g.arena.reset_data();
        }
    }
    run.cleanup();
    SideOutcome {
        log: run.log,
        problems: run.problems,
    }
}
