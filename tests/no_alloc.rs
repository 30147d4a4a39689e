//! API.md section 1: "With tracing off, a success path allocates no heap
//! memory", and section 2: a failing call "records only what the message
//! needs ... the text is built when `ss_last_error` is asked for it".
//!
//! A counting global allocator (per thread) wraps the system allocator. Every
//! workload is run twice: once to warm up (the descriptor table may grow the
//! first time a number appears), then counted. Only the `ss_` calls themselves
//! are inside the counted region; sockets, data and cleanup are prepared
//! around them with plain libc calls. `SAFESOCK_TRACE` must be unset: if it is,
//! the test re-runs itself without it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::CStr;
use std::mem::{size_of, zeroed};
use std::os::fd::IntoRawFd;
use std::sync::Mutex;

use libc::{c_int, iovec, msghdr, sockaddr, sockaddr_in, sockaddr_un, socklen_t, ssize_t};
use safesock::ffi::*;

use common::{Api, SIN_LEN, as_sa, as_sa_mut, bind_loopback, errno, last_error, loopback, plain_pair, rerun};

// ---------------------------------------------------------------------------
// The counting allocator
// ---------------------------------------------------------------------------

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn bump() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to the system allocator unchanged; counting
// touches only a const-initialised thread-local without a destructor.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_so_far() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Counts the calls made through it and the allocations they made.
#[derive(Default)]
struct Probe {
    calls: usize,
    allocations: usize,
}

impl Probe {
    #[inline(never)]
    fn call<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let before = allocations_so_far();
        let r = f();
        self.allocations += allocations_so_far() - before;
        self.calls += 1;
        r
    }
}

/// The number of counted calls per function, made in batches of [`BATCH`].
const CALLS: usize = 2000;
const BATCH: usize = 100;
const ROUNDS: usize = CALLS / BATCH;

/// Runs every workload once to warm up, then counted; prints one line each
/// and fails listing every workload that allocated or did the wrong number of calls.
/// A named workload: it makes its counted calls through the probe.
type Workload = (&'static str, fn(&mut Probe));

fn measure(workloads: &[Workload]) {
    for (_, work) in workloads {
        work(&mut Probe::default());
    }
    let mut bad = Vec::new();
    for (name, work) in workloads {
        let mut probe = Probe::default();
        work(&mut probe);
        println!("{name}: {} allocations over {} calls", probe.allocations, probe.calls);
        if probe.allocations != 0 || probe.calls != CALLS {
            bad.push(format!(
                "{name}: {} allocations, {} calls",
                probe.allocations, probe.calls
            ));
        }
    }
    assert!(bad.is_empty(), "allocating or short workloads: {bad:#?}");
}

// ---------------------------------------------------------------------------
// Test scaffolding
// ---------------------------------------------------------------------------

/// Both tests create many descriptors; they run one at a time so that the
/// warm-up pass sees the same descriptor numbers as the counted pass.
static SERIAL: Mutex<()> = Mutex::new(());

/// If `SAFESOCK_TRACE` is set, runs `test` again in a child without it and
/// returns true (the child's verdict is this test's); otherwise false.
fn rerun_without_trace(test: &str) -> bool {
    if std::env::var_os("SAFESOCK_TRACE").is_none() {
        return false;
    }
    let out = rerun(test)
        .env_remove("SAFESOCK_TRACE")
        .output()
        .expect("re-run the test binary");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "re-run without SAFESOCK_TRACE failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// A plain (not safesock) socket; the workload closes it with [`close_all`].
fn plain_socket(domain: c_int, ty: c_int) -> c_int {
    common::plain_socket(domain, ty).into_raw_fd()
}

fn close_all(fds: &[c_int]) {
    for &fd in fds {
        // SAFETY: the descriptors belong to the calling workload.
        unsafe { libc::close(fd) };
    }
}

/// A UDP socket bound to 127.0.0.1 with a system-chosen port, and that address.
fn udp_bound() -> (c_int, sockaddr_in) {
    let fd = plain_socket(libc::AF_INET, libc::SOCK_DGRAM);
    (fd, bind_loopback(Api::Libc, fd))
}

/// A listening AF_UNIX stream socket with an autobound abstract address.
fn unix_listener() -> (c_int, sockaddr_un, socklen_t) {
    let fd = plain_socket(libc::AF_UNIX, libc::SOCK_STREAM);
    // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
    let mut addr: sockaddr_un = unsafe { zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let mut len = size_of::<sockaddr_un>() as socklen_t;
    // SAFETY: binding with only the family autobinds an abstract name;
    // getsockname writes at most len bytes into addr.
    unsafe {
        let family_only = size_of::<libc::sa_family_t>() as socklen_t;
        assert_eq!(libc::bind(fd, as_sa(&addr), family_only), 0);
        assert_eq!(libc::listen(fd, BATCH as c_int + 28), 0);
        assert_eq!(libc::getsockname(fd, as_sa_mut(&mut addr), &mut len), 0);
    }
    (fd, addr, len)
}

/// Where reads and writes of 2-byte messages go: a stream socketpair, a pipe
/// (not a socket) or UDP over loopback.
struct Channel {
    tx: c_int,
    rx: c_int,
    /// For UDP: the receiver's address (senders use it with sendto).
    to: Option<sockaddr_in>,
}

impl Channel {
    fn stream() -> Self {
        let [tx, rx] = plain_pair(libc::SOCK_STREAM);
        Channel { tx, rx, to: None }
    }

    fn pipe() -> Self {
        let mut p = [-1; 2];
        // SAFETY: p has room for two descriptors.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        Channel {
            tx: p[1],
            rx: p[0],
            to: None,
        }
    }

    fn udp() -> Self {
        let (rx, to) = udp_bound();
        let (tx, _) = udp_bound();
        Channel { tx, rx, to: Some(to) }
    }

    /// Puts [`BATCH`] 2-byte messages in flight, with plain libc calls.
    fn fill(&self) {
        let bytes = [b'm'; 2 * BATCH];
        match &self.to {
            None => {
                // SAFETY: bytes is a local buffer of its length.
                let n = unsafe { libc::write(self.tx, bytes.as_ptr().cast(), bytes.len()) };
                assert_eq!(n, bytes.len() as ssize_t);
            }
            Some(to) => {
                for _ in 0..BATCH {
                    // SAFETY: a 2-byte local buffer and a local address.
                    let n = unsafe { libc::sendto(self.tx, bytes.as_ptr().cast(), 2, 0, as_sa(to), SIN_LEN) };
                    assert_eq!(n, 2);
                }
            }
        }
    }

    /// Takes the [`BATCH`] messages sent with the calls being measured.
    fn drain(&self) {
        let mut buf = [0u8; 2 * BATCH];
        let mut got = 0;
        while got < 2 * BATCH {
            // SAFETY: buf is a local buffer; at most its remaining room is read.
            let n = unsafe { libc::read(self.rx, buf.as_mut_ptr().cast(), 2 * BATCH - got) };
            assert!(n > 0, "drain: errno {}", errno());
            got += n as usize;
        }
    }

    /// [`CALLS`] counted reads with `read`, each of which must take 2 bytes.
    fn counted_reads(&self, p: &mut Probe, read: impl Fn(c_int) -> ssize_t) {
        for _ in 0..ROUNDS {
            self.fill();
            for _ in 0..BATCH {
                let n = p.call(|| read(self.rx));
                assert_eq!(n, 2, "{}", last_error());
            }
        }
    }

    /// [`CALLS`] counted writes with `write`, each of which must move 2 bytes.
    fn counted_writes(&self, p: &mut Probe, write: impl Fn(c_int) -> ssize_t) {
        for _ in 0..ROUNDS {
            for _ in 0..BATCH {
                let n = p.call(|| write(self.tx));
                assert_eq!(n, 2, "{}", last_error());
            }
            self.drain();
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        close_all(&[self.tx, self.rx]);
    }
}

/// [`CALLS`] counted calls of `call` on one prepared descriptor, each returning 0.
fn counted_on(fd: c_int, p: &mut Probe, call: impl Fn(c_int) -> c_int) {
    for _ in 0..CALLS {
        let rc = p.call(|| call(fd));
        assert_eq!(rc, 0, "{}", last_error());
    }
    close_all(&[fd]);
}

// ---------------------------------------------------------------------------
// The 23 mirror functions, each on its success path
// ---------------------------------------------------------------------------

fn w_socket(p: &mut Probe) {
    let mut fds = [-1; BATCH];
    for _ in 0..ROUNDS {
        for fd in &mut fds {
            *fd = p.call(|| ss_socket(libc::AF_UNIX, libc::SOCK_STREAM, 0));
            assert!(*fd >= 0, "{}", last_error());
        }
        close_all(&fds);
    }
}

fn w_socketpair(p: &mut Probe) {
    let mut pairs = [[-1; 2]; BATCH];
    for _ in 0..ROUNDS {
        for sv in &mut pairs {
            // SAFETY: sv has room for two descriptors.
            let rc = p.call(|| unsafe { ss_socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) });
            assert_eq!(rc, 0, "{}", last_error());
        }
        close_all(pairs.as_flattened());
    }
}

fn w_bind(p: &mut Probe) {
    let any = loopback(0);
    let mut fds = [-1; BATCH];
    for _ in 0..ROUNDS {
        for fd in &mut fds {
            *fd = plain_socket(libc::AF_INET, libc::SOCK_DGRAM);
        }
        for &fd in &fds {
            // SAFETY: any is a sockaddr_in of SIN_LEN bytes.
            let rc = p.call(|| unsafe { ss_bind(fd, as_sa(&any), SIN_LEN) });
            assert_eq!(rc, 0, "{}", last_error());
        }
        close_all(&fds);
    }
}

fn w_listen(p: &mut Probe) {
    let (fd, _, _) = unix_listener();
    counted_on(fd, p, |fd| ss_listen(fd, 16));
}

fn w_connect(p: &mut Probe) {
    let (target, to) = udp_bound();
    let (fd, _) = udp_bound();
    // SAFETY: to is a sockaddr_in of SIN_LEN bytes.
    counted_on(fd, p, |fd| unsafe { ss_connect(fd, as_sa(&to), SIN_LEN) });
    close_all(&[target]);
}

/// Accepts [`CALLS`] connections with `accept` on a unix listener.
fn accepts(p: &mut Probe, accept: impl Fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int) {
    let (listener, to, to_len) = unix_listener();
    let mut clients = [-1; BATCH];
    let mut accepted = [-1; BATCH];
    for _ in 0..ROUNDS {
        for c in &mut clients {
            *c = plain_socket(libc::AF_UNIX, libc::SOCK_STREAM);
            // SAFETY: to is a local address of to_len bytes.
            assert_eq!(unsafe { libc::connect(*c, as_sa(&to), to_len) }, 0);
        }
        for a in &mut accepted {
            // SAFETY: sockaddr_un is plain data; all-zero is a valid value.
            let mut peer: sockaddr_un = unsafe { zeroed() };
            let mut len = size_of::<sockaddr_un>() as socklen_t;
            *a = p.call(|| accept(listener, as_sa_mut(&mut peer), &mut len));
            assert!(*a >= 0, "{}", last_error());
        }
        close_all(&clients);
        close_all(&accepted);
    }
    close_all(&[listener]);
}

fn w_accept(p: &mut Probe) {
    // SAFETY: the pointers given by `accepts` are locals of the announced size.
    accepts(p, |fd, addr, len| unsafe { ss_accept(fd, addr, len) });
}

fn w_accept4(p: &mut Probe) {
    // SAFETY: the pointers given by `accepts` are locals of the announced size.
    accepts(p, |fd, addr, len| unsafe {
        ss_accept4(fd, addr, len, libc::SOCK_NONBLOCK)
    });
}

fn w_read(p: &mut Probe) {
    Channel::stream().counted_reads(p, |fd| {
        let mut buf = [0u8; 2];
        // SAFETY: buf is a local buffer of 2 bytes.
        unsafe { ss_read(fd, buf.as_mut_ptr().cast(), 2) }
    });
}

fn w_write(p: &mut Probe) {
    // SAFETY: a 2-byte static buffer.
    Channel::stream().counted_writes(p, |fd| unsafe { ss_write(fd, b"ww".as_ptr().cast(), 2) });
}

fn w_write_pipe(p: &mut Probe) {
    // SAFETY: a 2-byte static buffer.
    Channel::pipe().counted_writes(p, |fd| unsafe { ss_write(fd, b"ww".as_ptr().cast(), 2) });
}

fn w_recv(p: &mut Probe) {
    Channel::stream().counted_reads(p, |fd| {
        let mut buf = [0u8; 2];
        // SAFETY: buf is a local buffer of 2 bytes.
        unsafe { ss_recv(fd, buf.as_mut_ptr().cast(), 2, 0) }
    });
}

fn w_send(p: &mut Probe) {
    // SAFETY: a 2-byte static buffer.
    Channel::stream().counted_writes(p, |fd| unsafe { ss_send(fd, b"ss".as_ptr().cast(), 2, 0) });
}

/// Two 1-byte iovecs over `a` and `b`.
fn two_iovecs(a: &mut u8, b: &mut u8) -> [iovec; 2] {
    [
        iovec {
            iov_base: (a as *mut u8).cast(),
            iov_len: 1,
        },
        iovec {
            iov_base: (b as *mut u8).cast(),
            iov_len: 1,
        },
    ]
}

fn w_readv(p: &mut Probe) {
    Channel::stream().counted_reads(p, |fd| {
        let (mut a, mut b) = (0u8, 0u8);
        let iov = two_iovecs(&mut a, &mut b);
        // SAFETY: iov names two local bytes.
        unsafe { ss_readv(fd, iov.as_ptr(), 2) }
    });
}

fn writev_two(fd: c_int) -> ssize_t {
    let (mut a, mut b) = (b'v', b'v');
    let iov = two_iovecs(&mut a, &mut b);
    // SAFETY: iov names two local bytes.
    unsafe { ss_writev(fd, iov.as_ptr(), 2) }
}

fn w_writev(p: &mut Probe) {
    Channel::stream().counted_writes(p, writev_two);
}

fn w_writev_pipe(p: &mut Probe) {
    Channel::pipe().counted_writes(p, writev_two);
}

/// A message header over `iov` (and optionally a name buffer).
fn header(iov: &mut [iovec; 2], name: Option<&mut sockaddr_in>) -> msghdr {
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: msghdr = unsafe { zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = 2;
    if let Some(name) = name {
        msg.msg_name = (name as *mut sockaddr_in).cast();
        msg.msg_namelen = SIN_LEN;
    }
    msg
}

fn w_recvmsg(p: &mut Probe) {
    Channel::udp().counted_reads(p, |fd| {
        let (mut a, mut b) = (0u8, 0u8);
        let mut iov = two_iovecs(&mut a, &mut b);
        let mut from = loopback(0);
        let mut msg = header(&mut iov, Some(&mut from));
        // SAFETY: msg names local buffers.
        unsafe { ss_recvmsg(fd, &mut msg, 0) }
    });
}

fn w_sendmsg(p: &mut Probe) {
    let ch = Channel::udp();
    let to = ch.to.expect("udp has an address");
    ch.counted_writes(p, |fd| {
        let (mut a, mut b) = (b'g', b'g');
        let mut iov = two_iovecs(&mut a, &mut b);
        let mut to = to;
        let msg = header(&mut iov, Some(&mut to));
        // SAFETY: msg names local buffers and a local address.
        unsafe { ss_sendmsg(fd, &msg, 0) }
    });
}

fn w_recvfrom(p: &mut Probe) {
    Channel::udp().counted_reads(p, |fd| {
        let mut buf = [0u8; 2];
        let mut from = loopback(0);
        let mut len = SIN_LEN;
        // SAFETY: local buffers of the announced sizes.
        unsafe { ss_recvfrom(fd, buf.as_mut_ptr().cast(), 2, 0, as_sa_mut(&mut from), &mut len) }
    });
}

fn w_sendto(p: &mut Probe) {
    let ch = Channel::udp();
    let to = ch.to.expect("udp has an address");
    // SAFETY: a 2-byte static buffer and a local address.
    ch.counted_writes(p, |fd| unsafe {
        ss_sendto(fd, b"to".as_ptr().cast(), 2, 0, as_sa(&to), SIN_LEN)
    });
}

fn w_shutdown(p: &mut Probe) {
    let [a, b] = plain_pair(libc::SOCK_STREAM);
    counted_on(a, p, |fd| ss_shutdown(fd, libc::SHUT_RDWR));
    close_all(&[b]);
}

fn w_close(p: &mut Probe) {
    let mut fds = [-1; BATCH];
    for _ in 0..ROUNDS {
        // Made by ss_socket: a number ss_close closed before and that plain
        // socket(2) got again would (rightly) be refused.
        for fd in &mut fds {
            *fd = ss_socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(*fd >= 0, "{}", last_error());
        }
        for &fd in &fds {
            let rc = p.call(|| ss_close(fd));
            assert_eq!(rc, 0, "{}", last_error());
        }
    }
}

/// A UDP socket connected to a bound one (which is returned to be closed).
fn connected_udp() -> (c_int, c_int) {
    let (target, to) = udp_bound();
    let (fd, _) = udp_bound();
    // SAFETY: to is a sockaddr_in of SIN_LEN bytes.
    assert_eq!(unsafe { libc::connect(fd, as_sa(&to), SIN_LEN) }, 0);
    (fd, target)
}

fn name_calls(p: &mut Probe, get: unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int) {
    let (fd, target) = connected_udp();
    counted_on(fd, p, |fd| {
        let mut addr = loopback(0);
        let mut len = SIN_LEN;
        // SAFETY: addr has room for len bytes.
        unsafe { get(fd, as_sa_mut(&mut addr), &mut len) }
    });
    close_all(&[target]);
}

fn w_getsockname(p: &mut Probe) {
    name_calls(p, ss_getsockname);
}

fn w_getpeername(p: &mut Probe) {
    name_calls(p, ss_getpeername);
}

fn w_getsockopt(p: &mut Probe) {
    let (fd, _) = udp_bound();
    counted_on(fd, p, |fd| {
        let mut value: c_int = 0;
        let mut len = size_of::<c_int>() as socklen_t;
        // SAFETY: value and len are locals of the announced sizes.
        unsafe {
            ss_getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TYPE,
                (&mut value as *mut c_int).cast(),
                &mut len,
            )
        }
    });
}

fn w_setsockopt(p: &mut Probe) {
    let (fd, _) = udp_bound();
    counted_on(fd, p, |fd| {
        let one: c_int = 1;
        // SAFETY: one is a local int.
        unsafe {
            ss_setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&one as *const c_int).cast(),
                size_of::<c_int>() as socklen_t,
            )
        }
    });
}

const MIRRORS: [Workload; 23] = [
    ("ss_socket", w_socket),
    ("ss_socketpair", w_socketpair),
    ("ss_bind", w_bind),
    ("ss_listen", w_listen),
    ("ss_connect", w_connect),
    ("ss_accept", w_accept),
    ("ss_accept4", w_accept4),
    ("ss_read", w_read),
    ("ss_write", w_write),
    ("ss_recv", w_recv),
    ("ss_send", w_send),
    ("ss_readv", w_readv),
    ("ss_writev", w_writev),
    ("ss_recvmsg", w_recvmsg),
    ("ss_sendmsg", w_sendmsg),
    ("ss_recvfrom", w_recvfrom),
    ("ss_sendto", w_sendto),
    ("ss_shutdown", w_shutdown),
    ("ss_close", w_close),
    ("ss_getsockname", w_getsockname),
    ("ss_getpeername", w_getpeername),
    ("ss_getsockopt", w_getsockopt),
    ("ss_setsockopt", w_setsockopt),
];

#[test]
fn the_counter_sees_allocations() {
    // The control: a region that allocates is counted, so a zero above means something.
    let mut probe = Probe::default();
    let boxed = probe.call(|| std::hint::black_box(Box::new(7u64)));
    let grown = probe.call(|| {
        let mut v = Vec::with_capacity(1);
        v.extend_from_slice(&[1u8; 64]);
        std::hint::black_box(v)
    });
    assert_eq!((*boxed, grown.len()), (7, 64));
    assert!(probe.allocations >= 3, "counted {}", probe.allocations);
}

#[test]
fn success_paths_of_all_23_mirror_functions_do_not_allocate() {
    if rerun_without_trace("success_paths_of_all_23_mirror_functions_do_not_allocate") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    measure(&MIRRORS);
}

#[test]
fn writes_to_a_pipe_do_not_allocate_in_the_steady_state() {
    if rerun_without_trace("writes_to_a_pipe_do_not_allocate_in_the_steady_state") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    measure(&[("ss_write (pipe)", w_write_pipe), ("ss_writev (pipe)", w_writev_pipe)]);
}

// ---------------------------------------------------------------------------
// Failing calls
// ---------------------------------------------------------------------------

/// [`CALLS`] counted calls that must fail with `want`.
fn failing(p: &mut Probe, want: c_int, call: impl Fn() -> isize) {
    for _ in 0..CALLS {
        let r = p.call(&call);
        assert_eq!((r, errno()), (-1, want), "{}", last_error());
    }
}

fn f_recv_eagain(p: &mut Probe) {
    let [a, b] = plain_pair(libc::SOCK_STREAM);
    let mut buf = [0u8; 8];
    let ptr = buf.as_mut_ptr().cast();
    // SAFETY: buf is a local buffer of 8 bytes.
    failing(p, libc::EAGAIN, || unsafe { ss_recv(a, ptr, 8, libc::MSG_DONTWAIT) });
    close_all(&[a, b]);
}

fn f_accept_eagain(p: &mut Probe) {
    let (listener, _, _) = unix_listener();
    // SAFETY: F_SETFL takes an int.
    unsafe { libc::fcntl(listener, libc::F_SETFL, libc::O_NONBLOCK) };
    // SAFETY: NULL address and length are allowed.
    failing(p, libc::EAGAIN, || unsafe {
        ss_accept(listener, std::ptr::null_mut(), std::ptr::null_mut()) as isize
    });
    close_all(&[listener]);
}

fn f_connect_refused(p: &mut Probe) {
    // A bound but not listening TCP socket holds the port: connecting is refused.
    let holder = plain_socket(libc::AF_INET, libc::SOCK_STREAM);
    let to = bind_loopback(Api::Libc, holder);
    let fd = plain_socket(libc::AF_INET, libc::SOCK_STREAM);
    // SAFETY: to is a sockaddr_in of SIN_LEN bytes.
    failing(p, libc::ECONNREFUSED, || unsafe {
        ss_connect(fd, as_sa(&to), SIN_LEN) as isize
    });
    close_all(&[fd, holder]);
}

fn f_bind_short_address(p: &mut Probe) {
    let fd = plain_socket(libc::AF_INET, libc::SOCK_DGRAM);
    let any = loopback(0);
    // SAFETY: any is larger than the 8 bytes announced.
    failing(p, libc::EINVAL, || unsafe { ss_bind(fd, as_sa(&any), 8) as isize });
    close_all(&[fd]);
}

fn f_close_bad_number(p: &mut Probe) {
    failing(p, libc::EBADF, || ss_close(-1) as isize);
}

fn f_getpeername_unconnected(p: &mut Probe) {
    let (fd, _) = udp_bound();
    failing(p, libc::ENOTCONN, || {
        let mut addr = loopback(0);
        let mut len = SIN_LEN;
        // SAFETY: addr has room for len bytes.
        unsafe { ss_getpeername(fd, as_sa_mut(&mut addr), &mut len) as isize }
    });
    close_all(&[fd]);
}

#[test]
fn failing_calls_do_not_allocate_until_the_message_is_asked_for() {
    if rerun_without_trace("failing_calls_do_not_allocate_until_the_message_is_asked_for") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    measure(&[
        ("ss_recv -> EAGAIN", f_recv_eagain),
        ("ss_accept -> EAGAIN", f_accept_eagain),
        ("ss_connect -> ECONNREFUSED", f_connect_refused),
        ("ss_bind(addrlen 8) -> EINVAL", f_bind_short_address),
        ("ss_close(-1) -> EBADF", f_close_bad_number),
        ("ss_getpeername -> ENOTCONN", f_getpeername_unconnected),
    ]);
    // The message is built on demand, into the thread's fixed buffer.
    let mut probe = Probe::default();
    let text = probe.call(|| {
        // SAFETY: ss_last_error returns a NUL-terminated string; only its length is read.
        unsafe { CStr::from_ptr(ss_last_error()) }.to_bytes().len()
    });
    let m = last_error();
    assert!(text > 0 && m.contains("(ENOTCONN)"), "{m}");
    println!(
        "ss_last_error (building {text} bytes): {} allocations",
        probe.allocations
    );
}
