//! Receiving into zero bytes. `ss_recv`, `ss_read`, `ss_recvfrom` and
//! `ss_readv` with a length of 0 (a NULL buffer, a real one, and for
//! `ss_readv` also no iovec at all) on TCP, UDP and AF_UNIX, each compared
//! with libc on mirrored resources through the differential suite's
//! harness: the return value, errno, the address out-parameter, the buffer
//! untouched, and what can be read afterwards.
//!
//! What libc gives (and safesock with it; `SSDIFF_SHOW=zero-length` prints
//! every case): `read`/`readv` of 0 bytes return 0 before the socket is
//! asked, so they consume nothing and never fail with `EAGAIN`; `recv` and
//! `recvfrom` of 0 bytes go to the socket: they take (and discard) the next
//! UDP, AF_UNIX datagram or seqpacket record, leave stream bytes queued,
//! return 0 on an idle blocking stream, and fail with `EAGAIN` on an idle
//! non-blocking socket. Then the helpers asked for zero bytes.

use std::ffi::c_int;
use std::time::{Duration, Instant};

use libc::{SOCK_DGRAM, SOCK_NONBLOCK, SOCK_SEQPACKET, SOCK_STREAM, iovec};
use safesock::ffi;

use crate::common::{
    Api, Outcome, fill_send_buffer, ignore_sigpipe, mirrored_tcp_pair, send_all, set_nonblocking, set_timeouts, ss_pair,
};
use crate::fixtures::{PATTERN, RawAddr, inject, wait_for};
use crate::harness::{Case, Probe, Table, run_tables_in_parallel};
use crate::transfer::{tcp_with_payload, unix_with_payload};

/// A receiving function and how it is handed zero bytes.
#[derive(Clone, Copy, Debug)]
enum ZeroRecv {
    Recv,
    Read,
    Recvfrom,
    Readv,
}

/// What the zero bytes are.
#[derive(Clone, Copy, Debug)]
enum Zero {
    /// A NULL buffer of length 0.
    Null,
    /// A real buffer, length 0.
    Buffer,
    /// `ss_readv` only: a NULL iovec array, iovcnt 0.
    NoIovec,
}

/// A socket in a state worth a zero-length receive, made through the probe's side.
type State = fn(&mut Probe) -> c_int;

/// `fd`, made non-blocking.
fn nonblocking(fd: c_int) -> c_int {
    set_nonblocking(fd, true);
    fd
}

/// A datagram socket of a connected pair (`udp_conn` or an AF_UNIX pair of
/// `ty`) with the datagrams `sent` arrived.
fn datagrams(p: &mut Probe, ty: Option<c_int>, sent: &[&[u8]]) -> c_int {
    let (a, b) = match ty {
        None => p.udp_conn(),
        Some(ty) => p.pair(ty),
    };
    for d in sent {
        inject(b, d);
    }
    assert!(sent.is_empty() || wait_for(a, libc::POLLIN), "datagrams arrived");
    a
}

const STATES: &[(&str, State)] = &[
    ("TCP, 10 bytes arrived", tcp_with_payload),
    ("TCP, nothing arrived, non-blocking", |p| {
        nonblocking(p.tcp_conn().client)
    }),
    ("TCP, nothing arrived, blocking with a 100 ms receive timeout", |p| {
        let fd = p.tcp_conn().client;
        set_timeouts(fd, Duration::from_millis(100));
        fd
    }),
    ("TCP, peer shut down writing", |p| {
        let c = p.tcp_conn();
        // SAFETY: shutdown takes no pointer.
        assert_eq!(unsafe { libc::shutdown(c.server, libc::SHUT_WR) }, 0);
        assert!(wait_for(c.client, libc::POLLIN));
        c.client
    }),
    ("UDP, datagrams \"first\" and \"second\" queued", |p| {
        datagrams(p, None, &[b"first", b"second"])
    }),
    ("UDP, an empty datagram then \"next\" queued", |p| {
        datagrams(p, None, &[b"", b"next"])
    }),
    ("UDP, nothing queued, non-blocking", |p| {
        nonblocking(datagrams(p, None, &[]))
    }),
    ("AF_UNIX stream, 10 bytes queued", |p| unix_with_payload(p, SOCK_STREAM)),
    ("AF_UNIX stream, nothing queued, non-blocking", |p| {
        p.pair(SOCK_STREAM | SOCK_NONBLOCK).0
    }),
    ("AF_UNIX dgram, \"first\" and \"second\" queued", |p| {
        datagrams(p, Some(SOCK_DGRAM), &[b"first", b"second"])
    }),
    ("AF_UNIX seqpacket, \"first\" and \"second\" queued", |p| {
        datagrams(p, Some(SOCK_SEQPACKET), &[b"first", b"second"])
    }),
];

/// Makes the one zero-length call and records what it left behind.
fn zero_receive(p: &mut Probe, fd: c_int, op: ZeroRecv, zero: Zero) {
    let mut buf = [PATTERN; 16];
    let ptr = match zero {
        Zero::Buffer => buf.as_mut_ptr().cast(),
        Zero::Null | Zero::NoIovec => std::ptr::null_mut(),
    };
    let iov = iovec {
        iov_base: ptr,
        iov_len: 0,
    };
    let (iov_ptr, iovcnt): (*const iovec, c_int) = match zero {
        Zero::NoIovec => (std::ptr::null(), 0),
        _ => (&iov, 1),
    };
    let mut from = RawAddr::pattern();
    let mut from_len: libc::socklen_t = 128;
    // SAFETY: every pointer is NULL with a zero length, or a live local of
    // the size given; nothing is written through a zero-length buffer.
    p.call(fd, |api| unsafe {
        match op {
            ZeroRecv::Recv => (api.recv)(fd, ptr, 0, 0),
            ZeroRecv::Read => (api.read)(fd, ptr, 0),
            ZeroRecv::Recvfrom => (api.recvfrom)(fd, ptr, 0, 0, from.mut_ptr(), &mut from_len),
            ZeroRecv::Readv => (api.readv)(fd, iov_ptr, iovcnt),
        }
    });
    p.out("buffer untouched", buf.iter().all(|&b| b == PATTERN));
    if let ZeroRecv::Recvfrom = op {
        p.out_addr("src_addr", &from, from_len);
    }
    p.out_arrived("readable afterwards", fd, 0);
}

fn table(func: &'static str, op: ZeroRecv, zeros: &[Zero]) -> Table {
    let mut cases = Vec::new();
    for &(name, state) in STATES {
        for &zero in zeros {
            cases.push(Case::new(format!("zero-length {zero:?}: {name}"), move |p| {
                let fd = state(p);
                zero_receive(p, fd, op, zero);
            }));
        }
    }
    Table { func, cases }
}

#[test]
fn zero_length_receives_give_what_libc_gives_on_tcp_udp_and_unix() {
    ignore_sigpipe();
    let tables = [
        table("ss_recv", ZeroRecv::Recv, &[Zero::Null, Zero::Buffer]),
        table("ss_read", ZeroRecv::Read, &[Zero::Null, Zero::Buffer]),
        table("ss_recvfrom", ZeroRecv::Recvfrom, &[Zero::Null, Zero::Buffer]),
        table("ss_readv", ZeroRecv::Readv, &[Zero::Null, Zero::Buffer, Zero::NoIovec]),
    ];
    let reports = run_tables_in_parallel(&tables);
    let mut mismatches = Vec::new();
    for r in &reports {
        eprintln!(
            "{}: {} zero-length cases, {} mismatches",
            r.func,
            r.cases,
            r.mismatches.len()
        );
        mismatches.extend(r.mismatches.iter().cloned());
    }
    assert!(
        mismatches.is_empty(),
        "ss_ differs from libc:\n{}",
        mismatches.join("\n")
    );
}

/// What a helper asked for zero bytes did, and how long it took.
fn zero_helper(fd: c_int, recv: bool, null: bool) -> (Outcome, Duration) {
    let mut buf = [0u8; 1];
    let ptr = if null { std::ptr::null_mut() } else { buf.as_mut_ptr() };
    let started = Instant::now();
    // SAFETY: a zero-length buffer, NULL or a live local; nothing moves.
    let ret = unsafe {
        if recv {
            ffi::ss_recv_exact(fd, ptr.cast(), 0)
        } else {
            ffi::ss_send_all(fd, ptr.cast(), 0)
        }
    };
    (Outcome::of(ret as i64), started.elapsed())
}

#[test]
fn helpers_asked_for_zero_bytes_return_zero_at_once() {
    // Nothing to move means nothing to wait for: ss_recv_exact and
    // ss_send_all of 0 bytes are complete before they start, whatever the
    // socket's state, and take nothing. A zero-length recv() would not do
    // (EAGAIN on an idle non-blocking socket, see the table above): passed
    // on, it tells an event loop to wait for readability "for the rest"
    // when there is no rest, and with an empty payload in a
    // request/response protocol both peers then wait forever.
    const TIMEOUT: Duration = Duration::from_millis(300);
    let (client, server) = mirrored_tcp_pair(Api::Ss);
    let (full, _full_peer) = mirrored_tcp_pair(Api::Ss);
    let pair = ss_pair(SOCK_STREAM);
    set_timeouts(full.raw(), TIMEOUT);
    nonblocking(full.raw());
    fill_send_buffer(full.raw());
    let mut wrong = Vec::new();
    let mut seen = Vec::new();
    let queued_datagram = ss_pair(SOCK_DGRAM);
    send_all(queued_datagram[1], b"first");
    for (kind, fd, make_nonblocking) in [
        ("TCP, idle", client.raw(), false),
        ("AF_UNIX stream, idle", pair[0], false),
        ("TCP, idle, non-blocking", client.raw(), true),
        ("AF_UNIX stream, idle, non-blocking", pair[0], true),
        ("TCP, send buffer full, non-blocking", full.raw(), false),
        ("AF_UNIX dgram, a datagram queued", queued_datagram[0], false),
    ] {
        set_timeouts(fd, TIMEOUT);
        if make_nonblocking {
            nonblocking(fd);
        }
        for (helper, recv) in [("ss_recv_exact", true), ("ss_send_all", false)] {
            for null in [true, false] {
                let (outcome, took) = zero_helper(fd, recv, null);
                let call = format!("{helper}(fd {fd} ({kind}), {}, 0)", if null { "NULL" } else { "buf" });
                seen.push(format!("{call}: {:?} after {took:.0?}", outcome.result()));
                if outcome.ret != 0 || took >= TIMEOUT {
                    wrong.push(format!("{call}: expected 0 at once, got {outcome:?} after {took:.0?}"));
                }
            }
        }
    }
    // Nothing was taken: the datagram is still there, whole.
    let mut first = [0u8; 16];
    // SAFETY: `first` is a live, writable buffer of the length given.
    let n = unsafe { ffi::ss_recv(queued_datagram[0], first.as_mut_ptr().cast(), 16, libc::MSG_DONTWAIT) };
    assert_eq!(
        &first[..n.max(0) as usize],
        b"first",
        "a zero-length helper call took the datagram"
    );
    for fd in pair.into_iter().chain(queued_datagram) {
        assert_eq!(ffi::ss_close(fd), 0);
    }
    drop((client, server));
    eprintln!("{}", seen.join("\n"));
    assert!(wrong.is_empty(), "zero-length helpers:\n{}", wrong.join("\n"));
}
