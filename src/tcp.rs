//! TCP connection states, read from `TCP_INFO`.

use core::ffi::{CStr, c_int};
use core::mem::MaybeUninit;

use libc::socklen_t;

use crate::addr::{AddrCopy, Decoded};
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
///
/// Linux hands a connection that enters TIME_WAIT to a small separate
/// record and reports the descriptor's own socket as CLOSE from then on. So
/// for a socket that did take part in a connection and now reads CLOSE, the
/// kernel's socket table is asked whether a TIME_WAIT entry holds its local
/// address; if so, the state is TIME_WAIT.
pub fn state(fd: c_int) -> Result<c_int> {
    let info = tcp_info(fd)?;
    let state = c_int::from(info.tcpi_state);
    if state == CLOSE && info.tcpi_segs_in > 0 {
        // The lookup's own failures (no peer name, no netlink) are not the
        // caller's: errno stays as it was.
        let saved = Errno::last();
        let time_wait = connection_in_time_wait(fd);
        saved.set();
        if time_wait {
            return Ok(TIME_WAIT);
        }
    }
    Ok(state)
}

const TIME_WAIT: c_int = 6;
const CLOSE: c_int = 7;

fn tcp_info(fd: c_int) -> Result<libc::tcp_info> {
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
    // SAFETY: zero-initialised, and the kernel wrote a prefix of it.
    Ok(unsafe { info.assume_init() })
}

/// Whether a TIME_WAIT entry exists for the connection `fd` took part in:
/// its local address (`getsockname`) and its peer (`SO_PEERNAME`, which,
/// unlike `getpeername`, still answers for a closed socket), asked through
/// the NETLINK_SOCK_DIAG socket table. False when it cannot tell.
fn connection_in_time_wait(fd: c_int) -> bool {
    let Some(local) = inet_name(fd, Name::Local) else {
        return false;
    };
    // SO_PEERNAME wants exactly the address size of the family.
    let Some(peer) = inet_name(fd, Name::Peer(if local.is_ipv4() { 16 } else { 28 })) else {
        return false;
    };
    diag::time_wait_exists(local, peer).unwrap_or(false)
}

enum Name {
    Local,
    /// The peer, asked with this address length.
    Peer(socklen_t),
}

fn inet_name(fd: c_int, which: Name) -> Option<std::net::SocketAddr> {
    // SAFETY: sockaddr_storage is plain data.
    let mut storage: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
    let mut len = match which {
        Name::Local => size_of::<libc::sockaddr_storage>() as socklen_t,
        Name::Peer(len) => len,
    };
    let out = (&raw mut storage).cast();
    let got = match which {
        // SAFETY: both pointers refer to locals of the sizes given.
        Name::Local => unsafe { sys::getsockname(fd, out, &mut len) },
        // SAFETY: as above.
        Name::Peer(_) => unsafe { sys::getsockopt(fd, libc::SOL_SOCKET, libc::SO_PEERNAME, out.cast(), &mut len) },
    };
    got.ok()?;
    // SAFETY: the kernel filled `len` bytes of the local storage.
    match unsafe { AddrCopy::read((&raw const storage).cast(), len) }.decode() {
        Decoded::Inet(a) => Some(a),
        _ => None,
    }
}

/// A minimal client of the kernel's socket table (`sock_diag(7)`).
mod diag {
    use core::ffi::c_int;
    use std::net::SocketAddr;

    use crate::error::Result;
    use crate::sys;

    const SOCK_DIAG_BY_FAMILY: u16 = 20;

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct SockId {
        sport: [u8; 2],
        dport: [u8; 2],
        src: [u8; 16],
        dst: [u8; 16],
        interface: u32,
        cookie: [u32; 2],
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Request {
        family: u8,
        protocol: u8,
        ext: u8,
        pad: u8,
        states: u32,
        id: SockId,
    }

    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Reply {
        family: u8,
        state: u8,
        timer: u8,
        retrans: u8,
        id: SockId,
        expires: u32,
        rqueue: u32,
        wqueue: u32,
        uid: u32,
        inode: u32,
    }

    #[repr(C)]
    struct Message {
        header: libc::nlmsghdr,
        request: Request,
    }

    /// Closes the netlink socket when the query ends.
    struct Owned(c_int);

    impl Drop for Owned {
        fn drop(&mut self) {
            let _ = sys::close(self.0);
        }
    }

    /// Asks the kernel for the one TCP connection between `local` and `peer`
    /// (an exact lookup, whatever the number of sockets on the host) and tells
    /// whether it is in TIME_WAIT.
    pub fn time_wait_exists(local: SocketAddr, peer: SocketAddr) -> Result<bool> {
        let sock = Owned(sys::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )?);
        let family = if local.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
        let message = Message {
            header: libc::nlmsghdr {
                nlmsg_len: size_of::<Message>() as u32,
                nlmsg_type: SOCK_DIAG_BY_FAMILY,
                nlmsg_flags: libc::NLM_F_REQUEST as u16,
                nlmsg_seq: 1,
                nlmsg_pid: 0,
            },
            request: Request {
                family: family as u8,
                protocol: libc::IPPROTO_TCP as u8,
                states: !0,
                id: SockId {
                    sport: local.port().to_be_bytes(),
                    dport: peer.port().to_be_bytes(),
                    src: ip_bytes(local),
                    dst: ip_bytes(peer),
                    interface: 0,
                    cookie: NO_COOKIE,
                },
                ..Request::default()
            },
        };
        // SAFETY: `message` is a local of the size given; the kernel only reads it.
        unsafe { sys::send(sock.0, (&raw const message).cast(), size_of::<Message>(), 0) }?;
        let mut buf = [0u8; 1024];
        // SAFETY: `buf` is a local buffer of the length given.
        let n = unsafe { sys::recv(sock.0, buf.as_mut_ptr().cast(), buf.len(), 0) }?;
        Ok(reply_state(&buf[..n]) == Some(super::TIME_WAIT))
    }

    /// "Any cookie": the lookup goes by addresses alone.
    const NO_COOKIE: [u32; 2] = [!0, !0];

    /// The address as `inet_diag_sockid` holds it: IPv4 in the first 4 bytes.
    fn ip_bytes(addr: SocketAddr) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        match addr {
            SocketAddr::V4(v4) => bytes[..4].copy_from_slice(&v4.ip().octets()),
            SocketAddr::V6(v6) => bytes = v6.ip().octets(),
        }
        bytes
    }

    /// The state in the kernel's answer; `None` for an error (no such connection).
    fn reply_state(bytes: &[u8]) -> Option<c_int> {
        let header_len = size_of::<libc::nlmsghdr>();
        if bytes.len() < header_len + size_of::<Reply>() {
            return None;
        }
        // SAFETY: at least header_len bytes; read_unaligned copes with any alignment.
        let header: libc::nlmsghdr = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
        if header.nlmsg_type != SOCK_DIAG_BY_FAMILY || (header.nlmsg_len as usize) < header_len + size_of::<Reply>() {
            return None;
        }
        // SAFETY: a whole Reply follows the header (checked above).
        let reply: Reply = unsafe { core::ptr::read_unaligned(bytes[header_len..].as_ptr().cast()) };
        Some(c_int::from(reply.state))
    }
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

    #[test]
    fn side_that_closes_first_reports_time_wait() {
        use std::io::Read;
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::os::fd::AsRawFd;
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut b, _) = l.accept().unwrap();
        assert_eq!(state(a.as_raw_fd()), Ok(1));
        a.shutdown(Shutdown::Write).unwrap();
        let mut byte = [0u8; 1];
        assert_eq!(b.read(&mut byte).unwrap(), 0);
        assert_eq!(state(b.as_raw_fd()), Ok(8), "CLOSE_WAIT after reading end of file");
        b.shutdown(Shutdown::Write).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while state(a.as_raw_fd()) != Ok(TIME_WAIT) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(state(a.as_raw_fd()), Ok(TIME_WAIT));
        // A socket that never connected stays CLOSE.
        let fresh = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        drop(fresh);
        let unconnected = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        assert_eq!(state(unconnected.as_raw_fd()), Ok(CLOSE));
    }
}
