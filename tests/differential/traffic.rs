//! Real traffic through the `ss_` functions only: TCP over 127.0.0.1 and
//! ::1, UDP, and AF_UNIX stream/dgram/seqpacket (socketpairs, paths and the
//! abstract namespace), checking that bytes arrive intact, that the addresses
//! accept/recvfrom/getsockname/getpeername report are right, and that
//! `SCM_RIGHTS` passes descriptors that arrive with `FD_CLOEXEC`.

use std::time::Duration;

use libc::{AF_UNIX, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, c_int, iovec, socklen_t};
use safesock::ffi::*;

use crate::common::{
    SsFd, TempDir, ignore_sigpipe, is_cloexec, last_error, recv_rights, send_rights, try_set_timeouts,
};
use crate::fixtures::{Family, RawAddr, escape};
use crate::transfer::empty_msghdr;

/// Panics with safesock's own explanation if an `ss_` call failed.
#[track_caller]
fn check<T: PartialOrd + Default + std::fmt::Display>(ret: T, what: &str) -> T {
    if ret < T::default() {
        panic!("{what} failed: {}", last_error());
    }
    ret
}

/// The ways these tests make and use descriptors an `ss_` call handed out
/// (the [`SsFd`] guard `ss_close`s them on drop, which must succeed).
impl SsFd {
    /// Takes a descriptor an `ss_` call returned, which must have `FD_CLOEXEC`.
    #[track_caller]
    fn new(fd: c_int, what: &str) -> SsFd {
        let fd = SsFd(check(fd, what));
        assert!(is_cloexec(fd.0), "{what}: FD_CLOEXEC not set");
        fd
    }

    fn socket(domain: c_int, ty: c_int) -> SsFd {
        let fd = SsFd::new(ss_socket(domain, ty, 0), "ss_socket");
        if try_set_timeouts(ss_setsockopt, fd.0, Duration::from_secs(10)).is_err() {
            panic!("ss_setsockopt(SO_*TIMEO) failed: {}", last_error());
        }
        fd
    }

    fn pair(ty: c_int) -> (SsFd, SsFd) {
        let mut sv = [-1; 2];
        // SAFETY: sv is a live two-element array.
        check(
            unsafe { ss_socketpair(AF_UNIX, ty, 0, sv.as_mut_ptr()) },
            "ss_socketpair",
        );
        (
            SsFd::new(sv[0], "socketpair sv[0]"),
            SsFd::new(sv[1], "socketpair sv[1]"),
        )
    }

    fn bind(&self, addr: &RawAddr) {
        // SAFETY: addr holds addr.len valid bytes.
        check(unsafe { ss_bind(self.0, addr.ptr(), addr.len) }, "ss_bind");
    }

    fn connect(&self, addr: &RawAddr) {
        // SAFETY: addr holds addr.len valid bytes.
        check(unsafe { ss_connect(self.0, addr.ptr(), addr.len) }, "ss_connect");
    }

    fn accept(&self) -> (SsFd, RawAddr) {
        let mut peer = RawAddr::pattern();
        let mut len: socklen_t = 128;
        // SAFETY: peer is a 256-byte buffer and len says 128.
        let fd = unsafe { ss_accept(self.0, peer.mut_ptr(), &mut len) };
        peer.len = len;
        (SsFd::new(fd, "ss_accept"), peer)
    }

    fn name(&self, peer: bool) -> RawAddr {
        let mut addr = RawAddr::pattern();
        let mut len: socklen_t = 128;
        // SAFETY: addr is a 256-byte buffer and len says 128.
        let rc = unsafe {
            if peer {
                ss_getpeername(self.0, addr.mut_ptr(), &mut len)
            } else {
                ss_getsockname(self.0, addr.mut_ptr(), &mut len)
            }
        };
        check(rc, "ss_get*name");
        addr.len = len;
        addr
    }
}

/// The meaningful bytes of an address.
fn addr_bytes(a: &RawAddr) -> &[u8] {
    &a.bytes[..a.len as usize]
}

/// Deterministic test data.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Sends all of `data` on `fd`, rotating through the five sending functions.
fn send_all_rotating(fd: c_int, data: &[u8]) {
    let mut sent = 0;
    let mut turn = 0usize;
    while sent < data.len() {
        let chunk = &data[sent..data.len().min(sent + 1000 + 7 * turn % 5000)];
        let ptr: *const libc::c_void = chunk.as_ptr().cast();
        let half = chunk.len() / 2;
        let iov = [
            iovec {
                iov_base: ptr.cast_mut(),
                iov_len: half,
            },
            iovec {
                iov_base: chunk[half..].as_ptr().cast_mut().cast(),
                iov_len: chunk.len() - half,
            },
        ];
        let mut msg = empty_msghdr();
        msg.msg_iov = iov.as_ptr().cast_mut();
        msg.msg_iovlen = 2;
        // SAFETY: chunk, iov and msg are live and name only chunk's bytes.
        let n = unsafe {
            match turn % 5 {
                0 => ss_send(fd, ptr, chunk.len(), 0),
                1 => ss_write(fd, ptr, chunk.len()),
                2 => ss_writev(fd, iov.as_ptr(), 2),
                3 => ss_sendmsg(fd, &msg, 0),
                _ => ss_sendto(fd, ptr, chunk.len(), 0, std::ptr::null(), 0),
            }
        };
        sent += usize::try_from(check(n, "sending")).expect("non-negative");
        turn += 1;
    }
}

/// Receives until end of stream, rotating through the five receiving functions.
fn recv_to_end_rotating(fd: c_int, limit: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    for turn in 0usize.. {
        assert!(got.len() <= limit, "more data than was sent");
        let (first, second) = buf.split_at_mut(1500);
        let iov = [
            iovec {
                iov_base: first.as_mut_ptr().cast(),
                iov_len: first.len(),
            },
            iovec {
                iov_base: second.as_mut_ptr().cast(),
                iov_len: second.len(),
            },
        ];
        let mut msg = empty_msghdr();
        msg.msg_iov = iov.as_ptr().cast_mut();
        msg.msg_iovlen = 2;
        let ptr = iov[0].iov_base;
        // SAFETY: buf, iov and msg are live and name only buf's bytes.
        let n = unsafe {
            match turn % 5 {
                0 => ss_recv(fd, ptr, 4096, 0),
                1 => ss_read(fd, ptr, 4096),
                2 => ss_readv(fd, iov.as_ptr(), 2),
                3 => ss_recvmsg(fd, &mut msg, 0),
                _ => ss_recvfrom(fd, ptr, 4096, 0, std::ptr::null_mut(), std::ptr::null_mut()),
            }
        };
        let n = usize::try_from(check(n, "receiving")).expect("non-negative");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

/// Moves 1 MiB each way over a connected stream pair and checks it, then
/// checks end of stream after `ss_shutdown(SHUT_WR)`.
fn exchange_stream(a: &SsFd, b: &SsFd) {
    let forth = pattern(1 << 20, 1);
    let back = pattern((1 << 20) + 17, 2);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            send_all_rotating(a.0, &forth);
            check(ss_shutdown(a.0, libc::SHUT_WR), "ss_shutdown");
        });
        let reader = s.spawn(|| recv_to_end_rotating(b.0, forth.len()));
        let echo_writer = s.spawn(|| {
            send_all_rotating(b.0, &back);
            check(ss_shutdown(b.0, libc::SHUT_WR), "ss_shutdown");
        });
        let echo_reader = s.spawn(|| recv_to_end_rotating(a.0, back.len()));
        writer.join().expect("writer");
        echo_writer.join().expect("echo writer");
        assert!(reader.join().expect("reader") == forth, "stream data arrived changed");
        assert!(
            echo_reader.join().expect("echo reader") == back,
            "stream data arrived changed"
        );
    });
}

#[test]
fn tcp_over_loopback_v4_and_v6_carries_bytes_and_reports_addresses() {
    ignore_sigpipe();
    for family in [Family::V4, Family::V6] {
        let listener = SsFd::socket(family.domain(), SOCK_STREAM);
        let any_port = match family {
            Family::V4 => RawAddr::v4([127, 0, 0, 1], 0),
            _ => RawAddr::v6(std::net::Ipv6Addr::LOCALHOST, 0),
        };
        listener.bind(&any_port);
        check(ss_listen(listener.0, 8), "ss_listen");
        let listening = listener.name(false);
        assert_ne!(listening.port(), 0, "port 0 was replaced by an ephemeral port");
        assert_eq!(listening.len, any_port.len);
        let mut without_port = listening;
        without_port.bytes[2..4].fill(0);
        assert_eq!(
            addr_bytes(&without_port),
            addr_bytes(&any_port),
            "bound to the loopback address"
        );

        let client = SsFd::socket(family.domain(), SOCK_STREAM);
        client.connect(&listening);
        let (server, peer) = listener.accept();
        assert_eq!(
            addr_bytes(&peer),
            addr_bytes(&client.name(false)),
            "accept reports the client"
        );
        assert_eq!(
            addr_bytes(&client.name(true)),
            addr_bytes(&listening),
            "client's peer is the listener"
        );
        assert_eq!(
            addr_bytes(&server.name(false)),
            addr_bytes(&listening),
            "server side has the listener's address"
        );
        assert_eq!(addr_bytes(&server.name(true)), addr_bytes(&peer));
        exchange_stream(&client, &server);
    }
}

/// Sends datagrams of several sizes (including empty) from `sender` to
/// `receiver` with `ss_sendto`; receives them with `ss_recvfrom` and
/// `ss_recvmsg`, checking the data and the reported source.
fn exchange_datagrams(sender: &SsFd, receiver: &SsFd, to: &RawAddr) {
    let source = sender.name(false);
    for (i, size) in [0usize, 1, 100, 1400, 8000].into_iter().enumerate() {
        let data = pattern(size, u8::try_from(i).expect("small"));
        // SAFETY: data is live; to holds to.len valid bytes.
        let n = unsafe { ss_sendto(sender.0, data.as_ptr().cast(), data.len(), 0, to.ptr(), to.len) };
        assert_eq!(usize::try_from(check(n, "ss_sendto")), Ok(size));
        let mut buf = vec![0u8; 9000];
        let mut from = RawAddr::pattern();
        from.len = 128;
        let n = if i % 2 == 0 {
            // SAFETY: buf and from are live buffers of the sizes given.
            unsafe {
                ss_recvfrom(
                    receiver.0,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    from.mut_ptr(),
                    &mut from.len,
                )
            }
        } else {
            let mut iov = iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            };
            let mut msg = empty_msghdr();
            msg.msg_name = from.mut_ptr().cast();
            msg.msg_namelen = 128;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            // SAFETY: msg names live buffers of the sizes given.
            let n = unsafe { ss_recvmsg(receiver.0, &mut msg, 0) };
            from.len = msg.msg_namelen;
            assert_eq!(
                msg.msg_flags, 0,
                "msg_flags of an untruncated datagram (libc reports 0)"
            );
            n
        };
        let n = usize::try_from(check(n, "receiving a datagram")).expect("non-negative");
        assert!(
            buf[..n] == data[..],
            "datagram {i} arrived changed: {}",
            escape(&buf[..n.min(32)])
        );
        assert_eq!(addr_bytes(&from), addr_bytes(&source), "the source of datagram {i}");
    }
}

#[test]
fn udp_over_loopback_v4_and_v6_carries_datagrams_and_sources() {
    ignore_sigpipe();
    for family in [Family::V4, Family::V6] {
        let any_port = match family {
            Family::V4 => RawAddr::v4([127, 0, 0, 1], 0),
            _ => RawAddr::v6(std::net::Ipv6Addr::LOCALHOST, 0),
        };
        let receiver = SsFd::socket(family.domain(), SOCK_DGRAM);
        receiver.bind(&any_port);
        let sender = SsFd::socket(family.domain(), SOCK_DGRAM);
        sender.bind(&any_port);
        let to = receiver.name(false);
        exchange_datagrams(&sender, &receiver, &to);

        // Connected: ss_send / ss_recv, and getpeername reports the peer.
        sender.connect(&to);
        assert_eq!(addr_bytes(&sender.name(true)), addr_bytes(&to));
        // SAFETY: the payload is a static buffer.
        let n = unsafe { ss_send(sender.0, b"connected".as_ptr().cast(), 9, 0) };
        assert_eq!(check(n, "ss_send"), 9);
        let mut buf = [0u8; 16];
        // SAFETY: buf is a live 16-byte buffer.
        let n = unsafe { ss_recv(receiver.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        assert_eq!(&buf[..usize::try_from(check(n, "ss_recv")).expect("n")], b"connected");
    }
}

#[test]
fn unix_socketpairs_of_every_type_carry_data_and_boundaries() {
    ignore_sigpipe();
    for ty in [SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET] {
        let (a, b) = SsFd::pair(ty);
        for end in [&a, &b] {
            for peer in [false, true] {
                let name = end.name(peer);
                assert_eq!(
                    name.len as usize,
                    size_of::<libc::sa_family_t>(),
                    "unnamed AF_UNIX address"
                );
                assert_eq!(c_int::from(u16::from_ne_bytes([name.bytes[0], name.bytes[1]])), AF_UNIX);
            }
        }
        if ty == SOCK_STREAM {
            exchange_stream(&a, &b);
            continue;
        }
        // Record types keep message boundaries, including an empty message.
        let messages: Vec<Vec<u8>> = [3usize, 0, 1000, 1].iter().map(|&n| pattern(n, 9)).collect();
        for m in &messages {
            // SAFETY: m is a live buffer.
            let n = unsafe { ss_send(a.0, m.as_ptr().cast(), m.len(), 0) };
            assert_eq!(usize::try_from(check(n, "ss_send")), Ok(m.len()));
        }
        for m in &messages {
            let mut buf = [0u8; 2000];
            // SAFETY: buf is a live buffer.
            let n = unsafe { ss_recv(b.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
            assert!(
                buf[..usize::try_from(check(n, "ss_recv")).expect("n")] == m[..],
                "message boundaries"
            );
        }
    }
}

/// A fresh AF_UNIX address of `family` (a path in a fresh directory, or
/// an abstract name), and the directory to remove afterwards.
fn unix_address(family: Family, tag: &str) -> (RawAddr, Option<TempDir>) {
    match family {
        Family::UnixPath => {
            let dir = TempDir::new(&format!("traffic-{tag}"));
            let path = dir.path().join("sock");
            use std::os::unix::ffi::OsStrExt;
            (RawAddr::unix(path.as_os_str().as_bytes(), 1), Some(dir))
        }
        _ => {
            let unique = format!("ssdiff-traffic-{}-{tag}", std::process::id());
            (RawAddr::unix(format!("\0{unique}").as_bytes(), 0), None)
        }
    }
}

#[test]
fn unix_sockets_bound_to_paths_and_abstract_names_report_addresses() {
    ignore_sigpipe();
    for family in [Family::UnixPath, Family::UnixAbstract] {
        for ty in [SOCK_STREAM, SOCK_SEQPACKET] {
            let (addr, _dir) = unix_address(family, &format!("listen-{ty}-{family:?}"));
            {
                let listener = SsFd::socket(AF_UNIX, ty);
                listener.bind(&addr);
                check(ss_listen(listener.0, 4), "ss_listen");
                assert_eq!(
                    addr_bytes(&listener.name(false)),
                    addr_bytes(&addr),
                    "getsockname of the listener"
                );
                let client = SsFd::socket(AF_UNIX, ty);
                client.connect(&addr);
                let (server, peer) = listener.accept();
                assert_eq!(
                    peer.len as usize,
                    size_of::<libc::sa_family_t>(),
                    "unbound client: unnamed"
                );
                assert_eq!(
                    addr_bytes(&client.name(true)),
                    addr_bytes(&addr),
                    "getpeername of the client"
                );
                assert_eq!(
                    addr_bytes(&server.name(false)),
                    addr_bytes(&addr),
                    "getsockname of the server side"
                );
                if ty == SOCK_STREAM {
                    exchange_stream(&client, &server);
                } else {
                    // SAFETY: the payload is a static buffer.
                    let n = unsafe { ss_write(client.0, b"record".as_ptr().cast(), 6) };
                    assert_eq!(check(n, "ss_write"), 6);
                    let mut buf = [0u8; 16];
                    // SAFETY: buf is a live buffer.
                    let n = unsafe { ss_read(server.0, buf.as_mut_ptr().cast(), buf.len()) };
                    assert_eq!(&buf[..usize::try_from(check(n, "ss_read")).expect("n")], b"record");
                }
            }
        }
        // Datagrams between two bound sockets: the source is the sender's name.
        let (to, _dir_to) = unix_address(family, &format!("dgram-receiver-{family:?}"));
        let (from, _dir_from) = unix_address(family, &format!("dgram-sender-{family:?}"));
        let receiver = SsFd::socket(AF_UNIX, SOCK_DGRAM);
        receiver.bind(&to);
        let sender = SsFd::socket(AF_UNIX, SOCK_DGRAM);
        sender.bind(&from);
        assert_eq!(addr_bytes(&sender.name(false)), addr_bytes(&from));
        exchange_datagrams(&sender, &receiver, &to);
    }
}

#[test]
fn scm_rights_through_ss_sendmsg_and_ss_recvmsg_arrive_close_on_exec() {
    ignore_sigpipe();
    let (a, b) = SsFd::pair(SOCK_STREAM);
    let mut pipe_ends = [-1; 2];
    // SAFETY: pipe_ends is a live two-element array.
    assert_eq!(unsafe { libc::pipe(pipe_ends.as_mut_ptr()) }, 0);
    let udp = SsFd::socket(libc::AF_INET, SOCK_DGRAM);

    // Send the pipe's write end and a UDP socket, with one byte of data.
    let sent_fds = [pipe_ends[1], udp.0];
    let fds_len = u32::try_from(size_of_val(&sent_fds)).expect("small");
    let n = send_rights(ss_sendmsg, a.0, b'!', &sent_fds);
    assert_eq!(check(n, "ss_sendmsg"), 1);

    // Receive them.
    let got = recv_rights(ss_recvmsg, b.0);
    assert_eq!(check(got.ret, "ss_recvmsg"), 1);
    assert_eq!(got.byte, b'!');
    assert_eq!(got.flags & libc::MSG_CTRUNC, 0);
    let (level, ty, len) = got.header.expect("a control message arrived");
    assert_eq!((level, ty), (libc::SOL_SOCKET, libc::SCM_RIGHTS));
    // SAFETY: CMSG_LEN is a pure size computation.
    assert_eq!(len, unsafe { libc::CMSG_LEN(fds_len) } as usize);
    assert_eq!(got.fds.len(), 2, "two descriptors arrived");
    let received: Vec<SsFd> = got.fds.iter().map(|&fd| SsFd::new(fd, "received fd")).collect();

    // The received pipe end writes into the same pipe.
    // SAFETY: the payload is a static buffer.
    let n = unsafe { ss_write(received[0].0, b"through".as_ptr().cast(), 7) };
    assert_eq!(check(n, "ss_write on the received pipe end"), 7);
    let mut buf = [0u8; 16];
    // SAFETY: buf is a live buffer; the pipe holds 7 bytes.
    let n = unsafe { libc::read(pipe_ends[0], buf.as_mut_ptr().cast(), buf.len()) };
    assert_eq!(&buf[..usize::try_from(n).expect("read")], b"through");

    // The received socket is the UDP socket.
    let mut ty: c_int = 0;
    let mut len = size_of::<c_int>() as socklen_t;
    // SAFETY: ty and len are live locals of the sizes given.
    let rc = unsafe {
        ss_getsockopt(
            received[1].0,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&raw mut ty).cast(),
            &mut len,
        )
    };
    check(rc, "ss_getsockopt");
    assert_eq!(ty, SOCK_DGRAM);
    assert_eq!(addr_bytes(&received[1].name(false)), addr_bytes(&udp.name(false)));

    for fd in pipe_ends {
        // SAFETY: the pipe was made with plain libc and is owned here.
        assert_eq!(unsafe { libc::close(fd) }, 0);
    }
}
