//! Tables for `read`, `write`, `recv`, `send`, `readv` and `writev`: the
//! shared transfer states (see [`crate::transfer`]) plus what only one
//! function has — flags, and `iovec` arrays.

use libc::{SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM, c_int, iovec};

use crate::common::{Wild, bytes_before_fault, fill_send_buffer};
use crate::fixtures::{PATTERN, bad_fd_cases, escape, value_cases, wild_cases};
use crate::harness::{Case, Probe, Table};
use crate::transfer::{
    RecvOp, SendOp, receive, recv_cases, send_cases, send_payload, udp_with_payload, unix_with_payload,
};

/// Bad-descriptor cases for a receiving function (pipes and files hold data).
pub fn recv_bad_fds(op: RecvOp) -> Vec<Case> {
    bad_fd_cases(move |p, fd| receive(p, op, fd, 64, 64))
}

/// Bad-descriptor cases for a sending function.
pub fn send_bad_fds(op: SendOp) -> Vec<Case> {
    bad_fd_cases(move |p, fd| send_payload(p, op, fd, None))
}

type FlagState = fn(&mut Probe) -> c_int;

/// Flag cases for a receiving function: `(name, flags, prepare, buffer size)`.
const RECV_FLAG_CASES: &[(&str, c_int, FlagState, usize)] = &[
    (
        "MSG_PEEK on AF_UNIX stream",
        libc::MSG_PEEK,
        |p| unix_with_payload(p, SOCK_STREAM),
        64,
    ),
    (
        "MSG_WAITALL with the whole buffer queued",
        libc::MSG_WAITALL,
        |p| unix_with_payload(p, SOCK_STREAM),
        10,
    ),
    (
        "MSG_WAITALL|MSG_DONTWAIT with less queued",
        libc::MSG_WAITALL | libc::MSG_DONTWAIT,
        |p| unix_with_payload(p, SOCK_STREAM),
        64,
    ),
    ("MSG_TRUNC on UDP, 10 into 4", libc::MSG_TRUNC, udp_with_payload, 4),
    (
        "MSG_TRUNC on AF_UNIX stream, 10 into 4",
        libc::MSG_TRUNC,
        |p| unix_with_payload(p, SOCK_STREAM),
        4,
    ),
    (
        "MSG_TRUNC|MSG_PEEK on AF_UNIX dgram",
        libc::MSG_TRUNC | libc::MSG_PEEK,
        |p| unix_with_payload(p, SOCK_DGRAM),
        4,
    ),
    (
        "MSG_OOB on TCP without urgent data",
        libc::MSG_OOB,
        crate::transfer::tcp_with_payload,
        64,
    ),
    (
        "MSG_OOB on AF_UNIX seqpacket",
        libc::MSG_OOB,
        |p| unix_with_payload(p, SOCK_SEQPACKET),
        64,
    ),
    ("MSG_ERRQUEUE on UDP", libc::MSG_ERRQUEUE, Probe::udp4, 64),
    (
        "MSG_DONTWAIT on an empty blocking socket",
        libc::MSG_DONTWAIT,
        |p| p.pair(SOCK_STREAM).0,
        64,
    ),
    (
        "MSG_CMSG_CLOEXEC",
        libc::MSG_CMSG_CLOEXEC,
        |p| unix_with_payload(p, SOCK_STREAM),
        64,
    ),
    ("flags -1 (every bit)", -1, |p| unix_with_payload(p, SOCK_DGRAM), 64),
    (
        "flags 0x80000000 (MSG_CMSG_COMPAT)",
        c_int::MIN,
        |p| unix_with_payload(p, SOCK_STREAM),
        64,
    ),
    (
        "flags 0x7fff0000 (unknown high bits)",
        0x7fff_0000,
        |p| unix_with_payload(p, SOCK_DGRAM),
        64,
    ),
];

/// The flag cases for a receiving function built by `with_flags`.
pub fn recv_flag_cases(with_flags: fn(c_int) -> RecvOp) -> Vec<Case> {
    RECV_FLAG_CASES
        .iter()
        .map(|&(name, flags, prepare, cap)| {
            Case::new(format!("flags {name}"), move |p| {
                let fd = prepare(p);
                receive(p, with_flags(flags), fd, cap, cap);
            })
        })
        .collect()
}

type SendFlagState = fn(&mut Probe) -> (c_int, Option<c_int>);

/// Flag cases for a sending function: `(name, flags, prepare)`.
const SEND_FLAG_CASES: &[(&str, c_int, SendFlagState)] = &[
    ("MSG_DONTWAIT on a full blocking stream", libc::MSG_DONTWAIT, |p| {
        let (a, b) = p.pair(SOCK_STREAM);
        fill_send_buffer(a);
        (a, Some(b))
    }),
    ("MSG_NOSIGNAL, peer closed", libc::MSG_NOSIGNAL, |p| {
        let (a, b) = p.pair(SOCK_STREAM);
        p.close_now(b);
        (a, None)
    }),
    ("MSG_OOB on AF_UNIX dgram", libc::MSG_OOB, |p| {
        let (a, b) = p.pair(SOCK_DGRAM);
        (a, Some(b))
    }),
    ("MSG_EOR on AF_UNIX seqpacket", libc::MSG_EOR, |p| {
        let (a, b) = p.pair(SOCK_SEQPACKET);
        (a, Some(b))
    }),
    ("MSG_CONFIRM on connected UDP", libc::MSG_CONFIRM, |p| {
        let (a, b) = p.udp_conn();
        (a, Some(b))
    }),
    ("MSG_DONTROUTE on TCP", libc::MSG_DONTROUTE, |p| {
        let c = p.tcp_conn();
        (c.client, Some(c.server))
    }),
    ("MSG_MORE on AF_UNIX stream", libc::MSG_MORE, |p| {
        let (a, b) = p.pair(SOCK_STREAM);
        (a, Some(b))
    }),
    ("flags -1 (every bit) on AF_UNIX stream", -1, |p| {
        let (a, b) = p.pair(SOCK_STREAM);
        (a, Some(b))
    }),
    ("flags 0x80000000 (MSG_CMSG_COMPAT) on AF_UNIX dgram", c_int::MIN, |p| {
        let (a, b) = p.pair(SOCK_DGRAM);
        (a, Some(b))
    }),
    (
        "flags 0x7fff0000 (unknown high bits) on AF_UNIX dgram",
        0x7fff_0000,
        |p| {
            let (a, b) = p.pair(SOCK_DGRAM);
            (a, Some(b))
        },
    ),
];

/// The flag cases for a sending function built by `with_flags`.
pub fn send_flag_cases(with_flags: fn(c_int) -> SendOp) -> Vec<Case> {
    SEND_FLAG_CASES
        .iter()
        .map(|&(name, flags, prepare)| {
            Case::new(format!("flags {name}"), move |p| {
                let (fd, peer) = prepare(p);
                send_payload(p, with_flags(flags), fd, peer);
            })
        })
        .collect()
}

pub fn read() -> Table {
    let mut cases = recv_cases(RecvOp::Read);
    cases.extend(recv_bad_fds(RecvOp::Read));
    Table { func: "ss_read", cases }
}

pub fn write() -> Table {
    let mut cases = send_cases(SendOp::Write);
    cases.extend(send_bad_fds(SendOp::Write));
    Table {
        func: "ss_write",
        cases,
    }
}

pub fn recv() -> Table {
    let mut cases = recv_cases(RecvOp::Recv(0));
    cases.extend(recv_flag_cases(RecvOp::Recv));
    cases.extend(recv_bad_fds(RecvOp::Recv(0)));
    Table { func: "ss_recv", cases }
}

pub fn send() -> Table {
    let mut cases = send_cases(SendOp::Send(0));
    cases.extend(send_flag_cases(SendOp::Send));
    cases.extend(send_bad_fds(SendOp::Send(0)));
    Table { func: "ss_send", cases }
}

/// `readv` or `writev`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Vector {
    Read,
    Write,
}

/// A case for a vector call: an AF_UNIX stream pair (with [`PAYLOAD`]
/// queued for reading), buffers of `sizes` (pattern-filled for reading,
/// payload bytes for writing), and the array handed over by `call` with the
/// count it chooses.
fn vector_case(
    dir: Vector,
    name: &str,
    sizes: &'static [usize],
    call: fn(&mut Probe, Vector, c_int, &mut [iovec]),
) -> Case {
    Case::new(name, move |p| {
        let (fd, peer) = match dir {
            Vector::Read => (unix_with_payload(p, SOCK_STREAM), None),
            Vector::Write => {
                let (a, b) = p.pair(SOCK_STREAM);
                (a, Some(b))
            }
        };
        let fill_byte = if dir == Vector::Read { PATTERN } else { b'w' };
        let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![fill_byte; n]).collect();
        let mut iov: Vec<iovec> = bufs
            .iter_mut()
            .map(|b| iovec {
                iov_base: if b.is_empty() {
                    std::ptr::null_mut()
                } else {
                    b.as_mut_ptr().cast()
                },
                iov_len: b.len(),
            })
            .collect();
        call(p, dir, fd, &mut iov);
        match peer {
            Some(peer) => p.out_arrived("peer received", peer, p.ret()),
            None => {
                let shown: Vec<String> = bufs.iter().map(|b| escape(b)).collect();
                p.out("buffers", shown.join(" | "));
                p.out_queued("queued after", fd);
            }
        }
    })
}

/// Calls readv/writev with an array pointer and count.
fn vector_call(p: &mut Probe, dir: Vector, fd: c_int, iov: *const iovec, count: c_int) {
    // SAFETY: callers pass a live array of at least `count` entries naming
    // live buffers, or a deliberately invalid array/count the kernel rejects.
    p.call(fd, |api| unsafe {
        match dir {
            Vector::Read => (api.readv)(fd, iov, count),
            Vector::Write => (api.writev)(fd, iov, count),
        }
    });
}

fn whole_array(p: &mut Probe, dir: Vector, fd: c_int, iov: &mut [iovec]) {
    let count = c_int::try_from(iov.len()).expect("small");
    vector_call(p, dir, fd, iov.as_ptr(), count);
}

const ONE_BYTE_X1024: &[usize] = &[1; 1024];

/// The `iovec`-specific cases of readv/writev.
fn vector_cases(dir: Vector) -> Vec<Case> {
    let mut cases = vec![
        vector_case(dir, "two buffers of 4 and 64", &[4, 64], whole_array),
        vector_case(dir, "empty first buffer (NULL, 0), then 64", &[0, 64], whole_array),
        vector_case(dir, "1024 buffers of 1 byte (IOV_MAX)", ONE_BYTE_X1024, whole_array),
        vector_case(dir, "iovcnt 0", &[64], |p, dir, fd, iov| {
            vector_call(p, dir, fd, iov.as_ptr(), 0)
        }),
        vector_case(dir, "iov NULL, iovcnt 0", &[], |p, dir, fd, _| {
            vector_call(p, dir, fd, std::ptr::null(), 0);
        }),
        vector_case(dir, "iov NULL, iovcnt 1", &[], |p, dir, fd, _| {
            vector_call(p, dir, fd, std::ptr::null(), 1);
        }),
        vector_case(dir, "lengths adding up past SSIZE_MAX", &[64, 64], |p, dir, fd, iov| {
            iov[0].iov_len = isize::MAX as usize;
            iov[1].iov_len = isize::MAX as usize;
            whole_array(p, dir, fd, iov);
        }),
        vector_case(dir, "one length of SIZE_MAX", &[64], |p, dir, fd, iov| {
            iov[0].iov_len = usize::MAX;
            whole_array(p, dir, fd, iov);
        }),
        vector_case(
            dir,
            "iovcnt 2 over a one-entry array ending at a fault",
            &[],
            |p, dir, fd, _| {
                let at_end = bytes_before_fault::<iovec>(size_of::<iovec>());
                vector_call(p, dir, fd, at_end, 2);
            },
        ),
    ];
    cases.extend(value_cases(
        "iovcnt",
        &[-1, 1025, c_int::MAX, c_int::MIN],
        move |p, count| {
            let fd = p.pair(SOCK_STREAM).0;
            let mut buf = [0u8; 16];
            let iov = [iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            }];
            // The count is out of range: the kernel rejects it before reading the
            // array (which has one valid entry anyway).
            vector_call(p, dir, fd, iov.as_ptr(), count);
        },
    ));
    cases.extend(wild_cases("iov array, iovcnt 1", &Wild::FOR_INPUT, move |p, wild| {
        let fd = match dir {
            Vector::Read => unix_with_payload(p, SOCK_STREAM),
            Vector::Write => p.pair(SOCK_STREAM).0,
        };
        vector_call(p, dir, fd, wild.ptr(), 1);
        p.out_queued("queued after", fd);
    }));
    cases
}

pub fn readv() -> Table {
    let mut cases = recv_cases(RecvOp::Readv);
    cases.extend(vector_cases(Vector::Read));
    cases.extend(recv_bad_fds(RecvOp::Readv));
    Table {
        func: "ss_readv",
        cases,
    }
}

pub fn writev() -> Table {
    let mut cases = send_cases(SendOp::Writev);
    cases.extend(vector_cases(Vector::Write));
    cases.extend(send_bad_fds(SendOp::Writev));
    Table {
        func: "ss_writev",
        cases,
    }
}
