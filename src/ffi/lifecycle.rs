//! Creating, connecting and closing sockets.

use core::ffi::c_int;

use libc::{sockaddr, socklen_t};

use super::boundary;
use crate::call::{AddrArg, Call, CallName, Detail};
use crate::mem::{UserAddr, UserAddrOut, UserPair};
use crate::socket::{self, Fd};
use crate::trace;

/// Creates a socket, as `socket(2)`, with `FD_CLOEXEC` always set.
///
/// Returns the new descriptor, or -1 with `errno` and a message in `ss_last_error()`.
#[unsafe(no_mangle)]
pub extern "C" fn ss_socket(domain: c_int, r#type: c_int, protocol: c_int) -> c_int {
    boundary(
        -1,
        || socket::socket(domain, r#type, protocol),
        move |_| {
            Call::no_fd(
                CallName::Socket,
                Detail::Create {
                    domain,
                    ty: r#type,
                    protocol,
                },
            )
        },
    )
}

/// Creates a pair of connected sockets, as `socketpair(2)`, both with `FD_CLOEXEC`.
///
/// Returns 0 and fills `sv[0]`, `sv[1]`; or -1 with `errno` (`EFAULT` for a bad `sv`).
///
/// # Safety
///
/// `sv` is handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_socketpair(domain: c_int, r#type: c_int, protocol: c_int, sv: *mut c_int) -> c_int {
    // SAFETY: the kernel checks `sv`; safesock reads it only after success.
    let sv = unsafe { UserPair::from_c(sv) };
    boundary(
        -1,
        || socket::socketpair(domain, r#type, protocol, sv),
        move |_| {
            Call::no_fd(
                CallName::Socketpair,
                Detail::Create {
                    domain,
                    ty: r#type,
                    protocol,
                },
            )
        },
    )
}

/// Gives a socket its local address, as `bind(2)`.
///
/// Returns 0, or -1 with `errno`; the message decodes the address and explains
/// `EADDRINUSE`, `EACCES` on ports below 1024 and length/family mismatches.
///
/// # Safety
///
/// `addr` is handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_bind(sockfd: c_int, addr: *const sockaddr, addrlen: socklen_t) -> c_int {
    // SAFETY: the kernel checks the address; safesock reads it only after the kernel has.
    let to = unsafe { UserAddr::from_c(addr, addrlen) };
    boundary(
        sockfd,
        || socket::bind(Fd(sockfd), to),
        move |_| Call::on(CallName::Bind, sockfd, Detail::Addr(AddrArg::raw(addr, addrlen))),
    )
}

/// Marks a stream socket as passive, ready to accept connections, as `listen(2)`.
///
/// Returns 0, or -1 with `errno`.
#[unsafe(no_mangle)]
pub extern "C" fn ss_listen(sockfd: c_int, backlog: c_int) -> c_int {
    boundary(
        sockfd,
        || socket::listen(Fd(sockfd), backlog),
        move |_| Call::on(CallName::Listen, sockfd, Detail::Backlog(backlog)),
    )
}

/// Connects a socket to `addr`, as `connect(2)`. For TCP it returns once the
/// three-way handshake is done (the server need not have called accept yet).
///
/// Returns 0, or -1 with `errno` (`EINPROGRESS` on a non-blocking socket, then
/// wait for writability and read `SO_ERROR`).
///
/// # Safety
///
/// `addr` is handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_connect(sockfd: c_int, addr: *const sockaddr, addrlen: socklen_t) -> c_int {
    // SAFETY: the kernel checks the address; safesock reads it only after the kernel has.
    let to = unsafe { UserAddr::from_c(addr, addrlen) };
    boundary(
        sockfd,
        || socket::connect(Fd(sockfd), to),
        move |_| Call::on(CallName::Connect, sockfd, Detail::Addr(AddrArg::raw(addr, addrlen))),
    )
}

/// Takes the next established connection from a listening socket, as
/// `accept(2)`; the new descriptor has `FD_CLOEXEC` set.
///
/// `addr`/`addrlen` may be NULL; otherwise `*addrlen` is the room in `addr`
/// on entry and the peer address length on return. Returns the new
/// descriptor, or -1 with `errno` (`EINVAL` if `sockfd` is not listening).
///
/// # Safety
///
/// `addr` and `addrlen` are handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_accept(sockfd: c_int, addr: *mut sockaddr, addrlen: *mut socklen_t) -> c_int {
    // SAFETY: the kernel checks both pointers.
    let peer = unsafe { UserAddrOut::from_c(addr, addrlen) };
    // -1: the accept marks the listener in use itself, with the lookup it makes anyway.
    boundary(
        -1,
        || socket::accept4(Fd(sockfd), peer, 0),
        move |_| Call::on(CallName::Accept, sockfd, Detail::None),
    )
}

/// As `ss_accept`, with `accept4(2)` flags (`SOCK_NONBLOCK`, `SOCK_CLOEXEC`);
/// `FD_CLOEXEC` is set whatever `flags` say.
///
/// # Safety
///
/// `addr` and `addrlen` are handed to the kernel unread; any value is allowed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ss_accept4(
    sockfd: c_int,
    addr: *mut sockaddr,
    addrlen: *mut socklen_t,
    flags: c_int,
) -> c_int {
    // SAFETY: the kernel checks both pointers.
    let peer = unsafe { UserAddrOut::from_c(addr, addrlen) };
    // -1: the accept marks the listener in use itself, with the lookup it makes anyway.
    boundary(
        -1,
        || socket::accept4(Fd(sockfd), peer, flags),
        move |_| Call::on(CallName::Accept4, sockfd, Detail::Flags(flags)),
    )
}

/// Shuts down reading (`SHUT_RD`), writing (`SHUT_WR`: sends FIN, the peer
/// reads end of file) or both, as `shutdown(2)`. The descriptor stays open.
///
/// Returns 0, or -1 with `errno`.
#[unsafe(no_mangle)]
pub extern "C" fn ss_shutdown(sockfd: c_int, how: c_int) -> c_int {
    boundary(
        sockfd,
        || socket::shutdown(Fd(sockfd), how),
        move |_| Call::on(CallName::Shutdown, sockfd, Detail::How(how)),
    )
}

/// Closes a descriptor, as `close(2)`, at most once.
///
/// Closing drops one reference: a TCP connection sends its FIN only when the
/// last descriptor for it (after `dup` or `fork`) is closed. A number that
/// `ss_close` already closed, and that no `ss_` call has returned or used
/// since, is refused with -1/`EBADF` and nothing is closed, even if the number
/// now belongs to something opened without safesock (close that with `close`).
#[unsafe(no_mangle)]
pub extern "C" fn ss_close(fd: c_int) -> c_int {
    if trace::may_be_on() {
        return close_traced(fd);
    }
    close_reporting(fd, None)
}

/// `ss_close` when a trace line may want the TCP state from before the close.
#[cold]
#[inline(never)]
fn close_traced(fd: c_int) -> c_int {
    let before = super::contained(None, || trace::state_before_close(fd));
    close_reporting(fd, before)
}

#[inline(always)]
fn close_reporting(fd: c_int, before: Option<c_int>) -> c_int {
    boundary(
        -1,
        || socket::close(Fd(fd)),
        move |_| Call::on(CallName::Close, fd, Detail::Closing(before)),
    )
}
