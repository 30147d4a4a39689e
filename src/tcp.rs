//! TCP connection states, read from `TCP_INFO`.

use core::ffi::{CStr, c_int};
use core::mem::MaybeUninit;

use libc::socklen_t;

use crate::error::{Errno, Result};
use crate::sys;

/// The states Linux reports in `tcpi_state`, in its numbering.
pub const STATE_NAMES: [&CStr; 13] = [
    c"UNKNOWN",
    c"ESTABLISHED",
    c"SYN_SENT",
    c"SYN_RECV",
    c"FIN_WAIT1",
    c"FIN_WAIT2",
    c"TIME_WAIT",
    c"CLOSE",
    c"CLOSE_WAIT",
    c"LAST_ACK",
    c"LISTEN",
    c"CLOSING",
    c"NEW_SYN_RECV",
];

/// The name of a state number (`"ESTABLISHED"`); `"UNKNOWN"` for any other value.
pub fn state_name(state: c_int) -> &'static CStr {
    usize::try_from(state)
        .ok()
        .filter(|&s| s >= 1)
        .and_then(|s| STATE_NAMES.get(s))
        .copied()
        .unwrap_or(c"UNKNOWN")
}

/// The TCP state of `fd` from `TCP_INFO`: `ENOPROTOOPT`/`EOPNOTSUPP` for a socket
/// that is not TCP, `ENOTSOCK`/`EBADF` as the kernel says.
pub fn state(fd: c_int) -> Result<c_int> {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = size_of::<libc::tcp_info>() as socklen_t;
    // SAFETY: both pointers refer to locals of the sizes given.
    unsafe {
        sys::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    }?;
    if len < 1 {
        return Err(Errno(libc::EINVAL));
    }
    // SAFETY: zero-initialised, and the kernel wrote at least the first byte (tcpi_state).
    Ok(c_int::from(unsafe { info.assume_init() }.tcpi_state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_kernel_numbering() {
        assert_eq!(state_name(1), c"ESTABLISHED");
        assert_eq!(state_name(6), c"TIME_WAIT");
        assert_eq!(state_name(10), c"LISTEN");
        assert_eq!(state_name(0), c"UNKNOWN");
        assert_eq!(state_name(13), c"UNKNOWN");
        assert_eq!(state_name(-1), c"UNKNOWN");
    }

    #[test]
    fn listener_reports_listen_and_udp_reports_no_state() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(state(l.as_raw_fd()), Ok(10));
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(state(u.as_raw_fd()).is_err());
        assert_eq!(state(-1), Err(Errno(libc::EBADF)));
    }
}
