//! Addresses, socket options and bounded waits: the loopback `sockaddr_in`,
//! std's view of a socket's address, `int` and timeout options set or read
//! through either implementation, and `poll` with a deadline.

use std::ffi::{CString, c_int, c_void};
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::thread;
use std::time::{Duration, Instant};

use libc::{sockaddr, sockaddr_in, sockaddr_storage, socklen_t};
use safesock::ffi;

use crate::common::errno::{errno, last_error};

/// Upper bound for any single wait in these tests: long enough never to fire
/// on a loaded machine, short enough that a broken library fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Which implementation a call goes through: plain libc, or safesock's `ss_` mirror.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Libc,
    Ss,
}

/// The size of a `sockaddr_in`.
pub const SIN_LEN: socklen_t = size_of::<sockaddr_in>() as socklen_t;

/// 127.0.0.1:`port`.
pub fn loopback(port: u16) -> sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
    let mut a: sockaddr_in = unsafe { zeroed() };
    a.sin_family = libc::AF_INET as libc::sa_family_t;
    a.sin_port = port.to_be();
    a.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
    a
}

/// An address structure as the `sockaddr` pointer the calls take.
pub fn as_sa<T>(a: &T) -> *const sockaddr {
    (a as *const T).cast()
}

/// An address structure as the `sockaddr` pointer the calls fill.
pub fn as_sa_mut<T>(a: &mut T) -> *mut sockaddr {
    (a as *mut T).cast()
}

/// A C string for a test text (never contains NUL).
pub fn cstring(text: &str) -> CString {
    CString::new(text).expect("test texts contain no NUL")
}

/// An address of a socket as std sees it (`getsockname` or `getpeername`).
pub fn socket_addr(fd: c_int, peer: bool) -> Option<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; zero is a valid value.
    let mut storage: sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<sockaddr_storage>() as socklen_t;
    let ptr = as_sa_mut(&mut storage);
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
        libc::AF_INET if len as usize >= size_of::<sockaddr_in>() => {
            // SAFETY: the family says sockaddr_in and the length covers it;
            // sockaddr_storage is aligned for every address type.
            let sin = unsafe { &*(storage as *const sockaddr_storage).cast::<sockaddr_in>() };
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

/// `getsockopt` of either implementation (`libc::getsockopt` or `ss_getsockopt`).
pub type GetsockoptFn = unsafe extern "C" fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int;
/// `setsockopt` of either implementation (`libc::setsockopt` or `ss_setsockopt`).
pub type SetsockoptFn = unsafe extern "C" fn(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int;

/// An `int` option read through `getsockopt`; the errno on failure.
pub fn try_getsockopt_int(getsockopt: GetsockoptFn, fd: c_int, level: c_int, name: c_int) -> Result<c_int, c_int> {
    let mut value: c_int = -1;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: both pointers refer to locals of the sizes given.
    let r = unsafe { getsockopt(fd, level, name, (&raw mut value).cast(), &mut len) };
    if r == 0 { Ok(value) } else { Err(errno()) }
}

/// An integer option read with `ss_getsockopt`, which must succeed.
#[track_caller]
pub fn getsockopt_int(fd: c_int, level: c_int, name: c_int) -> c_int {
    try_getsockopt_int(ffi::ss_getsockopt, fd, level, name)
        .unwrap_or_else(|_| panic!("ss_getsockopt(fd {fd}, {level}, {name}): {}", last_error()))
}

/// A value of type `T` set through `setsockopt`; the errno on failure.
fn try_setsockopt<T>(setsockopt: SetsockoptFn, fd: c_int, level: c_int, name: c_int, value: &T) -> Result<(), c_int> {
    let len = size_of::<T>() as socklen_t;
    // SAFETY: the pointer refers to a live value of the size given.
    let r = unsafe { setsockopt(fd, level, name, (value as *const T).cast(), len) };
    if r == 0 { Ok(()) } else { Err(errno()) }
}

/// An integer option set with `ss_setsockopt`, which must succeed.
#[track_caller]
pub fn setsockopt_int(fd: c_int, level: c_int, name: c_int, value: c_int) {
    if try_setsockopt(ffi::ss_setsockopt, fd, level, name, &value).is_err() {
        panic!("ss_setsockopt(fd {fd}, {level}, {name}): {}", last_error());
    }
}

/// `SO_RCVTIMEO` and `SO_SNDTIMEO` set to `after` through `setsockopt`
/// (zero: no timeout); the errno of the first failure.
pub fn try_set_timeouts(setsockopt: SetsockoptFn, fd: c_int, after: Duration) -> Result<(), c_int> {
    let tv = libc::timeval {
        tv_sec: after.as_secs() as libc::time_t,
        tv_usec: after.subsec_micros() as libc::suseconds_t,
    };
    for name in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        try_setsockopt(setsockopt, fd, libc::SOL_SOCKET, name, &tv)?;
    }
    Ok(())
}

/// `SO_RCVTIMEO` and `SO_SNDTIMEO`, set with plain `setsockopt` (so that
/// setting them is never the `ss_` call under test), which must succeed.
#[track_caller]
pub fn set_timeouts(fd: c_int, after: Duration) {
    if let Err(e) = try_set_timeouts(libc::setsockopt, fd, after) {
        panic!("setsockopt(fd {fd}, timeout): errno {e}");
    }
}

/// Bounds every blocking read and write on `fd` by [`PATIENCE`], with `ss_setsockopt`.
#[track_caller]
pub fn bound_waits(fd: c_int) {
    if try_set_timeouts(ffi::ss_setsockopt, fd, PATIENCE).is_err() {
        panic!("ss_setsockopt(fd {fd}, timeout): {}", last_error());
    }
}

/// Sets `SO_LINGER` to {on, 0} through `api`: the next close resets the
/// connection (and a connection closed so leaves no TIME_WAIT behind).
#[track_caller]
pub fn linger_zero(api: Api, fd: c_int) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    let setsockopt: SetsockoptFn = match api {
        Api::Libc => libc::setsockopt,
        Api::Ss => ffi::ss_setsockopt,
    };
    if let Err(e) = try_setsockopt(setsockopt, fd, libc::SOL_SOCKET, libc::SO_LINGER, &linger) {
        panic!(
            "setsockopt(fd {fd}, SO_LINGER) via {api:?}: errno {e}, {}",
            last_error()
        );
    }
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

/// Bytes queued for reading on `fd` (`FIONREAD`).
#[track_caller]
pub fn queued(fd: c_int) -> usize {
    let mut n: c_int = 0;
    // SAFETY: FIONREAD writes one int into the local.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    assert_eq!(r, 0, "FIONREAD: errno {}", errno());
    usize::try_from(n).expect("non-negative")
}

/// Waits (bounded by [`PATIENCE`]) until `fd` has `n` bytes queued.
#[track_caller]
pub fn wait_queued(fd: c_int, n: usize) {
    let deadline = Instant::now() + PATIENCE;
    while queued(fd) < n {
        assert!(Instant::now() < deadline, "fewer than {n} bytes arrived on fd {fd}");
        thread::sleep(Duration::from_millis(1));
    }
}
