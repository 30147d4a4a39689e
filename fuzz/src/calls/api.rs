//! The two implementations a differential run compares: libc's functions
//! (and, for safesock's helpers, what a careful C programmer would write with
//! them) and safesock's `ss_` functions.

use core::cell::Cell;
use core::ffi::{c_char, c_int, c_void};
use std::net::SocketAddr;

use libc::{iovec, msghdr, sockaddr, socklen_t, ssize_t};

/// Which implementation a run goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// libc, in a forked child.
    Libc,
    /// safesock, in the fuzzing process (where coverage is counted).
    Ss,
}

/// Declares [`Api`] with one function pointer per mirrored function.
macro_rules! api {
    ($($name:ident => $libc:path, $ss:path : fn($($arg:ty),*) -> $ret:ty;)*) => {
        /// The calls of one side, as function pointers.
        pub struct Api {
            /// Which side this is.
            pub side: Side,
            $(#[allow(missing_docs)] pub $name: unsafe extern "C" fn($($arg),*) -> $ret,)*
        }

        /// libc's functions and the helper emulations.
        pub static LIBC: Api = Api { side: Side::Libc, $($name: $libc,)* };

        /// safesock's functions.
        pub static SS: Api = Api { side: Side::Ss, $($name: $ss,)* };
    };
}

api! {
    socket => libc::socket, safesock::ffi::ss_socket: fn(c_int, c_int, c_int) -> c_int;
    socketpair => libc::socketpair, safesock::ffi::ss_socketpair: fn(c_int, c_int, c_int, *mut c_int) -> c_int;
    bind => libc::bind, safesock::ffi::ss_bind: fn(c_int, *const sockaddr, socklen_t) -> c_int;
    listen => libc::listen, safesock::ffi::ss_listen: fn(c_int, c_int) -> c_int;
    connect => libc::connect, safesock::ffi::ss_connect: fn(c_int, *const sockaddr, socklen_t) -> c_int;
    accept => libc::accept, safesock::ffi::ss_accept: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    accept4 => libc::accept4, safesock::ffi::ss_accept4: fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int;
    read => libc::read, safesock::ffi::ss_read: fn(c_int, *mut c_void, usize) -> ssize_t;
    write => libc::write, safesock::ffi::ss_write: fn(c_int, *const c_void, usize) -> ssize_t;
    recv => libc::recv, safesock::ffi::ss_recv: fn(c_int, *mut c_void, usize, c_int) -> ssize_t;
    send => libc::send, safesock::ffi::ss_send: fn(c_int, *const c_void, usize, c_int) -> ssize_t;
    readv => libc::readv, safesock::ffi::ss_readv: fn(c_int, *const iovec, c_int) -> ssize_t;
    writev => libc::writev, safesock::ffi::ss_writev: fn(c_int, *const iovec, c_int) -> ssize_t;
    recvmsg => libc::recvmsg, safesock::ffi::ss_recvmsg: fn(c_int, *mut msghdr, c_int) -> ssize_t;
    sendmsg => libc::sendmsg, safesock::ffi::ss_sendmsg: fn(c_int, *const msghdr, c_int) -> ssize_t;
    recvfrom => libc::recvfrom, safesock::ffi::ss_recvfrom:
        fn(c_int, *mut c_void, usize, c_int, *mut sockaddr, *mut socklen_t) -> ssize_t;
    sendto => libc::sendto, safesock::ffi::ss_sendto:
        fn(c_int, *const c_void, usize, c_int, *const sockaddr, socklen_t) -> ssize_t;
    shutdown => libc::shutdown, safesock::ffi::ss_shutdown: fn(c_int, c_int) -> c_int;
    close => libc::close, safesock::ffi::ss_close: fn(c_int) -> c_int;
    getsockname => libc::getsockname, safesock::ffi::ss_getsockname: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    getpeername => libc::getpeername, safesock::ffi::ss_getpeername: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    getsockopt => libc::getsockopt, safesock::ffi::ss_getsockopt:
        fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int;
    setsockopt => libc::setsockopt, safesock::ffi::ss_setsockopt:
        fn(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int;
    send_all => emu::send_all, safesock::ffi::ss_send_all: fn(c_int, *const c_void, usize) -> ssize_t;
    recv_exact => emu::recv_exact, safesock::ffi::ss_recv_exact: fn(c_int, *mut c_void, usize) -> ssize_t;
    transferred => emu::transferred, ss_transferred_shim: fn() -> usize;
    local_port => emu::local_port, ss_local_port_shim: fn(c_int) -> c_int;
    tcp_state => emu::tcp_state, ss_tcp_state_shim: fn(c_int) -> c_int;
    tcp_listen => emu::tcp_listen, safesock::ffi::ss_tcp_listen: fn(*const c_char, c_int) -> c_int;
    udp_bind => emu::udp_bind, safesock::ffi::ss_udp_bind: fn(*const c_char) -> c_int;
    tcp_connect => emu::tcp_connect, safesock::ffi::ss_tcp_connect: fn(*const c_char, c_int) -> c_int;
}

// The safe exported functions, as `unsafe extern "C" fn` pointers like the rest.
unsafe extern "C" fn ss_transferred_shim() -> usize {
    safesock::ffi::ss_transferred()
}
unsafe extern "C" fn ss_local_port_shim(fd: c_int) -> c_int {
    safesock::ffi::ss_local_port(fd)
}
unsafe extern "C" fn ss_tcp_state_shim(fd: c_int) -> c_int {
    safesock::ffi::ss_tcp_state(fd)
}

/// `errno` of this thread.
pub fn errno() -> c_int {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Sets `errno` of this thread.
pub fn set_errno(value: c_int) {
    // SAFETY: __errno_location returns a valid pointer to this thread's errno.
    unsafe { *libc::__errno_location() = value }
}

/// The helpers written with plain libc, as the contract describes them.
mod emu {
    use super::*;

    thread_local! {
        static TRANSFERRED: Cell<usize> = const { Cell::new(0) };
    }

    /// `ss_send_all`: `write` until all is written; EINTR retried; 0 written is EIO.
    pub unsafe extern "C" fn send_all(fd: c_int, buf: *const c_void, len: usize) -> ssize_t {
        let mut done = 0usize;
        TRANSFERRED.with(|t| t.set(0));
        loop {
            // SAFETY: the kernel checks the caller's buffer.
            let n = unsafe { libc::write(fd, buf.cast::<u8>().wrapping_add(done).cast(), len - done) };
            if n >= 0 {
                done += n as usize;
                TRANSFERRED.with(|t| t.set(done));
                if done >= len {
                    return done as ssize_t;
                }
                if n == 0 {
                    set_errno(libc::EIO);
                    return -1;
                }
            } else if errno() != libc::EINTR {
                return -1;
            }
        }
    }

    /// `ss_recv_exact`: `read` until `len` bytes or end of stream.
    pub unsafe extern "C" fn recv_exact(fd: c_int, buf: *mut c_void, len: usize) -> ssize_t {
        let mut done = 0usize;
        TRANSFERRED.with(|t| t.set(0));
        loop {
            // SAFETY: the kernel checks the caller's buffer.
            let n = unsafe { libc::read(fd, buf.cast::<u8>().wrapping_add(done).cast(), len - done) };
            if n == 0 {
                return done as ssize_t;
            }
            if n > 0 {
                done += n as usize;
                TRANSFERRED.with(|t| t.set(done));
                if done >= len {
                    return done as ssize_t;
                }
            } else if errno() != libc::EINTR {
                return -1;
            }
        }
    }

    /// `ss_transferred`.
    pub unsafe extern "C" fn transferred() -> usize {
        TRANSFERRED.with(Cell::get)
    }

    /// `ss_local_port`: getsockname, then the port of an IPv4/IPv6 address.
    pub unsafe extern "C" fn local_port(fd: c_int) -> c_int {
        // SAFETY: sockaddr_storage is plain data.
        let mut ss: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
        let mut len = size_of::<libc::sockaddr_storage>() as socklen_t;
        // SAFETY: both pointers refer to locals of the sizes given.
        if unsafe { libc::getsockname(fd, (&raw mut ss).cast(), &mut len) } != 0 {
            return -1;
        }
        let port_at = match c_int::from(ss.ss_family) {
            libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => 2,
            libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => 2,
            _ => {
                set_errno(libc::EAFNOSUPPORT);
                return -1;
            }
        };
        // SAFETY: the storage is a local of 128 bytes.
        let bytes = unsafe { core::slice::from_raw_parts((&raw const ss).cast::<u8>(), 4) };
        c_int::from(u16::from_be_bytes([bytes[port_at], bytes[port_at + 1]]))
    }

    /// `ss_tcp_state`: `tcpi_state` from TCP_INFO (TIME_WAIT is told apart
    /// by safesock through sock_diag; the comparison allows for that).
    pub unsafe extern "C" fn tcp_state(fd: c_int) -> c_int {
        // SAFETY: tcp_info is plain data.
        let mut info: libc::tcp_info = unsafe { core::mem::zeroed() };
        let mut len = size_of::<libc::tcp_info>() as socklen_t;
        // SAFETY: both pointers refer to locals of the sizes given.
        if unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &mut len) } != 0 {
            return -1;
        }
        c_int::from(info.tcpi_state)
    }

    /// The numeric address forms of `ss_addr_parse` that the fuzzer's texts
    /// use (see `ops::TEXTS`); anything else is EINVAL, as safesock says.
    fn parse(text: *const c_char) -> Option<SocketAddr> {
        if text.is_null() {
            return None;
        }
        // SAFETY: the harness passes NUL-terminated text in its arena.
        let text = unsafe { core::ffi::CStr::from_ptr(text) }.to_str().ok()?;
        let a: SocketAddr = text.parse().ok()?;
        // safesock keeps an IPv4-mapped IPv6 address as IPv6, as std does.
        Some(a)
    }

    fn to_storage(a: SocketAddr) -> (libc::sockaddr_storage, socklen_t) {
        super::super::world::sockaddr_of(&a)
    }

    fn fail_closing(fd: c_int) -> c_int {
        let e = errno();
        // SAFETY: closing a descriptor this function created.
        unsafe { libc::close(fd) };
        set_errno(e);
        -1
    }

    fn socket_for(a: SocketAddr, ty: c_int) -> c_int {
        let family = if a.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        // SAFETY: integer arguments only.
        unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, 0) }
    }

    /// `ss_tcp_listen`: socket, SO_REUSEADDR, bind, listen.
    pub unsafe extern "C" fn tcp_listen(text: *const c_char, backlog: c_int) -> c_int {
        let Some(a) = parse(text) else {
            set_errno(libc::EINVAL);
            return -1;
        };
        let fd = socket_for(a, libc::SOCK_STREAM);
        if fd < 0 {
            return -1;
        }
        let one: c_int = 1;
        let (ss, len) = to_storage(a);
        // SAFETY: pointers to locals of the sizes given.
        let ok = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_REUSEADDR,
                (&raw const one).cast(),
                size_of::<c_int>() as socklen_t,
            ) == 0
                && libc::bind(fd, (&raw const ss).cast(), len) == 0
                && libc::listen(fd, backlog) == 0
        };
        if ok { fd } else { fail_closing(fd) }
    }

    /// `ss_udp_bind`: socket, bind.
    pub unsafe extern "C" fn udp_bind(text: *const c_char) -> c_int {
        let Some(a) = parse(text) else {
            set_errno(libc::EINVAL);
            return -1;
        };
        let fd = socket_for(a, libc::SOCK_DGRAM);
        if fd < 0 {
            return -1;
        }
        let (ss, len) = to_storage(a);
        // SAFETY: pointer to a local of the size given.
        if unsafe { libc::bind(fd, (&raw const ss).cast(), len) } == 0 {
            fd
        } else {
            fail_closing(fd)
        }
    }

    /// `ss_tcp_connect`: non-blocking connect, poll up to the timeout,
    /// SO_ERROR, then blocking again.
    pub unsafe extern "C" fn tcp_connect(text: *const c_char, timeout_ms: c_int) -> c_int {
        let Some(a) = parse(text) else {
            set_errno(libc::EINVAL);
            return -1;
        };
        let fd = socket_for(a, libc::SOCK_STREAM | libc::SOCK_NONBLOCK);
        if fd < 0 {
            return -1;
        }
        let (ss, len) = to_storage(a);
        // SAFETY: pointer to a local of the size given.
        if unsafe { libc::connect(fd, (&raw const ss).cast(), len) } != 0 {
            if errno() != libc::EINPROGRESS {
                return fail_closing(fd);
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one pollfd, a local.
            match unsafe { libc::poll(&mut pfd, 1, timeout_ms) } {
                0 => {
                    set_errno(libc::ETIMEDOUT);
                    return fail_closing(fd);
                }
                n if n < 0 => return fail_closing(fd),
                _ => {}
            }
            let mut err: c_int = 0;
            let mut elen = size_of::<c_int>() as socklen_t;
            // SAFETY: pointers to locals of the sizes given.
            unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&raw mut err).cast(), &mut elen) };
            if err != 0 {
                set_errno(err);
                return fail_closing(fd);
            }
        }
        // SAFETY: fcntl with integer arguments.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
        fd
    }
}
