//! Socket names and options.

use core::ffi::{c_int, c_void};

use libc::{sockaddr, socklen_t};

use super::boundary;
use crate::call::{Call, CallName, Detail};
use crate::mem::{UserAddrOut, UserIn, UserOptOut};
use crate::socket::{self, Fd};

/// Gets the socket's local address, as `getsockname(2)`: after `bind` or
/// `connect` it holds the port (the system's choice when port 0 was asked).
///
/// # Safety
///
/// `addr` and `addrlen` are handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_getsockname(sockfd: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t) -> c_int {
    // SAFETY: the kernel checks both pointers.
    let out = unsafe { UserAddrOut::from_c(addr, addrlen) };
    boundary(
        sockfd,
        || socket::getsockname(Fd(sockfd), out),
        move |_| Call::on(CallName::Getsockname, sockfd, Detail::None),
    )
}

/// Gets the connected peer's address, as `getpeername(2)`; `ENOTCONN` if none.
///
/// # Safety
///
/// `addr` and `addrlen` are handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_getpeername(sockfd: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t) -> c_int {
    // SAFETY: the kernel checks both pointers.
    let out = unsafe { UserAddrOut::from_c(addr, addrlen) };
    boundary(
        sockfd,
        || socket::getpeername(Fd(sockfd), out),
        move |_| Call::on(CallName::Getpeername, sockfd, Detail::None),
    )
}

/// Reads a socket option, as `getsockopt(2)`.
///
/// # Safety
///
/// `optval` and `optlen` are handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_getsockopt(
    sockfd: c_int,
    level: c_int,
    optname: c_int,
    optval: *mut c_void,
    optlen: *mut socklen_t,
) -> c_int {
    // SAFETY: the kernel checks both pointers.
    let out = unsafe { UserOptOut::from_c(optval, optlen) };
    boundary(
        sockfd,
        || socket::getsockopt(Fd(sockfd), level, optname, out),
        move |_| Call::on(CallName::Getsockopt, sockfd, Detail::Opt { level, name: optname }),
    )
}

/// Sets a socket option, as `setsockopt(2)` (for example `SO_REUSEADDR`
/// before `bind`, so a restarted server can bind its port again at once).
///
/// # Safety
///
/// `optval` is handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_setsockopt(
    sockfd: c_int,
    level: c_int,
    optname: c_int,
    optval: *const c_void,
    optlen: socklen_t,
) -> c_int {
    // SAFETY: the kernel checks the pointer.
    let value = unsafe { UserIn::from_c(optval, optlen as usize) };
    boundary(
        sockfd,
        || socket::setsockopt(Fd(sockfd), level, optname, value),
        move |_| Call::on(CallName::Setsockopt, sockfd, Detail::Opt { level, name: optname }),
    )
}
