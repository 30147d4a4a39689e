//! Moving bytes: the five receiving and the five sending mirror functions
//! are each a way to move one buffer, so the socket states worth checking
//! (data queued, truncation, end of stream, a gone peer, an unconnected or
//! listening socket, a full buffer, a reset connection, bad buffers and
//! lengths) are written once here and run through every one of them.

use libc::{AF_UNIX, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_SEQPACKET, SOCK_STREAM, c_int, c_void, iovec, msghdr};

use crate::common::{Wild, bytes_before_fault, errno, fill_send_buffer};
use crate::fixtures::{Family, PATTERN, escape, inject, wait_for, wild_cases};
use crate::harness::{Api, Case, Probe};

/// The bytes the cases send.
pub const PAYLOAD: &[u8] = b"0123456789";

/// `MAX_RW_COUNT`: the most one read or write moves (`INT_MAX` rounded down to a page).
pub const MAX_RW_COUNT: usize = (i32::MAX as usize) & !4095;

/// A receiving function, called with one buffer.
#[derive(Clone, Copy)]
pub enum RecvOp {
    Read,
    Recv(c_int),
    Readv,
    Recvmsg(c_int),
    Recvfrom(c_int),
}

/// An all-zero `msghdr` (what C's `= {0}` gives).
pub fn empty_msghdr() -> msghdr {
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    unsafe { std::mem::zeroed() }
}

/// A `msghdr` over the one buffer `iov` names, and nothing else.
fn msghdr_over(iov: &mut iovec) -> msghdr {
    let mut msg = empty_msghdr();
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg
}

impl RecvOp {
    /// Receives into `buf[..len]` through `api`.
    ///
    /// # Safety
    ///
    /// `buf` must be writable for as many bytes as can arrive (at most
    /// `len`), or a deliberately invalid pointer only the kernel dereferences.
    pub unsafe fn call(self, api: &Api, fd: c_int, buf: *mut c_void, len: usize) -> isize {
        let mut iov = iovec {
            iov_base: buf,
            iov_len: len,
        };
        let mut msg = msghdr_over(&mut iov);
        // SAFETY: iov and msg are live locals naming `buf`, which this
        // function's contract covers; NULL address pointers are allowed.
        unsafe {
            match self {
                RecvOp::Read => (api.read)(fd, buf, len),
                RecvOp::Recv(flags) => (api.recv)(fd, buf, len, flags),
                RecvOp::Readv => (api.readv)(fd, &iov, 1),
                RecvOp::Recvmsg(flags) => (api.recvmsg)(fd, &mut msg, flags),
                RecvOp::Recvfrom(flags) => {
                    (api.recvfrom)(fd, buf, len, flags, std::ptr::null_mut(), std::ptr::null_mut())
                }
            }
        }
    }
}

/// A sending function, called with one buffer.
#[derive(Clone, Copy)]
pub enum SendOp {
    Write,
    Send(c_int),
    Writev,
    Sendmsg(c_int),
    Sendto(c_int),
}

impl SendOp {
    /// Sends `buf[..len]` through `api`.
    ///
    /// # Safety
    ///
    /// `buf` must be readable for `len` bytes, or deliberately invalid (the
    /// kernel alone dereferences it and stops at the first fault).
    pub unsafe fn call(self, api: &Api, fd: c_int, buf: *const c_void, len: usize) -> isize {
        let mut iov = iovec {
            iov_base: buf.cast_mut(),
            iov_len: len,
        };
        let msg = msghdr_over(&mut iov);
        // SAFETY: iov and msg are live locals naming `buf`, which this
        // function's contract covers; a NULL destination is allowed.
        unsafe {
            match self {
                SendOp::Write => (api.write)(fd, buf, len),
                SendOp::Send(flags) => (api.send)(fd, buf, len, flags),
                SendOp::Writev => (api.writev)(fd, &iov, 1),
                SendOp::Sendmsg(flags) => (api.sendmsg)(fd, &msg, flags),
                SendOp::Sendto(flags) => (api.sendto)(fd, buf, len, flags, std::ptr::null(), 0),
            }
        }
    }
}

/// Receives into a pattern-filled buffer of `cap` bytes passing `len`, and
/// records what landed in the buffer and what is still queued.
pub fn receive(p: &mut Probe, op: RecvOp, fd: c_int, cap: usize, len: usize) {
    let mut buf = vec![PATTERN; cap];
    // SAFETY: buf has cap bytes; every case queues at most cap bytes, so the
    // kernel never writes past it even when len is larger.
    p.call(fd, |api| unsafe { op.call(api, fd, buf.as_mut_ptr().cast(), len) });
    let used = buf.iter().rposition(|&b| b != PATTERN).map_or(0, |i| i + 1);
    p.out("buffer", escape(&buf[..used]));
    p.out_queued("queued after", fd);
}

/// A reader with [`PAYLOAD`] queued on a fresh AF_UNIX pair of `ty`.
pub fn unix_with_payload(p: &mut Probe, ty: c_int) -> c_int {
    let (reader, writer) = p.pair(ty);
    inject(writer, PAYLOAD);
    reader
}

/// A TCP client with [`PAYLOAD`] arrived from its peer.
pub fn tcp_with_payload(p: &mut Probe) -> c_int {
    let c = p.tcp_conn();
    inject(c.server, PAYLOAD);
    assert!(wait_for(c.client, libc::POLLIN), "payload arrival");
    c.client
}

/// A connected UDP socket with one [`PAYLOAD`] datagram arrived.
pub fn udp_with_payload(p: &mut Probe) -> c_int {
    let (a, b) = p.udp_conn();
    inject(b, PAYLOAD);
    assert!(wait_for(a, libc::POLLIN), "datagram arrival");
    a
}

/// A TCP client whose peer reset the connection (SO_LINGER 0, close); the
/// reset has arrived (the client reports an error).
pub fn tcp_reset_by_peer(p: &mut Probe) -> c_int {
    let c = p.tcp_conn();
    crate::common::linger_zero(crate::common::Api::Libc, c.server);
    p.close_now(c.server);
    assert!(wait_for(c.client, libc::POLLERR), "the reset arrived");
    c.client
}

/// Fills a non-blocking pipe until it would block.
fn fill_pipe(fd: c_int) {
    let chunk = vec![b'f'; 65536];
    for _ in 0..1_000 {
        // SAFETY: chunk is a live buffer of chunk.len() bytes.
        if unsafe { libc::write(fd, chunk.as_ptr().cast(), chunk.len()) } < 0 {
            assert_eq!(errno(), libc::EAGAIN, "filling a pipe");
            return;
        }
    }
    panic!("the pipe never filled up");
}

type RecvState = fn(&mut Probe, RecvOp);

/// The receive states every receiving function is tried in.
const RECV_STATES: &[(&str, RecvState)] = &[
    ("AF_UNIX stream, 10 bytes queued, buffer 64", |p, op| {
        let fd = unix_with_payload(p, SOCK_STREAM);
        receive(p, op, fd, 64, 64);
    }),
    ("AF_UNIX stream, 10 bytes queued, buffer 4", |p, op| {
        let fd = unix_with_payload(p, SOCK_STREAM);
        receive(p, op, fd, 4, 4);
    }),
    ("TCP, 10 bytes arrived", |p, op| {
        let fd = tcp_with_payload(p);
        receive(p, op, fd, 64, 64);
    }),
    ("UDP, 10-byte datagram into 4 bytes", |p, op| {
        let fd = udp_with_payload(p);
        receive(p, op, fd, 4, 4);
    }),
    ("AF_UNIX seqpacket, 10-byte record into 4 bytes", |p, op| {
        let fd = unix_with_payload(p, SOCK_SEQPACKET);
        receive(p, op, fd, 4, 4);
    }),
    ("AF_UNIX dgram, zero-length datagram", |p, op| {
        let (reader, writer) = p.pair(SOCK_DGRAM);
        inject(writer, b"");
        receive(p, op, reader, 64, 64);
    }),
    ("AF_UNIX stream, peer closed, nothing queued", |p, op| {
        let (reader, writer) = p.pair(SOCK_STREAM);
        p.close_now(writer);
        receive(p, op, reader, 64, 64);
    }),
    ("AF_UNIX stream, peer closed, 10 bytes queued", |p, op| {
        let (reader, writer) = p.pair(SOCK_STREAM);
        inject(writer, PAYLOAD);
        p.close_now(writer);
        receive(p, op, reader, 64, 64);
    }),
    ("AF_UNIX seqpacket, peer closed", |p, op| {
        let (reader, writer) = p.pair(SOCK_SEQPACKET);
        p.close_now(writer);
        receive(p, op, reader, 64, 64);
    }),
    ("after own shutdown(SHUT_RD)", |p, op| {
        let fd = unix_with_payload(p, SOCK_STREAM);
        // SAFETY: shutdown takes no pointer.
        assert_eq!(unsafe { libc::shutdown(fd, libc::SHUT_RD) }, 0);
        receive(p, op, fd, 64, 64);
    }),
    ("non-blocking, nothing queued", |p, op| {
        let (reader, _) = p.pair(SOCK_STREAM | SOCK_NONBLOCK);
        receive(p, op, reader, 64, 64);
    }),
    ("unconnected TCP", |p, op| {
        let fd = p.tcp4();
        receive(p, op, fd, 64, 64);
    }),
    ("listening TCP", |p, op| {
        let (fd, _) = p.listener(Family::V4, SOCK_STREAM);
        receive(p, op, fd, 64, 64);
    }),
    ("unconnected AF_UNIX stream", |p, op| {
        let fd = p.sock(AF_UNIX, SOCK_STREAM);
        receive(p, op, fd, 64, 64);
    }),
    ("TCP reset by peer", |p, op| {
        let fd = tcp_reset_by_peer(p);
        receive(p, op, fd, 64, 64);
        p.out_sockopt("SO_ERROR after", fd, libc::SOL_SOCKET, libc::SO_ERROR);
    }),
    ("length 0 into NULL, 10 bytes queued", |p, op| {
        let fd = unix_with_payload(p, SOCK_STREAM);
        // SAFETY: a NULL buffer with length 0 is never written.
        p.call(fd, |api| unsafe { op.call(api, fd, std::ptr::null_mut(), 0) });
        p.out_queued("queued after", fd);
    }),
    ("NULL buffer, length 16, non-blocking, nothing queued", |p, op| {
        let (reader, _) = p.pair(SOCK_STREAM | SOCK_NONBLOCK);
        // SAFETY: nothing is queued, and a NULL buffer only reaches the kernel.
        p.call(reader, |api| unsafe { op.call(api, reader, std::ptr::null_mut(), 16) });
    }),
    ("64-byte buffer, length SIZE_MAX, 10 bytes queued", |p, op| {
        let fd = unix_with_payload(p, SOCK_STREAM);
        receive(p, op, fd, 64, usize::MAX);
    }),
    ("64-byte buffer, length SSIZE_MAX, 10 bytes queued", |p, op| {
        let fd = unix_with_payload(p, SOCK_STREAM);
        receive(p, op, fd, 64, isize::MAX as usize);
    }),
    ("64-byte buffer, length MAX_RW_COUNT + 1, 10 bytes queued", |p, op| {
        let fd = unix_with_payload(p, SOCK_STREAM);
        receive(p, op, fd, 64, MAX_RW_COUNT + 1);
    }),
];

/// Every receive state, plus a wild buffer of each kind with data queued,
/// as cases for `op`.
pub fn recv_cases(op: RecvOp) -> Vec<Case> {
    let mut cases: Vec<Case> = RECV_STATES
        .iter()
        .map(|&(name, state)| Case::new(name, move |p| state(p, op)))
        .collect();
    cases.extend(wild_cases(
        "buffer, 10 bytes queued",
        &Wild::FOR_OUTPUT,
        move |p, wild| {
            let fd = unix_with_payload(p, SOCK_STREAM);
            // SAFETY: the wild pointer only reaches the kernel, which faults on it.
            p.call(fd, |api| unsafe { op.call(api, fd, wild.ptr(), 16) });
            p.out_queued("queued after", fd);
        },
    ));
    cases
}

/// Sends `len` bytes from `buf` on `fd` and records what reached `peer`
/// (when there is one) and the socket's pending error.
pub fn send_from(p: &mut Probe, op: SendOp, fd: c_int, peer: Option<c_int>, buf: *const c_void, len: usize) {
    // SAFETY: each caller passes a buffer readable for len bytes, or one
    // that faults where the kernel alone reads it.
    let ret = p.call(fd, |api| unsafe { op.call(api, fd, buf, len) });
    if let Some(peer) = peer {
        p.out_arrived_from("peer received", fd, peer, ret);
    }
    if crate::harness::is_socket(fd) {
        p.out_sockopt("SO_ERROR after", fd, libc::SOL_SOCKET, libc::SO_ERROR);
    } else if is_regular_file(fd) {
        p.out_file("file contents after", fd);
        p.out_offset("file offset after", fd);
    }
}

fn is_regular_file(fd: c_int) -> bool {
    // SAFETY: stat is plain data; fstat fills it or fails without touching it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer refers to the local above.
    unsafe { libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG }
}

/// Sends [`PAYLOAD`] on `fd`.
pub fn send_payload(p: &mut Probe, op: SendOp, fd: c_int, peer: Option<c_int>) {
    send_from(p, op, fd, peer, PAYLOAD.as_ptr().cast(), PAYLOAD.len());
}

fn unix_pair_of(p: &mut Probe, ty: c_int) -> (c_int, Option<c_int>) {
    let (a, b) = p.pair(ty);
    (a, Some(b))
}

fn tcp_to_peer(p: &mut Probe) -> (c_int, Option<c_int>) {
    let c = p.tcp_conn();
    (c.client, Some(c.server))
}

/// A TCP client shut down for writing.
fn tcp_shut_wr(p: &mut Probe) -> (c_int, Option<c_int>) {
    let c = p.tcp_conn();
    // SAFETY: shutdown takes no pointer.
    assert_eq!(unsafe { libc::shutdown(c.client, libc::SHUT_WR) }, 0);
    (c.client, Some(c.server))
}

/// An AF_UNIX pair of `ty` whose peer is closed.
fn unix_peer_closed(p: &mut Probe, ty: c_int) -> (c_int, Option<c_int>) {
    let (a, b) = p.pair(ty);
    p.close_now(b);
    (a, None)
}

/// Replaces the open file behind `fd` (a number this side handed out) with
/// `with`, the way a plain `close` + `socket`/`pipe` reusing the number would.
fn replace_behind_safesock(fd: c_int, with: c_int) {
    // SAFETY: fd and with are both owned by the calling probe; dup2
    // atomically makes fd refer to with's open file.
    assert_eq!(unsafe { libc::dup2(with, fd) }, fd);
}

type SendState = fn(&mut Probe) -> (c_int, Option<c_int>);

/// The send states every sending function is tried in: (name, prepare),
/// where prepare returns the socket to send on and its peer, if any.
const SEND_STATES: &[(&str, SendState)] = &[
    ("AF_UNIX stream pair", |p| unix_pair_of(p, SOCK_STREAM)),
    ("AF_UNIX seqpacket pair", |p| unix_pair_of(p, SOCK_SEQPACKET)),
    ("AF_UNIX dgram pair", |p| unix_pair_of(p, SOCK_DGRAM)),
    ("TCP connection", tcp_to_peer),
    ("connected UDP", |p| {
        let (a, b) = p.udp_conn();
        (a, Some(b))
    }),
    ("AF_UNIX stream, peer closed", |p| unix_peer_closed(p, SOCK_STREAM)),
    ("AF_UNIX seqpacket, peer closed", |p| {
        unix_peer_closed(p, SOCK_SEQPACKET)
    }),
    ("AF_UNIX dgram, peer closed", |p| unix_peer_closed(p, SOCK_DGRAM)),
    ("TCP after own shutdown(SHUT_WR)", tcp_shut_wr),
    ("TCP reset by peer", |p| (tcp_reset_by_peer(p), None)),
    ("unconnected TCP", |p| (p.tcp4(), None)),
    ("listening TCP", |p| (p.listener(Family::V4, SOCK_STREAM).0, None)),
    ("unconnected UDP", |p| (p.udp4(), None)),
    ("unconnected AF_UNIX dgram", |p| (p.sock(AF_UNIX, SOCK_DGRAM), None)),
    ("unconnected AF_UNIX stream", |p| (p.sock(AF_UNIX, SOCK_STREAM), None)),
    ("non-blocking AF_UNIX stream with a full buffer", |p| {
        let (a, b) = p.pair(SOCK_STREAM | SOCK_NONBLOCK);
        fill_send_buffer(a);
        (a, Some(b))
    }),
    ("pipe whose read end is closed (not a socket)", pipe_without_reader),
    ("pipe already written once through this side (kind learnt)", |p| {
        let (read_end, write_end) = p.pipe_with(b"");
        // SAFETY: the byte is a static buffer; the pipe is empty and non-blocking.
        assert_eq!(unsafe { (p.api.write)(write_end, b"<".as_ptr().cast(), 1) }, 1);
        (write_end, Some(read_end))
    }),
    ("full non-blocking pipe", |p| {
        let (read_end, write_end) = p.pipe_with(b"");
        fill_pipe(write_end);
        (write_end, Some(read_end))
    }),
    ("eventfd already written once through this side (kind learnt)", |p| {
        let fd = p.eventfd();
        let one = 1u64.to_ne_bytes();
        // SAFETY: one is a live 8-byte buffer.
        assert_eq!(unsafe { (p.api.write)(fd, one.as_ptr().cast(), 8) }, 8);
        (fd, None)
    }),
    ("regular file at offset 5", |p| {
        let fd = p.file_fd(b"file-data\n", libc::O_RDWR);
        // SAFETY: lseek takes no pointer.
        assert_eq!(unsafe { libc::lseek(fd, 5, libc::SEEK_SET) }, 5);
        (fd, None)
    }),
    ("regular file opened O_APPEND", |p| {
        (p.file_fd(b"file-data\n", libc::O_RDWR | libc::O_APPEND), None)
    }),
    ("number of an ss_ UDP socket now holding a shut-down TCP socket", |p| {
        let fd = p.udp4();
        let (tcp, _) = tcp_shut_wr(p);
        replace_behind_safesock(fd, tcp);
        (fd, None)
    }),
    ("number of an ss_ TCP socket now holding a pipe", |p| {
        let fd = p.tcp4();
        let (read_end, write_end) = p.pipe_with(b"");
        replace_behind_safesock(fd, write_end);
        (fd, Some(read_end))
    }),
    ("number of an ss_ TCP socket now holding a pipe without a reader", |p| {
        let fd = p.tcp4();
        let (read_end, write_end) = p.pipe_with(b"");
        replace_behind_safesock(fd, write_end);
        p.close_now(read_end);
        (fd, None)
    }),
];

/// The zero-length sends: nothing to move, but each function must answer
/// as libc does (and leave the socket as libc does).
const ZERO_LENGTH_STATES: &[(&str, SendState)] = &[
    ("AF_UNIX stream pair", |p| unix_pair_of(p, SOCK_STREAM)),
    ("AF_UNIX dgram pair", |p| unix_pair_of(p, SOCK_DGRAM)),
    ("connected UDP", |p| {
        let (a, b) = p.udp_conn();
        (a, Some(b))
    }),
    ("unconnected TCP", |p| (p.tcp4(), None)),
    ("unconnected AF_UNIX stream", |p| (p.sock(AF_UNIX, SOCK_STREAM), None)),
    ("TCP after own shutdown(SHUT_WR)", tcp_shut_wr),
    ("AF_UNIX stream, peer closed", |p| unix_peer_closed(p, SOCK_STREAM)),
    ("TCP reset by peer", |p| (tcp_reset_by_peer(p), None)),
];

/// Sends from 10 readable bytes followed by a page without access, with
/// lengths that reach into the fault or beyond what one call moves.
const BAD_BUFFER_STATES: &[(&str, usize, SendState)] = &[
    ("AF_UNIX stream, length 16", 16, |p| unix_pair_of(p, SOCK_STREAM)),
    ("TCP, length 16", 16, tcp_to_peer),
    ("connected UDP, length 16", 16, |p| {
        let (a, b) = p.udp_conn();
        (a, Some(b))
    }),
    ("TCP, length MAX_RW_COUNT", MAX_RW_COUNT, tcp_to_peer),
    ("TCP, length MAX_RW_COUNT + 1", MAX_RW_COUNT + 1, tcp_to_peer),
    ("AF_UNIX stream, length SSIZE_MAX", isize::MAX as usize, |p| {
        unix_pair_of(p, SOCK_STREAM)
    }),
    ("AF_UNIX stream, length SIZE_MAX", usize::MAX, |p| {
        unix_pair_of(p, SOCK_STREAM)
    }),
    (
        "AF_UNIX stream, peer closed, length MAX_RW_COUNT + 1",
        MAX_RW_COUNT + 1,
        |p| unix_peer_closed(p, SOCK_STREAM),
    ),
    (
        "pipe without a reader, length MAX_RW_COUNT + 1",
        MAX_RW_COUNT + 1,
        pipe_without_reader,
    ),
    ("pipe without a reader, length 16", 16, pipe_without_reader),
];

/// A pipe's write end whose read end is closed (not a socket: SIGPIPE is due).
fn pipe_without_reader(p: &mut Probe) -> (c_int, Option<c_int>) {
    let (read_end, write_end) = p.pipe_with(b"");
    p.close_now(read_end);
    (write_end, None)
}

/// Every send state, zero-length and bad-buffer cases, as cases for `op`.
pub fn send_cases(op: SendOp) -> Vec<Case> {
    let mut cases: Vec<Case> = SEND_STATES
        .iter()
        .map(|&(name, state)| {
            Case::new(name, move |p| {
                let (fd, peer) = state(p);
                send_payload(p, op, fd, peer);
            })
        })
        .collect();
    cases.extend(ZERO_LENGTH_STATES.iter().map(|&(name, state)| {
        Case::new(format!("length 0 (NULL buffer): {name}"), move |p| {
            let (fd, peer) = state(p);
            send_from(p, op, fd, peer, std::ptr::null(), 0);
        })
    }));
    cases.extend(BAD_BUFFER_STATES.iter().map(|&(name, len, state)| {
        Case::new(format!("10 bytes before a fault: {name}"), move |p| {
            let (fd, peer) = state(p);
            send_from(p, op, fd, peer, bytes_before_fault(10), len);
        })
    }));
    cases.push(Case::new("fresh eventfd, an 8-byte value", move |p| {
        let fd = p.eventfd();
        let value = 5u64.to_ne_bytes();
        send_from(p, op, fd, None, value.as_ptr().cast(), value.len());
        p.out_arrived("counter after", fd, 8);
    }));
    cases.push(Case::new("UDP datagram of 70000 bytes", move |p| {
        let (a, b) = p.udp_conn();
        let big = vec![b'u'; 70_000];
        send_from(p, op, a, Some(b), big.as_ptr().cast(), big.len());
    }));
    cases.extend(wild_cases("buffer, length 16", &Wild::FOR_INPUT, move |p, wild| {
        let (fd, peer) = unix_pair_of(p, SOCK_STREAM);
        send_from(p, op, fd, peer, wild.ptr(), 16);
    }));
    cases
}
