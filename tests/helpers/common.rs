//! Shared tools for the helper tests: calling the text-taking helpers, reading
//! `errno` and `ss_last_error`, descriptor guards that close the way the
//! double-close table expects, unreadable memory, a deterministic PRNG, and
//! signals aimed at one thread.

use std::ffi::{CStr, CString, c_int, c_void};
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use libc::{sockaddr_storage, socklen_t};
use safesock::ffi;

/// Upper bound for any single wait in these tests: long enough never to fire
/// on a loaded machine, short enough that a broken library fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The errno the last call left on this thread.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `ECONNREFUSED` for 111, via the library's own table.
pub fn errno_name(err: i32) -> String {
    // SAFETY: ss_errno_name returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::ss_errno_name(err)) }
        .to_string_lossy()
        .into_owned()
}

/// This thread's `ss_last_error()` text, copied.
pub fn last_error() -> String {
    // SAFETY: ss_last_error returns a NUL-terminated string that stays valid
    // until the next ss_ call on this thread; it is copied at once.
    unsafe { CStr::from_ptr(ffi::ss_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A descriptor an `ss_` call created; dropped with `ss_close`, as the
/// double-close table expects.
#[derive(Debug)]
pub struct SsFd(pub c_int);

impl SsFd {
    /// The descriptor number.
    pub fn raw(&self) -> c_int {
        self.0
    }
}

impl Drop for SsFd {
    fn drop(&mut self) {
        ffi::ss_close(self.0);
    }
}

/// What a failing call left behind.
#[derive(Debug)]
pub struct Failure {
    pub errno: i32,
    pub message: String,
}

/// Takes the descriptor a helper returned, or panics with errno and message.
#[track_caller]
pub fn fd_or_panic(ret: c_int, what: &str) -> SsFd {
    if ret < 0 {
        let e = errno();
        panic!("{what}: returned {ret}, {}: {}", errno_name(e), last_error());
    }
    SsFd(ret)
}

/// Checks that a call returned -1 with one of `allowed` and returns errno and
/// message. Must be called right after the call (errno is read first).
#[track_caller]
pub fn failure(ret: i64, what: &str, allowed: &[i32]) -> Failure {
    let e = errno();
    let message = last_error();
    assert_eq!(ret, -1, "{what}: expected -1, got {ret}");
    let names: Vec<String> = allowed.iter().map(|&a| errno_name(a)).collect();
    assert!(
        allowed.contains(&e),
        "{what}: errno {} ({e}), expected one of {names:?}; message: {message}",
        errno_name(e)
    );
    Failure { errno: e, message }
}

/// Whether `message` quotes `text` (long texts may be cut to a quoted prefix).
pub fn quotes(message: &str, text: &str) -> bool {
    const KEPT: usize = 64;
    message.contains(&format!("{text:?}")) || (text.len() > KEPT && message.contains(&format!("\"{}", &text[..KEPT])))
}

/// A C string for a test text (never contains NUL).
pub fn cstring(text: &str) -> CString {
    CString::new(text).expect("test texts contain no NUL")
}

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

/// An integer option read with `ss_getsockopt`.
#[track_caller]
pub fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> c_int {
    let mut value: c_int = -1;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: both pointers refer to locals of the sizes given.
    let r = unsafe { ffi::ss_getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) };
    assert_eq!(r, 0, "ss_getsockopt(fd {fd}, {level}, {name}): {}", last_error());
    value
}

/// An integer option set with `ss_setsockopt`.
#[track_caller]
pub fn setsockopt_int(fd: c_int, level: c_int, name: c_int, value: c_int) {
    let len = size_of::<c_int>() as socklen_t;
    // SAFETY: the pointer refers to a local of the size given.
    let r = unsafe { ffi::ss_setsockopt(fd, level, name, (&raw const value).cast(), len) };
    assert_eq!(r, 0, "ss_setsockopt(fd {fd}, {level}, {name}): {}", last_error());
}

/// A socket timeout option (`SO_RCVTIMEO`/`SO_SNDTIMEO`) set with `ss_setsockopt`.
#[track_caller]
pub fn set_timeout(fd: c_int, name: c_int, after: Duration) {
    let tv = libc::timeval {
        tv_sec: after.as_secs() as libc::time_t,
        tv_usec: after.subsec_micros() as libc::suseconds_t,
    };
    let len = size_of::<libc::timeval>() as socklen_t;
    // SAFETY: the pointer refers to a local timeval of the size given.
    let r = unsafe { ffi::ss_setsockopt(fd, libc::SOL_SOCKET, name, (&raw const tv).cast(), len) };
    assert_eq!(r, 0, "ss_setsockopt(fd {fd}, timeout {name}): {}", last_error());
}

/// Bounds every blocking read and write on `fd` by [`PATIENCE`].
pub fn bound_waits(fd: c_int) {
    set_timeout(fd, libc::SO_RCVTIMEO, PATIENCE);
    set_timeout(fd, libc::SO_SNDTIMEO, PATIENCE);
}

/// The descriptor's status flags (`F_GETFL`).
#[track_caller]
pub fn status_flags(fd: c_int) -> c_int {
    // SAFETY: fcntl with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    assert!(flags >= 0, "F_GETFL on fd {fd}: errno {}", errno());
    flags
}

/// Sets or clears `O_NONBLOCK`.
#[track_caller]
pub fn set_nonblocking(fd: c_int, on: bool) {
    let flags = status_flags(fd);
    let flags = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: fcntl with integer arguments only.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) }, 0);
}

/// Whether `FD_CLOEXEC` is set.
#[track_caller]
pub fn is_cloexec(fd: c_int) -> bool {
    // SAFETY: fcntl with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    assert!(flags >= 0, "F_GETFD on fd {fd}: errno {}", errno());
    flags & libc::FD_CLOEXEC != 0
}

/// Waits up to `within` for `events` on `fd`; returns the events seen (0 on timeout).
pub fn wait_for(fd: c_int, events: libc::c_short, within: Duration) -> libc::c_short {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd { fd, events, revents: 0 };
        // SAFETY: one pollfd, a local.
        let n = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as c_int) };
        match n {
            0 => return 0,
            n if n > 0 => return pfd.revents,
            _ if errno() == libc::EINTR && !left.is_zero() => {}
            _ => panic!("poll(fd {fd}): errno {}", errno()),
        }
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
    let fd = unsafe { ffi::ss_accept(listener.raw(), core::ptr::null_mut(), core::ptr::null_mut()) };
    fd_or_panic(fd, "ss_accept")
}

/// The port of a listening or connected socket.
#[track_caller]
pub fn local_port(fd: &SsFd) -> u16 {
    let port = ffi::ss_local_port(fd.raw());
    assert!(port > 0, "ss_local_port(fd {}) = {port}: {}", fd.raw(), last_error());
    u16::try_from(port).expect("a port fits u16")
}

/// A connected loopback TCP pair made with the helpers: (client, server).
pub fn tcp_pair(listen_text: &str) -> (SsFd, SsFd) {
    let listener = fd_or_panic(tcp_listen(listen_text, 4), "ss_tcp_listen");
    let port = local_port(&listener);
    let host = listen_text.rsplit_once(':').expect("HOST:PORT").0;
    let client = fd_or_panic(tcp_connect(&format!("{host}:{port}"), 5000), "ss_tcp_connect");
    let server = accept(&listener);
    bound_waits(client.raw());
    bound_waits(server.raw());
    (client, server)
}

/// An address of a socket as std sees it (`getsockname` or `getpeername`).
pub fn socket_addr(fd: c_int, peer: bool) -> Option<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; zero is a valid value.
    let mut storage: sockaddr_storage = unsafe { core::mem::zeroed() };
    let mut len = size_of::<sockaddr_storage>() as socklen_t;
    let ptr = (&raw mut storage).cast();
    // SAFETY: both pointers refer to locals of the sizes given.
    let r = unsafe {
        if peer {
            libc::getpeername(fd, ptr, &mut len)
        } else {
            libc::getsockname(fd, ptr, &mut len)
        }
    };
    if r != 0 {
        return None;
    }
    to_std(&storage, len)
}

/// Decodes an AF_INET/AF_INET6 address into std's type.
pub fn to_std(storage: &sockaddr_storage, len: socklen_t) -> Option<SocketAddr> {
    match c_int::from(storage.ss_family) {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says sockaddr_in and the length covers it;
            // sockaddr_storage is aligned for every address type.
            let sin = unsafe { &*(storage as *const sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// The text form of an IP for `HOST:PORT` (brackets around IPv6).
pub fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Whether IPv6 loopback works here (`::1` can be bound).
pub fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// A plain (not safesock) socket, closed with `close` when dropped.
#[track_caller]
pub fn plain_socket(domain: c_int, ty: c_int) -> OwnedFd {
    // SAFETY: socket takes integer arguments only.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: errno {}", errno());
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A plain pipe, closed with `close` when dropped: (read end, write end).
pub fn plain_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both are fresh descriptors nobody else owns.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A connected AF_UNIX stream pair made with `ss_socketpair`.
pub fn unix_pair() -> [SsFd; 2] {
    let mut pair = [-1; 2];
    // SAFETY: `pair` has room for the two descriptors socketpair writes.
    let r = unsafe { ffi::ss_socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr()) };
    assert_eq!(r, 0, "ss_socketpair: {}", last_error());
    pair.map(SsFd)
}

/// A descriptor number that is certainly not open: a pipe end duplicated to
/// a high number (so no other test thread gets it meanwhile) and closed.
pub fn closed_fd() -> c_int {
    let (r, _w) = plain_pipe();
    // SAFETY: fcntl with integer arguments; the duplicate is closed at once.
    unsafe {
        let high = libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&r), libc::F_DUPFD_CLOEXEC, 900);
        assert!(high >= 900, "F_DUPFD: errno {}", errno());
        libc::close(high);
        high
    }
}

/// Three reserved pages: the middle one unmapped, the outer ones mapped
/// without any access. The outer pages keep other threads' mappings from
/// landing in the hole while the test uses it.
pub struct BadMemory {
    base: *mut c_void,
    page: usize,
}

impl BadMemory {
    pub fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        // SAFETY: a fresh anonymous mapping that only this value refers to;
        // then its middle page is unmapped.
        let base = unsafe {
            let base = libc::mmap(
                core::ptr::null_mut(),
                3 * page,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(base, libc::MAP_FAILED);
            assert_eq!(libc::munmap(base.cast::<u8>().add(page).cast(), page), 0);
            base
        };
        BadMemory { base, page }
    }

    /// A pointer into the unmapped middle page.
    pub fn unmapped(&self) -> *mut c_void {
        self.base.cast::<u8>().wrapping_add(self.page).cast()
    }

    /// A pointer to the mapped page without read or write access.
    pub fn no_access(&self) -> *mut c_void {
        self.base
    }

    /// Makes the first page readable and writable (it is then no longer
    /// `no_access`) and returns it: its last byte touches the unmapped page.
    pub fn readable_first_page(&mut self) -> &mut [u8] {
        // SAFETY: a fresh anonymous page replaces the first page of our own
        // reservation (MAP_FIXED over memory only this value refers to); the
        // slice borrows `self`, which keeps the page mapped.
        unsafe {
            let p = libc::mmap(
                self.base,
                self.page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            );
            assert_eq!(p, self.base, "mmap MAP_FIXED: errno {}", errno());
            core::slice::from_raw_parts_mut(p.cast(), self.page)
        }
    }
}

impl Drop for BadMemory {
    fn drop(&mut self) {
        // SAFETY: the outer pages were mapped by `new` and nothing refers to them.
        unsafe {
            libc::munmap(self.base, self.page);
            libc::munmap(self.base.cast::<u8>().add(2 * self.page).cast(), self.page);
        }
    }
}

/// xorshift64*: a small deterministic generator, so every run tests the same inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn byte(&mut self) -> u8 {
        (self.next_u64() >> 56) as u8
    }

    pub fn port(&mut self) -> u16 {
        (self.next_u64() >> 48) as u16
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// FNV-1a, a checksum for transferred data.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The signal the interruption tests send.
pub const INTERRUPT: c_int = libc::SIGUSR1;

thread_local! {
    static HANDLED: AtomicUsize = const { AtomicUsize::new(0) };
}

extern "C" fn count_signal(_: c_int) {
    // An atomic in a const-initialised thread local: async-signal-safe.
    HANDLED.with(|h| h.fetch_add(1, Ordering::Relaxed));
}

/// Installs the no-op handler for [`INTERRUPT`], once, without `SA_RESTART`,
/// so a blocked system call in the signalled thread fails with `EINTR`.
/// Only threads that a test targets with `pthread_kill` ever receive it.
fn install_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction is plain data; the handler only touches an atomic.
        unsafe {
            let mut action: libc::sigaction = core::mem::zeroed();
            action.sa_sigaction = count_signal as extern "C" fn(c_int) as libc::sighandler_t;
            action.sa_flags = 0;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(libc::sigaction(INTERRUPT, &action, core::ptr::null_mut()), 0);
        }
    });
}

/// What a run under [`with_interruptions`] produced.
pub struct Interrupted<T> {
    pub value: T,
    /// Signals sent to the thread.
    pub sent: usize,
    /// Signals the thread's handler ran for.
    pub handled: usize,
}

/// Stops and joins the signalling thread, also when the body panics, so it
/// never signals a thread that has exited.
struct Signaller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl Signaller {
    fn finish(&mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().expect("signalling thread"))
    }
}

impl Drop for Signaller {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Runs `body` on this thread while another thread sends it [`INTERRUPT`]
/// every `period` (for at most `limit`, so a body that never returns while
/// signalled still ends).
pub fn with_interruptions<T>(period: Duration, limit: Duration, body: impl FnOnce() -> T) -> Interrupted<T> {
    install_handler();
    // SAFETY: pthread_self has no preconditions.
    let target = unsafe { libc::pthread_self() };
    let before = HANDLED.with(|h| h.load(Ordering::Relaxed));
    let stop = Arc::new(AtomicBool::new(false));
    let stop_seen = Arc::clone(&stop);
    let thread = thread::spawn(move || {
        let start = Instant::now();
        let mut sent = 0;
        while !stop_seen.load(Ordering::Relaxed) && start.elapsed() < limit {
            // SAFETY: the target thread is alive: it joins this thread (Signaller)
            // before it can return or unwind past this call.
            if unsafe { libc::pthread_kill(target, INTERRUPT) } == 0 {
                sent += 1;
            }
            thread::sleep(period);
        }
        sent
    });
    let mut signaller = Signaller {
        stop,
        thread: Some(thread),
    };
    let value = body();
    let sent = signaller.finish();
    let handled = HANDLED.with(|h| h.load(Ordering::Relaxed)) - before;
    Interrupted { value, sent, handled }
}
