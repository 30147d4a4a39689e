//! Sockets and connections for the tests: the text-taking helpers
//! (`ss_tcp_listen`, `ss_tcp_connect`, `ss_udp_bind`), TCP listeners on
//! 127.0.0.1 made with the mirror functions, connected pairs (through the
//! helpers, `ss_socketpair`, or either implementation for a libc-vs-`ss_`
//! comparison), whole transfers, and descriptors passed as `SCM_RIGHTS`.

use std::ffi::c_int;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::fd::FromRawFd;

use libc::{msghdr, sockaddr_in, ssize_t};
use safesock::ffi;

use crate::common::errno::{Outcome, errno, last_error};
use crate::common::fds::{Fd, SsFd, fd_or_panic};
use crate::common::net::{
    Api, PATIENCE, SIN_LEN, as_sa, as_sa_mut, bound_waits, cstring, loopback, set_timeouts, wait_for,
};

/// `ss_tcp_listen(text, backlog)`.
pub fn tcp_listen(text: &str, backlog: c_int) -> c_int {
    let t = cstring(text);
    // SAFETY: `t` is a NUL-terminated string that outlives the call.
    unsafe { ffi::ss_tcp_listen(t.as_ptr(), backlog) }
}

/// `ss_tcp_connect(text, timeout_ms)`.
pub fn tcp_connect(text: &str, timeout_ms: c_int) -> c_int {
    let t = cstring(text);
    // SAFETY: as in tcp_listen.
    unsafe { ffi::ss_tcp_connect(t.as_ptr(), timeout_ms) }
}

/// `ss_udp_bind(text)`.
pub fn udp_bind(text: &str) -> c_int {
    let t = cstring(text);
    // SAFETY: as in tcp_listen.
    unsafe { ffi::ss_udp_bind(t.as_ptr()) }
}

/// The port of a listening or connected socket, from `ss_local_port`.
#[track_caller]
pub fn local_port(fd: &SsFd) -> u16 {
    let port = ffi::ss_local_port(fd.raw());
    assert!(port > 0, "ss_local_port(fd {}) = {port}: {}", fd.raw(), last_error());
    u16::try_from(port).expect("a port fits u16")
}

/// A new TCP socket from `ss_socket`.
#[track_caller]
pub fn tcp_socket() -> SsFd {
    let fd = ffi::ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
    assert!(fd >= 0, "ss_socket: {}", last_error());
    SsFd(fd)
}

/// Binds `fd` to 127.0.0.1 with a port the system chooses, through `api`'s
/// `bind`, and returns the address `getsockname` (of the same side) reports.
#[track_caller]
pub fn bind_loopback(api: Api, fd: c_int) -> sockaddr_in {
    let mut addr = loopback(0);
    let mut len = SIN_LEN;
    // SAFETY: `addr` is a sockaddr_in of SIN_LEN bytes, `len` says so.
    let (bound, named) = unsafe {
        match api {
            Api::Ss => (
                ffi::ss_bind(fd, as_sa(&addr), SIN_LEN),
                ffi::ss_getsockname(fd, as_sa_mut(&mut addr), &mut len),
            ),
            Api::Libc => (
                libc::bind(fd, as_sa(&addr), SIN_LEN),
                libc::getsockname(fd, as_sa_mut(&mut addr), &mut len),
            ),
        }
    };
    assert_eq!(
        bound,
        0,
        "bind(fd {fd}, 127.0.0.1:0) via {api:?}: errno {}, {}",
        errno(),
        last_error()
    );
    assert_eq!(named, 0, "getsockname(fd {fd}) via {api:?}: errno {}", errno());
    addr
}

/// A TCP socket made with `ss_socket` and bound with `ss_bind` to 127.0.0.1
/// with a system-chosen port; listening if `backlog` is given. Returns it
/// and its port.
#[track_caller]
pub fn bound_tcp(backlog: Option<c_int>) -> (SsFd, u16) {
    let s = tcp_socket();
    let addr = bind_loopback(Api::Ss, s.raw());
    if let Some(backlog) = backlog {
        assert_eq!(ffi::ss_listen(s.raw(), backlog), 0, "{}", last_error());
    }
    (s, u16::from_be(addr.sin_port))
}

/// `ss_connect(fd, 127.0.0.1:port)`.
pub fn connect_loopback(fd: c_int, port: u16) -> c_int {
    let to = loopback(port);
    // SAFETY: `to` is a sockaddr_in of SIN_LEN bytes.
    unsafe { ffi::ss_connect(fd, as_sa(&to), SIN_LEN) }
}

/// A TCP listener on 127.0.0.1 made with the mirror functions, its port
/// chosen by the system.
pub struct Listener {
    /// The listening socket.
    pub fd: SsFd,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Listener {
    /// Listens with `backlog`.
    #[track_caller]
    pub fn tcp(backlog: c_int) -> Self {
        let (fd, port) = bound_tcp(Some(backlog));
        Listener { fd, port }
    }

    /// A new client socket (`ss_socket`) connected to this listener with
    /// `ss_connect` (not yet accepted); the caller owns it.
    #[track_caller]
    pub fn connect(&self) -> c_int {
        let client = tcp_socket();
        assert_eq!(connect_loopback(client.raw(), self.port), 0, "{}", last_error());
        client.into_raw()
    }

    /// The next connection, from `ss_accept`; the caller owns it.
    #[track_caller]
    pub fn accept(&self) -> c_int {
        // SAFETY: NULL address and length are allowed.
        let fd = unsafe { ffi::ss_accept(self.fd.raw(), std::ptr::null_mut(), std::ptr::null_mut()) };
        assert!(fd >= 0, "{}", last_error());
        fd
    }
}

/// Accepts one connection on `listener` (waiting at most [`PATIENCE`]) with `ss_accept`.
#[track_caller]
pub fn accept(listener: &SsFd) -> SsFd {
    let seen = wait_for(listener.raw(), libc::POLLIN, PATIENCE);
    assert!(
        seen & libc::POLLIN != 0,
        "no connection to accept on fd {}",
        listener.raw()
    );
    // SAFETY: NULL address and length are allowed by accept.
    let fd = unsafe { ffi::ss_accept(listener.raw(), std::ptr::null_mut(), std::ptr::null_mut()) };
    fd_or_panic(fd, "ss_accept")
}

/// A connection to `listener`, which listens on `host`, made with the
/// helpers: (client, server), every blocking wait bounded by [`PATIENCE`].
#[track_caller]
pub fn connect_pair(listener: &SsFd, host: &str) -> (SsFd, SsFd) {
    let port = local_port(listener);
    let client = fd_or_panic(tcp_connect(&format!("{host}:{port}"), 5000), "ss_tcp_connect");
    let server = accept(listener);
    bound_waits(client.raw());
    bound_waits(server.raw());
    (client, server)
}

/// A connected loopback TCP pair made with the helpers, listening on
/// `listen_text` (`HOST:0`): (client, server).
#[track_caller]
pub fn tcp_pair(listen_text: &str) -> (SsFd, SsFd) {
    let listener = fd_or_panic(tcp_listen(listen_text, 4), "ss_tcp_listen");
    let host = listen_text.rsplit_once(':').expect("HOST:PORT").0;
    connect_pair(&listener, host)
}

/// A connected AF_UNIX pair of `ty` from `ss_socketpair` (the caller closes
/// both with `ss_close`).
#[track_caller]
pub fn ss_pair(ty: c_int) -> [c_int; 2] {
    let mut sv = [-1; 2];
    // SAFETY: `sv` has room for the two descriptors socketpair writes.
    let r = unsafe { ffi::ss_socketpair(libc::AF_UNIX, ty, 0, sv.as_mut_ptr()) };
    assert_eq!(r, 0, "ss_socketpair: {}", last_error());
    sv
}

/// A connected AF_UNIX pair of `ty` from plain `socketpair` (close-on-exec;
/// the caller closes both with `close`).
#[track_caller]
pub fn plain_pair(ty: c_int) -> [c_int; 2] {
    let mut sv = [-1; 2];
    // SAFETY: `sv` has room for the two descriptors socketpair writes.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, sv.as_mut_ptr()) };
    assert_eq!(r, 0, "socketpair: errno {}", errno());
    sv
}

/// A connected AF_UNIX stream pair made with `ss_socketpair`, owned.
#[track_caller]
pub fn unix_pair() -> [SsFd; 2] {
    ss_pair(libc::SOCK_STREAM).map(SsFd)
}

/// A listening TCP socket on 127.0.0.1 made through `api` (`ss_tcp_listen`
/// or std's plain listener), and its port.
pub fn mirrored_listener(api: Api) -> (Fd, u16) {
    match api {
        Api::Ss => {
            let fd = fd_or_panic(tcp_listen("127.0.0.1:0", 16), "ss_tcp_listen");
            let port = local_port(&fd);
            (Fd::Ss(fd), port)
        }
        Api::Libc => {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind a plain listener");
            let port = l.local_addr().expect("local address").port();
            (Fd::Plain(l.into()), port)
        }
    }
}

/// A connected TCP pair over 127.0.0.1 made through `api`: (client, server),
/// every blocking wait bounded by [`PATIENCE`] (set with plain `setsockopt`).
pub fn mirrored_tcp_pair(api: Api) -> (Fd, Fd) {
    let pair = match api {
        Api::Ss => {
            let (client, server) = tcp_pair("127.0.0.1:0");
            (Fd::Ss(client), Fd::Ss(server))
        }
        Api::Libc => {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind a plain listener");
            let client = TcpStream::connect(listener.local_addr().expect("its address")).expect("plain connect");
            let (server, _) = listener.accept().expect("plain accept");
            (Fd::Plain(client.into()), Fd::Plain(server.into()))
        }
    };
    for fd in [&pair.0, &pair.1] {
        set_timeouts(fd.raw(), PATIENCE);
    }
    pair
}

/// `ss_send_all` of all of `data`: what it did.
pub fn try_send_all(fd: c_int, data: &[u8]) -> Outcome {
    // SAFETY: `data` is a live slice of the length given.
    let n = unsafe { ffi::ss_send_all(fd, data.as_ptr().cast(), data.len()) };
    Outcome::of(n as i64)
}

/// `ss_recv_exact` into all of `into`: what it did.
pub fn try_recv_exact(fd: c_int, into: &mut [u8]) -> Outcome {
    // SAFETY: `into` is a live, writable slice of the length given.
    let n = unsafe { ffi::ss_recv_exact(fd, into.as_mut_ptr().cast(), into.len()) };
    Outcome::of(n as i64)
}

/// `ss_send_all` of all of `data`, which must succeed.
#[track_caller]
pub fn send_all(fd: c_int, data: &[u8]) {
    let sent = try_send_all(fd, data);
    assert_eq!(sent.ret, data.len() as i64, "ss_send_all(fd {fd}): {}", sent.message);
}

/// `ss_recv_exact` of `n` bytes, which must all arrive.
#[track_caller]
pub fn recv_exact(fd: c_int, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    let got = try_recv_exact(fd, &mut buf);
    assert_eq!(got.ret, n as i64, "ss_recv_exact(fd {fd}): {}", got.message);
    buf
}

/// Sends all of `data` with plain `send` (the test's own traffic, not the
/// call under test).
#[track_caller]
pub fn plain_send(fd: c_int, data: &[u8]) {
    let mut stream = std::mem::ManuallyDrop::new(
        // SAFETY: the stream borrows `fd` for this call only and never closes it.
        unsafe { TcpStream::from_raw_fd(fd) },
    );
    stream.write_all(data).expect("plain send");
}

/// Fills a non-blocking stream socket's send path (with plain `send`) until
/// it would block.
#[track_caller]
pub fn fill_send_buffer(fd: c_int) {
    let chunk = vec![b'f'; 65536];
    for _ in 0..10_000 {
        // SAFETY: chunk is a live buffer of chunk.len() bytes.
        let n = unsafe { libc::send(fd, chunk.as_ptr().cast(), chunk.len(), libc::MSG_DONTWAIT) };
        if n < 0 {
            assert_eq!(errno(), libc::EAGAIN, "filling a socket");
            return;
        }
    }
    panic!("the socket never filled up");
}

/// `sendmsg` of either implementation (`libc::sendmsg` or `ss_sendmsg`).
pub type SendmsgFn = unsafe extern "C" fn(c_int, *const msghdr, c_int) -> ssize_t;
/// `recvmsg` of either implementation (`libc::recvmsg` or `ss_recvmsg`).
pub type RecvmsgFn = unsafe extern "C" fn(c_int, *mut msghdr, c_int) -> ssize_t;

/// Control-message space: 64 bytes, aligned for `cmsghdr`.
type Control = [u64; 8];

/// A header over the one byte at `byte` and the control space `control`.
fn one_byte_header(byte: &mut u8, iov: &mut libc::iovec, control: &mut Control, controllen: usize) -> msghdr {
    *iov = libc::iovec {
        iov_base: (byte as *mut u8).cast(),
        iov_len: 1,
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = controllen;
    msg
}

/// Sends `fds` over the AF_UNIX socket `via` as one `SCM_RIGHTS` message
/// with the one data byte `byte`, through `sendmsg`; returns what it returned.
pub fn send_rights(sendmsg: SendmsgFn, via: c_int, mut byte: u8, fds: &[c_int]) -> isize {
    let fds_len = u32::try_from(std::mem::size_of_val(fds)).expect("a few descriptors");
    let mut control: Control = [0; 8];
    // SAFETY: CMSG_SPACE/CMSG_LEN are pure size computations.
    let (space, len) = unsafe { (libc::CMSG_SPACE(fds_len), libc::CMSG_LEN(fds_len)) };
    assert!(space as usize <= std::mem::size_of::<Control>(), "too many descriptors");
    let mut iov = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let msg = one_byte_header(&mut byte, &mut iov, &mut control, space as usize);
    // SAFETY: the control space is aligned and holds CMSG_SPACE(fds_len)
    // bytes (checked above), so the first header and its data lie inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = len as usize;
        std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(cmsg), fds_len as usize);
    }
    // SAFETY: msg and everything it points to are live locals.
    unsafe { sendmsg(via, &msg, 0) }
}

/// What [`recv_rights`] received.
#[derive(Debug)]
pub struct Rights {
    /// What `recvmsg` returned.
    pub ret: isize,
    /// The data byte (0 if none arrived).
    pub byte: u8,
    /// `msg_flags`.
    pub flags: c_int,
    /// The first control message's level, type and `cmsg_len`, if one arrived.
    pub header: Option<(c_int, c_int, usize)>,
    /// The descriptors an `SCM_RIGHTS` message carried (none for another type).
    pub fds: Vec<c_int>,
}

/// Receives one data byte and its control message from `via` through
/// `recvmsg` (offering 64 bytes of control space, no flags).
pub fn recv_rights(recvmsg: RecvmsgFn, via: c_int) -> Rights {
    let mut byte = 0u8;
    let mut control: Control = [0; 8];
    let mut iov = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut msg = one_byte_header(&mut byte, &mut iov, &mut control, std::mem::size_of::<Control>());
    // SAFETY: msg and everything it points to are live locals.
    let ret = unsafe { recvmsg(via, &mut msg, 0) };
    let mut rights = Rights {
        ret,
        byte: 0,
        flags: msg.msg_flags,
        header: None,
        fds: Vec::new(),
    };
    if ret < 0 {
        return rights;
    }
    rights.byte = byte;
    // SAFETY: the kernel wrote msg_controllen bytes of control data into
    // `control`; CMSG_FIRSTHDR checks that length, and the data read stays
    // inside the header's cmsg_len, which lies inside `control`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return rights;
        }
        let (level, ty, len) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type, (*cmsg).cmsg_len);
        rights.header = Some((level, ty, len));
        if (level, ty) == (libc::SOL_SOCKET, libc::SCM_RIGHTS) {
            let count = len.saturating_sub(libc::CMSG_LEN(0) as usize) / std::mem::size_of::<c_int>();
            let data = libc::CMSG_DATA(cmsg).cast::<c_int>();
            rights.fds = (0..count).map(|i| data.add(i).read_unaligned()).collect();
        }
    }
    rights
}
