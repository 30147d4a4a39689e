//! Fresh resources for one run of a case, created through the run's own side
//! (so every socket on the `ss_` side comes from an `ss_` call), plus the
//! deliberately bad arguments the cases feed in: invalid descriptor numbers,
//! non-socket descriptors, and the generators that turn one call into a case
//! per bad argument (the wild pointers and the reserved descriptor numbers
//! themselves come from the shared test support, `tests/common/`).

use std::ffi::CString;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libc::{c_int, sockaddr, socklen_t};

use crate::common::{Wild, errno, reserve_fd, set_timeouts, try_getsockopt_int};
use crate::harness::{Case, Owned, Probe};

/// Safety-net timeout on every socket a probe makes, so that a wrong result
/// turns into a failed comparison rather than a hung test.
const SAFETY_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for loopback traffic to arrive.
pub const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Moves `fd` (made with plain libc) to a fresh reserved number, owned by libc.
fn to_reserved(p: &mut Probe, fd: c_int) -> c_int {
    let reserved = reserve_fd();
    // SAFETY: reserved numbers are never open before this dup2, so nothing is replaced.
    let rc = unsafe { libc::dup2(fd, reserved) };
    assert_eq!(rc, reserved, "dup2: errno {}", errno());
    // SAFETY: fd was made by the caller with plain libc and is no longer needed.
    unsafe { libc::close(fd) };
    p.own(Owned::ByLibc(reserved));
    reserved
}

/// A socket address in a buffer large enough for every length a case passes.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct RawAddr {
    pub bytes: [u8; 256],
    pub len: socklen_t,
}

/// The byte the out-buffers are filled with, so untouched bytes show.
pub const PATTERN: u8 = 0xa5;

impl RawAddr {
    /// An output buffer: all [`PATTERN`].
    pub fn pattern() -> Self {
        RawAddr {
            bytes: [PATTERN; 256],
            len: 0,
        }
    }

    fn from_sockaddr(addr: &socket2::SockAddr) -> Self {
        let mut raw = RawAddr {
            bytes: [0; 256],
            len: addr.len(),
        };
        // SAFETY: SockAddr's storage holds addr.len() initialised bytes.
        let src = unsafe { std::slice::from_raw_parts(addr.as_ptr().cast::<u8>(), addr.len() as usize) };
        raw.bytes[..src.len()].copy_from_slice(src);
        raw
    }

    pub fn inet(addr: SocketAddr) -> Self {
        RawAddr::from_sockaddr(&socket2::SockAddr::from(addr))
    }

    pub fn v4(ip: [u8; 4], port: u16) -> Self {
        RawAddr::inet(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
    }

    pub fn v6(ip: Ipv6Addr, port: u16) -> Self {
        RawAddr::inet(SocketAddr::V6(SocketAddrV6::new(ip, port, 0, 0)))
    }

    /// `AF_UNIX` with `name` as `sun_path` and `extra` more bytes of length
    /// (1 for a path's terminating NUL, 0 for an abstract name).
    pub fn unix(name: &[u8], extra: usize) -> Self {
        let mut raw = RawAddr {
            bytes: [0; 256],
            len: 0,
        };
        raw.bytes[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        raw.bytes[2..2 + name.len()].copy_from_slice(name);
        raw.len = socklen_t::try_from(2 + name.len() + extra).expect("short");
        raw
    }

    /// A copy with another family number.
    pub fn with_family(mut self, family: c_int) -> Self {
        self.bytes[..2].copy_from_slice(&(family as u16).to_ne_bytes());
        self
    }

    pub fn port(&self) -> u16 {
        u16::from_be_bytes([self.bytes[2], self.bytes[3]])
    }

    pub fn ptr(&self) -> *const sockaddr {
        self.bytes.as_ptr().cast()
    }

    pub fn mut_ptr(&mut self) -> *mut sockaddr {
        self.bytes.as_mut_ptr().cast()
    }
}

/// Which kind of address a socket lives at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
    UnixPath,
    UnixAbstract,
}

impl Family {
    pub fn domain(self) -> c_int {
        match self {
            Family::V4 => libc::AF_INET,
            Family::V6 => libc::AF_INET6,
            Family::UnixPath | Family::UnixAbstract => libc::AF_UNIX,
        }
    }
}

/// A connected stream (or seqpacket) pair made by listen/connect/accept.
pub struct Conn {
    pub client: c_int,
    pub server: c_int,
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// Recognised paths are replaced by a same-length mark in observations.
fn mark_fill(index: usize) -> u8 {
    b'A' + u8::try_from(index % 26).expect("small")
}

impl Probe {
    /// Fails the preparation (not the comparison) with the current errno.
    fn prep(&self, what: &str, ok: bool) {
        assert!(
            ok,
            "preparing {what} on the {:?} side failed: errno {}",
            self.side(),
            errno()
        );
    }

    /// A socket made through this side's `socket`, with the safety-net timeouts.
    pub fn sock(&mut self, domain: c_int, ty: c_int) -> c_int {
        // SAFETY: socket takes no pointer.
        let fd = unsafe { (self.api.socket)(domain, ty, 0) };
        self.prep("a socket", fd >= 0);
        self.own(Owned::ByApi(fd));
        set_safety_timeouts(fd);
        fd
    }

    pub fn tcp4(&mut self) -> c_int {
        self.sock(libc::AF_INET, libc::SOCK_STREAM)
    }

    pub fn udp4(&mut self) -> c_int {
        self.sock(libc::AF_INET, libc::SOCK_DGRAM)
    }

    /// A connected `AF_UNIX` pair from this side's `socketpair`.
    pub fn pair(&mut self, ty: c_int) -> (c_int, c_int) {
        let mut sv = [-1; 2];
        // SAFETY: sv is a live two-element array.
        let rc = unsafe { (self.api.socketpair)(libc::AF_UNIX, ty, 0, sv.as_mut_ptr()) };
        self.prep("a socketpair", rc == 0);
        for fd in sv {
            self.own(Owned::ByApi(fd));
            set_safety_timeouts(fd);
        }
        (sv[0], sv[1])
    }

    /// The probe's own temporary directory (same path length on both sides).
    pub fn dir(&mut self) -> PathBuf {
        if let Some(dir) = &self.dir {
            return dir.clone();
        }
        let mut base = std::env::temp_dir();
        if base.as_os_str().len() > 40 {
            base = PathBuf::from("/tmp");
        }
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("ssdiff-{:07}-{n:08}", std::process::id()));
        std::fs::create_dir(&dir).expect("create the probe directory");
        self.own(Owned::Dir(dir.clone()));
        self.mark(dir.as_os_str().as_bytes().to_vec());
        self.dir = Some(dir.clone());
        dir
    }

    /// A fresh path in the probe directory; removed after the run.
    pub fn path(&mut self, name: &str) -> PathBuf {
        let path = self.dir().join(name);
        self.own(Owned::File(path.clone()));
        path
    }

    /// A fresh `AF_UNIX` address: a path in the probe directory or a unique
    /// abstract name.
    pub fn unix_addr(&mut self, family: Family) -> RawAddr {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let name = format!("s{n:08}");
        match family {
            Family::UnixPath => {
                let path = self.path(&name);
                self.mark(path.as_os_str().as_bytes().to_vec());
                RawAddr::unix(path.as_os_str().as_bytes(), 1)
            }
            Family::UnixAbstract => {
                let abstract_name = format!("\0ssdiff-{:07}-{name}", std::process::id());
                self.mark(abstract_name.as_bytes()[1..].to_vec());
                RawAddr::unix(abstract_name.as_bytes(), 0)
            }
            Family::V4 | Family::V6 => unreachable!("not a unix family"),
        }
    }

    /// The loopback address of `family` with port 0, or a fresh unix address.
    pub fn any_addr(&mut self, family: Family) -> RawAddr {
        match family {
            Family::V4 => RawAddr::v4([127, 0, 0, 1], 0),
            Family::V6 => RawAddr::v6(Ipv6Addr::LOCALHOST, 0),
            Family::UnixPath | Family::UnixAbstract => self.unix_addr(family),
        }
    }

    /// A socket of `family`/`ty` bound through this side; returns it and its
    /// actual address (with the port the system chose).
    pub fn bound(&mut self, family: Family, ty: c_int) -> (c_int, RawAddr) {
        let fd = self.sock(family.domain(), ty);
        let addr = self.any_addr(family);
        // SAFETY: addr is a live buffer holding addr.len valid bytes.
        let rc = unsafe { (self.api.bind)(fd, addr.ptr(), addr.len) };
        self.prep("bind", rc == 0);
        (fd, sockname(fd))
    }

    /// A listening socket of `family`/`ty` and its address.
    pub fn listener(&mut self, family: Family, ty: c_int) -> (c_int, RawAddr) {
        let (fd, addr) = self.bound(family, ty);
        // SAFETY: listen takes no pointer.
        let rc = unsafe { (self.api.listen)(fd, 16) };
        self.prep("listen", rc == 0);
        (fd, addr)
    }

    /// A client socket connected through this side to a fresh listener; the
    /// connection is not accepted yet. Returns (client, listener).
    pub fn pending(&mut self, family: Family, ty: c_int) -> (c_int, c_int) {
        let (listener, addr) = self.listener(family, ty);
        let client = self.sock(family.domain(), ty);
        // SAFETY: addr is a live buffer holding addr.len valid bytes.
        let rc = unsafe { (self.api.connect)(client, addr.ptr(), addr.len) };
        self.prep("connect", rc == 0);
        self.prep("a pending connection", wait_for(listener, libc::POLLIN));
        (client, listener)
    }

    /// A connection accepted through this side; the listener is closed again.
    pub fn connected(&mut self, family: Family, ty: c_int) -> Conn {
        let (client, listener) = self.pending(family, ty);
        // SAFETY: NULL address and length are allowed by accept.
        let server = unsafe { (self.api.accept)(listener, std::ptr::null_mut(), std::ptr::null_mut()) };
        self.prep("accept", server >= 0);
        self.own(Owned::ByApi(server));
        set_safety_timeouts(server);
        self.close_now(listener);
        Conn { client, server }
    }

    /// A TCP connection over 127.0.0.1.
    pub fn tcp_conn(&mut self) -> Conn {
        self.connected(Family::V4, libc::SOCK_STREAM)
    }

    /// A UDP socket on 127.0.0.1 connected to another one; returns (a, b).
    pub fn udp_conn(&mut self) -> (c_int, c_int) {
        let (a, a_addr) = self.bound(Family::V4, libc::SOCK_DGRAM);
        let (b, b_addr) = self.bound(Family::V4, libc::SOCK_DGRAM);
        for (fd, to) in [(a, b_addr), (b, a_addr)] {
            // SAFETY: to is a live buffer holding to.len valid bytes.
            let rc = unsafe { (self.api.connect)(fd, to.ptr(), to.len) };
            self.prep("connect UDP", rc == 0);
        }
        (a, b)
    }

    /// An address of `family` where nothing listens: a socket is bound to
    /// port 0 (or a fresh path), its address read, and the socket closed.
    pub fn closed_addr(&mut self, family: Family) -> RawAddr {
        let (fd, addr) = self.bound(family, libc::SOCK_STREAM);
        self.close_now(fd);
        addr
    }

    /// Closes a descriptor the probe owns, now, through its owner.
    pub fn close_now(&mut self, fd: c_int) {
        let by_api = self.owns_by_api(fd);
        self.forget(fd);
        let rc = if by_api {
            // SAFETY: the probe made fd through this side and owned it until now.
            unsafe { (self.api.close)(fd) }
        } else {
            // SAFETY: the probe made fd with plain libc and owned it until now.
            unsafe { libc::close(fd) }
        };
        self.prep("a close", rc == 0);
    }

    /// A file with `contents` in the probe directory, opened with `flags`
    /// at a reserved number.
    pub fn file_fd(&mut self, contents: &[u8], flags: c_int) -> c_int {
        let path = self.path("file");
        std::fs::write(&path, contents).expect("write the temp file");
        self.open_reserved(&path, flags)
    }

    fn open_reserved(&mut self, path: &std::path::Path, flags: c_int) -> c_int {
        let c_path = CString::new(path.as_os_str().as_bytes()).expect("no NUL");
        // SAFETY: c_path is a valid NUL-terminated string.
        let fd = unsafe { libc::open(c_path.as_ptr(), flags | libc::O_CLOEXEC) };
        self.prep("open", fd >= 0);
        to_reserved(self, fd)
    }

    /// A non-blocking pipe with `data` waiting in it, both ends at reserved
    /// numbers: (read end, write end).
    pub fn pipe_with(&mut self, data: &[u8]) -> (c_int, c_int) {
        let mut ends = [-1; 2];
        // SAFETY: ends is a live two-element array.
        let rc = unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        self.prep("pipe", rc == 0);
        // SAFETY: data is a live slice; the pipe is empty and non-blocking.
        let n = unsafe { libc::write(ends[1], data.as_ptr().cast(), data.len()) };
        self.prep("filling the pipe", usize::try_from(n) == Ok(data.len()));
        (to_reserved(self, ends[0]), to_reserved(self, ends[1]))
    }

    /// A non-blocking eventfd with counter 1, at a reserved number.
    pub fn eventfd(&mut self) -> c_int {
        // SAFETY: eventfd takes integers only.
        let fd = unsafe { libc::eventfd(1, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        self.prep("eventfd", fd >= 0);
        to_reserved(self, fd)
    }

    /// A bad descriptor of `kind`.
    pub fn bad_fd(&mut self, kind: BadFd) -> c_int {
        match kind {
            BadFd::MinusOne => -1,
            BadFd::IntMin => c_int::MIN,
            BadFd::AboveLimit => 1_000_000,
            BadFd::Closed => {
                let fd = self.tcp4();
                let reserved = reserve_fd();
                // SAFETY: reserved numbers are never open before this dup2.
                let rc = unsafe { libc::dup2(fd, reserved) };
                self.prep("dup2", rc == reserved);
                // SAFETY: the duplicate was made just above and is owned by nobody else.
                let rc = unsafe { libc::close(reserved) };
                self.prep("closing the duplicate", rc == 0);
                reserved
            }
            BadFd::PipeRead => self.pipe_with(b"pipe-data").0,
            BadFd::PipeWrite => self.pipe_with(b"pipe-data").1,
            BadFd::DevNull => self.open_reserved(std::path::Path::new("/dev/null"), libc::O_RDWR),
            BadFd::RegularFile => self.file_fd(b"file-data\n", libc::O_RDWR),
            BadFd::Directory => {
                let dir = self.dir();
                self.open_reserved(&dir, libc::O_RDONLY | libc::O_DIRECTORY)
            }
            BadFd::EventFd => self.eventfd(),
            BadFd::OPath => {
                let (fd, addr) = self.bound(Family::UnixPath, libc::SOCK_STREAM);
                let path = std::ffi::OsStr::from_bytes(&addr.bytes[2..addr.len as usize - 1]).to_owned();
                let opath = self.open_reserved(std::path::Path::new(&path), libc::O_PATH);
                self.close_now(fd);
                opath
            }
        }
    }

    /// Normalises an address buffer for comparison: ephemeral ports and
    /// per-run paths masked, the reported length kept.
    pub fn describe_addr(&self, raw: &RawAddr, len: socklen_t) -> String {
        let mut bytes = raw.bytes[..130].to_vec();
        let family = c_int::from(u16::from_ne_bytes([bytes[0], bytes[1]]));
        if (family == libc::AF_INET || family == libc::AF_INET6) && bytes[2..4] != [0, 0] {
            bytes[2..4].copy_from_slice(b"PP");
        }
        if family == libc::AF_UNIX {
            let mut marks: Vec<(usize, &Vec<u8>)> = self.marks.iter().enumerate().collect();
            marks.sort_by_key(|(_, mark)| std::cmp::Reverse(mark.len()));
            for (i, mark) in marks {
                if let Some(at) = bytes.windows(mark.len()).position(|w| w == mark.as_slice()) {
                    bytes[at..at + mark.len()].fill(mark_fill(i));
                }
            }
            // An autobind name: NUL and five hex digits the kernel picks.
            if len == 8 && bytes[2] == 0 && bytes[3..8].iter().all(u8::is_ascii_hexdigit) {
                bytes[3..8].copy_from_slice(b"XXXXX");
            }
        }
        let used = bytes.iter().rposition(|&b| b != PATTERN).map_or(0, |i| i + 1);
        format!("len {len} bytes {}", escape(&bytes[..used]))
    }

    pub fn out_addr(&mut self, label: &str, raw: &RawAddr, len: socklen_t) {
        let text = self.describe_addr(raw, len);
        self.out(label, text);
    }

    /// The socket's local address as libc reports it.
    pub fn out_sockname(&mut self, label: &str, fd: c_int) {
        self.out_name(label, fd, libc::getsockname);
    }

    /// The socket's peer address as libc reports it.
    pub fn out_peername(&mut self, label: &str, fd: c_int) {
        self.out_name(label, fd, libc::getpeername);
    }

    /// The address `get` (libc's `getsockname` or `getpeername`) reports for `fd`.
    fn out_name(&mut self, label: &str, fd: c_int, get: NameFn) {
        let (raw, len, rc) = name_of(fd, get);
        let text = if rc == 0 {
            self.describe_addr(&raw, len)
        } else {
            format!("errno {}", errno())
        };
        self.out(label, text);
    }

    /// An `int` socket option as libc reports it.
    pub fn out_sockopt(&mut self, label: &str, fd: c_int, level: c_int, name: c_int) {
        let mut value: c_int = 0;
        let mut len = size_of::<c_int>() as socklen_t;
        // SAFETY: both pointers refer to locals of the sizes given.
        let rc = unsafe { libc::getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) };
        let text = if rc == 0 {
            format!("{value} (len {len})")
        } else {
            format!("errno {}", errno())
        };
        self.out(label, text);
    }

    /// The bytes `fd` has queued for reading (FIONREAD).
    pub fn out_queued(&mut self, label: &str, fd: c_int) {
        let mut n: c_int = 0;
        // SAFETY: FIONREAD writes one int into the local.
        let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
        let text = if rc == 0 {
            n.to_string()
        } else {
            format!("errno {}", errno())
        };
        self.out(label, text);
    }

    /// Whether `fd` is still an open descriptor.
    pub fn out_open(&mut self, label: &str, fd: c_int) {
        // SAFETY: F_GETFD takes no pointer.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0;
        self.out(label, open);
    }

    /// What arrives on `fd` after the call: waits for `expected` bytes (the
    /// call's own result) when positive, then takes whatever else is
    /// already there. Each read is one message for datagram sockets.
    pub fn out_arrived(&mut self, label: &str, fd: c_int, expected: i64) {
        let mut got: Vec<String> = Vec::new();
        let mut total = 0i64;
        let socket = crate::harness::is_socket(fd);
        for _ in 0..64 {
            let wait = total < expected && wait_for(fd, libc::POLLIN);
            let mut buf = vec![0u8; 70_000];
            // SAFETY: buf is a live buffer of buf.len() bytes; a pipe here
            // is non-blocking, so read returns at once like MSG_DONTWAIT.
            let n = unsafe {
                if socket {
                    libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT)
                } else {
                    libc::read(fd, buf.as_mut_ptr().cast(), buf.len())
                }
            };
            if n < 0 {
                let e = errno();
                if e != libc::EAGAIN || wait {
                    got.push(format!("errno {e}"));
                }
                break;
            }
            let n = usize::try_from(n).expect("non-negative");
            got.push(escape(&buf[..n]));
            total += n as i64;
            if n == 0 {
                break;
            }
        }
        self.out(label, format!("[{}]", got.join(", ")));
    }

    /// As [`Probe::out_arrived`], but for UDP (whose loopback delivery is
    /// asynchronous) a marker datagram is sent after the call and everything
    /// before it is collected, so a datagram that was sent (even an empty
    /// one) is always seen and nothing waits for one that was not.
    pub fn out_arrived_from(&mut self, label: &str, sender: c_int, peer: c_int, expected: i64) {
        let inet_dgram = getsockopt_int(sender, libc::SO_TYPE) == libc::SOCK_DGRAM
            && matches!(getsockopt_int(sender, libc::SO_DOMAIN), libc::AF_INET | libc::AF_INET6);
        if !inet_dgram {
            return self.out_arrived(label, peer, expected);
        }
        const MARKER: &[u8] = b"<marker>";
        let to = sockname(peer);
        // SAFETY: MARKER is a static buffer; to holds to.len valid bytes.
        let n = unsafe {
            libc::sendto(
                sender,
                MARKER.as_ptr().cast(),
                MARKER.len(),
                libc::MSG_DONTWAIT,
                to.ptr(),
                to.len,
            )
        };
        let mut got: Vec<String> = Vec::new();
        if usize::try_from(n) != Ok(MARKER.len()) {
            got.push(format!("marker not sent: errno {}", errno()));
        }
        let mut buf = vec![0u8; 70_000];
        while got.len() < 64 && wait_for(peer, libc::POLLIN) {
            // SAFETY: buf is a live buffer of buf.len() bytes.
            let n = unsafe { libc::recv(peer, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
            let Ok(n) = usize::try_from(n) else {
                got.push(format!("errno {}", errno()));
                break;
            };
            if &buf[..n] == MARKER {
                break;
            }
            got.push(escape(&buf[..n]));
        }
        self.out(label, format!("[{}]", got.join(", ")));
    }

    /// The file offset of `fd` (`lseek(fd, 0, SEEK_CUR)`).
    pub fn out_offset(&mut self, label: &str, fd: c_int) {
        // SAFETY: lseek takes no pointer.
        let offset = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
        let text = if offset >= 0 {
            offset.to_string()
        } else {
            format!("errno {}", errno())
        };
        self.out(label, text);
    }

    /// What `fd` (a non-socket) holds from the start, read with `pread`.
    pub fn out_file(&mut self, label: &str, fd: c_int) {
        let mut buf = [0u8; 256];
        // SAFETY: buf is a live buffer of buf.len() bytes.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        let text = usize::try_from(n).map_or_else(|_| format!("errno {}", errno()), |n| escape(&buf[..n]));
        self.out(label, text);
    }
}

/// The kinds of bad descriptor every fd-taking function is tried with.
#[derive(Clone, Copy, Debug)]
pub enum BadFd {
    MinusOne,
    IntMin,
    AboveLimit,
    Closed,
    PipeRead,
    PipeWrite,
    DevNull,
    RegularFile,
    Directory,
    OPath,
    EventFd,
}

impl BadFd {
    pub const ALL: [BadFd; 11] = [
        BadFd::MinusOne,
        BadFd::IntMin,
        BadFd::AboveLimit,
        BadFd::Closed,
        BadFd::PipeRead,
        BadFd::PipeWrite,
        BadFd::DevNull,
        BadFd::RegularFile,
        BadFd::Directory,
        BadFd::OPath,
        BadFd::EventFd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BadFd::MinusOne => "fd -1",
            BadFd::IntMin => "fd INT_MIN",
            BadFd::AboveLimit => "fd 1000000",
            BadFd::Closed => "closed socket fd",
            BadFd::PipeRead => "pipe read end",
            BadFd::PipeWrite => "pipe write end",
            BadFd::DevNull => "/dev/null",
            BadFd::RegularFile => "regular file",
            BadFd::Directory => "directory",
            BadFd::OPath => "O_PATH fd of a socket file",
            BadFd::EventFd => "eventfd",
        }
    }
}

/// One case per [`BadFd`] kind: `run` makes the call on the given descriptor.
pub fn bad_fd_cases(run: impl Fn(&mut Probe, c_int) + Send + Sync + 'static) -> Vec<Case> {
    let run = Arc::new(run);
    BadFd::ALL
        .iter()
        .map(|&kind| {
            let run = Arc::clone(&run);
            Case::new(format!("bad fd: {}", kind.name()), move |p| {
                let fd = p.bad_fd(kind);
                run(p, fd);
            })
        })
        .collect()
}

/// One case per wild pointer in `wilds`, named after `what`.
pub fn wild_cases(what: &str, wilds: &[Wild], run: impl Fn(&mut Probe, Wild) + Send + Sync + 'static) -> Vec<Case> {
    let run = Arc::new(run);
    wilds
        .iter()
        .map(|&wild| {
            let run = Arc::clone(&run);
            Case::new(format!("{what}: {}", wild.name()), move |p| run(p, wild))
        })
        .collect()
}

/// One case per value, named `what <value>`.
pub fn value_cases<T: Copy + std::fmt::Display + Send + Sync + 'static>(
    what: &str,
    values: &[T],
    run: impl Fn(&mut Probe, T) + Send + Sync + 'static,
) -> Vec<Case> {
    let run = Arc::new(run);
    values
        .iter()
        .map(|&value| {
            let run = Arc::clone(&run);
            Case::new(format!("{what} {value}"), move |p| run(p, value))
        })
        .collect()
}

/// The address lengths every address-taking function is tried with.
pub const ADDR_LENS: [socklen_t; 11] = [0, 1, 8, 15, 16, 17, 28, 110, 128, 129, 0xFFFF_FFFF];

/// Waits until `fd` reports `events` (bounded by [`ARRIVAL_TIMEOUT`]); false on timeout.
pub fn wait_for(fd: c_int, events: libc::c_short) -> bool {
    crate::common::wait_for(fd, events, ARRIVAL_TIMEOUT) & events != 0
}

/// An `int` socket option read with plain libc; `-errno` on failure.
pub fn getsockopt_int(fd: c_int, name: c_int) -> c_int {
    try_getsockopt_int(libc::getsockopt, fd, libc::SOL_SOCKET, name).unwrap_or_else(|e| -e)
}

/// Whether `fd` is readable (or has an error or hang-up) right now, without waiting.
pub fn poll_now(fd: c_int) -> bool {
    crate::common::wait_for(fd, libc::POLLIN, Duration::ZERO) != 0
}

/// Whether something arrived on `fd` after a send that returned `sent`:
/// waits (bounded) only when bytes were sent, so a send that moved nothing
/// costs no timeout.
pub fn arrived_after(fd: c_int, sent: i64) -> bool {
    if sent > 0 {
        wait_for(fd, libc::POLLIN)
    } else {
        poll_now(fd)
    }
}

/// The safety-net timeouts, set with plain `setsockopt`.
fn set_safety_timeouts(fd: c_int) {
    set_timeouts(fd, SAFETY_TIMEOUT);
}

type NameFn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;

fn name_of(fd: c_int, f: NameFn) -> (RawAddr, socklen_t, c_int) {
    let mut raw = RawAddr::pattern();
    let mut len: socklen_t = 128;
    // SAFETY: raw is a live 256-byte buffer and len says 128.
    let rc = unsafe { f(fd, raw.mut_ptr(), &mut len) };
    (raw, len, rc)
}

/// The local address of `fd` as libc reports it (with its length).
pub fn sockname(fd: c_int) -> RawAddr {
    let (mut raw, len, rc) = name_of(fd, libc::getsockname);
    assert_eq!(rc, 0, "getsockname: errno {}", errno());
    raw.len = len;
    raw
}

/// Sends `data` with plain libc (preparation, not the call under test).
pub fn inject(fd: c_int, data: &[u8]) {
    // SAFETY: data is a live slice.
    let n = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_DONTWAIT) };
    assert_eq!(usize::try_from(n).ok(), Some(data.len()), "inject: errno {}", errno());
}

/// Printable bytes: ASCII as is, the rest as `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}
