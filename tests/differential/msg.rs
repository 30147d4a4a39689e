//! Tables for `recvmsg`, `sendmsg`, `recvfrom` and `sendto`: the shared
//! transfer states and flags, plus addresses, message headers and control
//! data (`SCM_RIGHTS`, `SCM_CREDENTIALS`).

use std::net::Ipv6Addr;

use libc::{AF_UNIX, SOCK_DGRAM, SOCK_STREAM, c_int, cmsghdr, iovec, msghdr, socklen_t};

use crate::common::{Wild, reserve_fd};
use crate::fixtures::{
    ADDR_LENS, Family, PATTERN, RawAddr, arrived_after, escape, inject, sockname, value_cases, wait_for, wild_cases,
};
use crate::harness::{Case, Probe, Table};
use crate::io::{recv_bad_fds, recv_flag_cases, send_bad_fds, send_flag_cases};
use crate::transfer::{PAYLOAD, RecvOp, SendOp, empty_msghdr, recv_cases, send_cases, unix_with_payload};

/// Control-message space, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct Control([u8; 256]);

/// A message header with everything it points to, boxed so the pointers
/// inside stay valid.
struct Message {
    name: RawAddr,
    data: [u8; 64],
    iov: iovec,
    control: Control,
    msg: msghdr,
}

impl Message {
    /// A header for receiving: pattern-filled name (room 128), one 64-byte
    /// buffer, and `control_len` bytes of control space.
    fn for_receiving(control_len: usize) -> Box<Message> {
        let mut m = Box::new(Message {
            name: RawAddr::pattern(),
            data: [PATTERN; 64],
            iov: iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            control: Control([PATTERN; 256]),
            msg: empty_msghdr(),
        });
        m.iov = iovec {
            iov_base: m.data.as_mut_ptr().cast(),
            iov_len: m.data.len(),
        };
        m.msg.msg_name = m.name.mut_ptr().cast();
        m.msg.msg_namelen = 128;
        m.msg.msg_iov = &mut m.iov;
        m.msg.msg_iovlen = 1;
        m.msg.msg_control = m.control.0.as_mut_ptr().cast();
        m.msg.msg_controllen = control_len;
        m
    }

    /// A header for sending [`PAYLOAD`] with no address and no control data.
    fn for_sending() -> Box<Message> {
        let mut m = Message::for_receiving(0);
        m.data[..PAYLOAD.len()].copy_from_slice(PAYLOAD);
        m.iov.iov_len = PAYLOAD.len();
        m.msg.msg_name = std::ptr::null_mut();
        m.msg.msg_namelen = 0;
        m.msg.msg_control = std::ptr::null_mut();
        m
    }

    /// Sets one control message of `level`/`ty` carrying `data`.
    fn set_control(&mut self, level: c_int, ty: c_int, data: &[u8]) {
        self.control.0.fill(0);
        let data_len = u32::try_from(data.len()).expect("small");
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure size computations.
        let (space, len) = unsafe { (libc::CMSG_SPACE(data_len), libc::CMSG_LEN(data_len)) };
        self.msg.msg_control = self.control.0.as_mut_ptr().cast();
        self.msg.msg_controllen = space as usize;
        // SAFETY: the control buffer is aligned and larger than CMSG_SPACE
        // of any data a case sets, so the first header and its data fit.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&self.msg);
            (*cmsg).cmsg_level = level;
            (*cmsg).cmsg_type = ty;
            (*cmsg).cmsg_len = len as usize;
            std::ptr::copy_nonoverlapping(data.as_ptr(), libc::CMSG_DATA(cmsg), data.len());
        }
    }

    fn set_rights(&mut self, fds: &[c_int]) {
        let bytes: Vec<u8> = fds.iter().flat_map(|fd| fd.to_ne_bytes()).collect();
        self.set_control(libc::SOL_SOCKET, libc::SCM_RIGHTS, &bytes);
    }
}

/// Records a received message: data, name, lengths, flags, and each control
/// message; received descriptors are adopted (`mirror` says whether the
/// mirror call received them, so their close-on-exec flag is checked).
fn observe_received(p: &mut Probe, m: &Message, mirror: bool) {
    let used = m.data.iter().rposition(|&b| b != PATTERN).map_or(0, |i| i + 1);
    p.out("data", escape(&m.data[..used]));
    p.out_addr("msg_name", &m.name, m.msg.msg_namelen);
    p.out("msg_controllen", m.msg.msg_controllen);
    p.out("msg_flags", format!("{:#x}", m.msg.msg_flags));
    if p.ret() < 0 || m.msg.msg_control.is_null() || m.msg.msg_controllen > m.control.0.len() {
        return;
    }
    let mut index = 0;
    // SAFETY: the call succeeded, so the kernel wrote msg_controllen
    // (checked above to lie within the control buffer) bytes of control
    // messages; CMSG_FIRSTHDR/NXTHDR stay inside them.
    let mut cmsg: *const cmsghdr = unsafe { libc::CMSG_FIRSTHDR(&m.msg) };
    while !cmsg.is_null() {
        // SAFETY: cmsg is a header inside the written control data (above).
        let header = unsafe { cmsg.read_unaligned() };
        // SAFETY: CMSG_LEN(0) is a pure size computation.
        let payload_len = header.cmsg_len.saturating_sub(unsafe { libc::CMSG_LEN(0) } as usize);
        // SAFETY: CMSG_DATA points just after the header, inside the control buffer.
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        let label = format!("cmsg {index}");
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_RIGHTS {
            let count = payload_len / size_of::<c_int>();
            p.out(&label, format!("SCM_RIGHTS, {count} fds"));
            for i in 0..count {
                // SAFETY: the kernel wrote `count` descriptors after the header.
                let fd = unsafe { data.cast::<c_int>().add(i).read_unaligned() };
                if mirror {
                    p.adopt_new_fd(&format!("{label} fd {i}"), fd);
                } else {
                    p.adopt_plain_fd(&format!("{label} fd {i}"), fd);
                }
            }
        } else {
            let end = payload_len.min(m.control.0.len());
            // SAFETY: the kernel wrote payload_len bytes of data after the header.
            let bytes = unsafe { std::slice::from_raw_parts(data, end) };
            p.out(
                &label,
                format!(
                    "level {} type {} data {}",
                    header.cmsg_level,
                    header.cmsg_type,
                    escape(bytes)
                ),
            );
        }
        index += 1;
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(&m.msg, cmsg) };
    }
}

/// Calls `recvmsg(fd, &m.msg, flags)` and records everything it filled in.
fn recvmsg_into(p: &mut Probe, fd: c_int, m: &mut Message, flags: c_int) {
    let msg: *mut msghdr = &mut m.msg;
    // SAFETY: m is a live message whose pointers name its own buffers (or
    // deliberately invalid pointers a case put there for the kernel to reject).
    p.call(fd, |api| unsafe { (api.recvmsg)(fd, msg, flags) });
    observe_received(p, m, true);
    p.out_queued("queued after", fd);
}

/// A pipe's write end sent as `SCM_RIGHTS` over a fresh AF_UNIX stream pair
/// (with plain libc), ready to be received on the returned end.
fn with_rights(p: &mut Probe, fds: &[c_int]) -> c_int {
    let (receiver, sender) = p.pair(SOCK_STREAM);
    let mut m = Message::for_sending();
    m.set_rights(fds);
    // SAFETY: m is a live message naming its own buffers.
    let n = unsafe { libc::sendmsg(sender, &m.msg, 0) };
    assert_eq!(usize::try_from(n).ok(), Some(PAYLOAD.len()), "sending SCM_RIGHTS");
    receiver
}

fn pipe_write_end(p: &mut Probe) -> c_int {
    p.pipe_with(b"").1
}

/// A UDP socket with one datagram from a bound sender arrived.
fn udp_datagram(p: &mut Probe, family: Family) -> c_int {
    let (receiver, to) = p.bound(family, SOCK_DGRAM);
    let (sender, _) = p.bound(family, SOCK_DGRAM);
    // SAFETY: PAYLOAD is static; to holds to.len valid bytes.
    let n = unsafe { libc::sendto(sender, PAYLOAD.as_ptr().cast(), PAYLOAD.len(), 0, to.ptr(), to.len) };
    assert_eq!(usize::try_from(n).ok(), Some(PAYLOAD.len()));
    assert!(wait_for(receiver, libc::POLLIN), "datagram arrival");
    receiver
}

/// An AF_UNIX dgram socket with one datagram from a sender bound to
/// `from` (or unbound for `None`).
fn unix_datagram(p: &mut Probe, from: Option<Family>) -> c_int {
    let (receiver, to) = p.bound(Family::UnixPath, SOCK_DGRAM);
    let sender = match from {
        Some(family) => p.bound(family, SOCK_DGRAM).0,
        None => p.sock(AF_UNIX, SOCK_DGRAM),
    };
    // SAFETY: PAYLOAD is static; to holds to.len valid bytes.
    let n = unsafe { libc::sendto(sender, PAYLOAD.as_ptr().cast(), PAYLOAD.len(), 0, to.ptr(), to.len) };
    assert_eq!(usize::try_from(n).ok(), Some(PAYLOAD.len()));
    receiver
}

type MsgPrepare = fn(&mut Probe, &mut Message) -> c_int;

pub fn recvmsg() -> Table {
    let mut cases = recv_cases(RecvOp::Recvmsg(0));
    cases.extend(recv_flag_cases(RecvOp::Recvmsg));
    let ctl = 256;
    let headers: [(&str, usize, MsgPrepare); 21] = [
        ("AF_UNIX stream, full header", ctl, |p, _| {
            unix_with_payload(p, SOCK_STREAM)
        }),
        ("UDP datagram with msg_name", ctl, |p, _| udp_datagram(p, Family::V4)),
        ("UDP6 datagram with msg_name", ctl, |p, _| udp_datagram(p, Family::V6)),
        ("UDP, msg_name NULL with msg_namelen 16", ctl, |p, m| {
            m.msg.msg_name = std::ptr::null_mut();
            m.msg.msg_namelen = 16;
            udp_datagram(p, Family::V4)
        }),
        ("AF_UNIX dgram from a path-bound sender", ctl, |p, _| {
            unix_datagram(p, Some(Family::UnixPath))
        }),
        ("AF_UNIX dgram from an abstract-bound sender", ctl, |p, _| {
            unix_datagram(p, Some(Family::UnixAbstract))
        }),
        ("AF_UNIX dgram from an unbound sender", ctl, |p, _| {
            unix_datagram(p, None)
        }),
        ("SCM_RIGHTS: one pipe end", ctl, |p, _| {
            let fd = pipe_write_end(p);
            with_rights(p, &[fd])
        }),
        ("SCM_RIGHTS: a socket and a pipe end", ctl, |p, _| {
            let sock = p.udp4();
            let fd = pipe_write_end(p);
            with_rights(p, &[sock, fd])
        }),
        ("SCM_RIGHTS: control room for no descriptor", 0, |p, m| {
            // SAFETY: CMSG_LEN(0) is a pure size computation.
            m.msg.msg_controllen = unsafe { libc::CMSG_LEN(0) } as usize;
            let fd = pipe_write_end(p);
            with_rights(p, &[fd])
        }),
        ("SCM_RIGHTS: msg_controllen 4", 4, |p, _| {
            let fd = pipe_write_end(p);
            with_rights(p, &[fd])
        }),
        ("SCM_RIGHTS: two fds, room for one", 0, |p, m| {
            // SAFETY: CMSG_SPACE is a pure size computation.
            m.msg.msg_controllen = unsafe { libc::CMSG_SPACE(4) } as usize;
            let a = pipe_write_end(p);
            let b = pipe_write_end(p);
            with_rights(p, &[a, b])
        }),
        ("SCM_RIGHTS: msg_control NULL, msg_controllen 0", 0, |p, m| {
            m.msg.msg_control = std::ptr::null_mut();
            let fd = pipe_write_end(p);
            with_rights(p, &[fd])
        }),
        ("SCM_RIGHTS: msg_control NULL, msg_controllen 64", 64, |p, m| {
            m.msg.msg_control = std::ptr::null_mut();
            let fd = pipe_write_end(p);
            with_rights(p, &[fd])
        }),
        ("SCM_RIGHTS: msg_controllen SIZE_MAX", usize::MAX, |p, _| {
            let fd = pipe_write_end(p);
            with_rights(p, &[fd])
        }),
        ("SCM_CREDENTIALS with SO_PASSCRED", ctl, |p, _| {
            let (receiver, sender) = p.pair(SOCK_DGRAM);
            let on: c_int = 1;
            // SAFETY: on is a live int of the size given.
            let rc =
                unsafe { libc::setsockopt(receiver, libc::SOL_SOCKET, libc::SO_PASSCRED, (&raw const on).cast(), 4) };
            assert_eq!(rc, 0);
            inject(sender, PAYLOAD);
            receiver
        }),
        ("msg_iovlen 0, data queued", ctl, |p, m| {
            m.msg.msg_iovlen = 0;
            unix_with_payload(p, SOCK_STREAM)
        }),
        ("msg_iov NULL, msg_iovlen 1", ctl, |p, m| {
            m.msg.msg_iov = std::ptr::null_mut();
            unix_with_payload(p, SOCK_STREAM)
        }),
        ("msg_iovlen 1025", ctl, |p, m| {
            m.msg.msg_iovlen = 1025;
            unix_with_payload(p, SOCK_STREAM)
        }),
        ("msg_iovlen SIZE_MAX", ctl, |p, m| {
            m.msg.msg_iovlen = usize::MAX;
            unix_with_payload(p, SOCK_STREAM)
        }),
        ("msg_flags garbage on input", ctl, |p, m| {
            m.msg.msg_flags = -1;
            unix_with_payload(p, SOCK_DGRAM)
        }),
    ];
    cases.extend(headers.into_iter().map(|(name, control_len, prepare)| {
        Case::new(name, move |p| {
            let mut m = Message::for_receiving(control_len);
            let fd = prepare(p, &mut m);
            recvmsg_into(p, fd, &mut m, 0);
        })
    }));
    cases.push(Case::new("SCM_RIGHTS with MSG_CMSG_CLOEXEC asked for", |p| {
        let fd = pipe_write_end(p);
        let receiver = with_rights(p, &[fd]);
        let mut m = Message::for_receiving(256);
        recvmsg_into(p, receiver, &mut m, libc::MSG_CMSG_CLOEXEC);
    }));
    cases.extend(value_cases(
        "UDP msg_namelen",
        &[0, 1, 8, 15, 16, 129, 0xFFFF_FFFF],
        |p, len: socklen_t| {
            let fd = udp_datagram(p, Family::V4);
            let mut m = Message::for_receiving(256);
            m.msg.msg_namelen = len;
            recvmsg_into(p, fd, &mut m, 0);
        },
    ));
    cases.extend(wild_cases("msg_name, UDP", &Wild::FOR_OUTPUT, |p, wild| {
        let fd = udp_datagram(p, Family::V4);
        let mut m = Message::for_receiving(256);
        m.msg.msg_name = wild.ptr();
        m.msg.msg_namelen = 16;
        recvmsg_into(p, fd, &mut m, 0);
    }));
    cases.extend(wild_cases("msg_control, SCM_RIGHTS", &Wild::FOR_OUTPUT, |p, wild| {
        let fd = pipe_write_end(p);
        let receiver = with_rights(p, &[fd]);
        let mut m = Message::for_receiving(64);
        m.msg.msg_control = wild.ptr();
        recvmsg_into(p, receiver, &mut m, 0);
    }));
    cases.extend(wild_cases("msg", &Wild::FOR_OUTPUT, |p, wild| {
        let fd = unix_with_payload(p, SOCK_STREAM);
        // SAFETY: the wild pointer only reaches the kernel, which faults on it.
        p.call(fd, |api| unsafe { (api.recvmsg)(fd, wild.ptr(), 0) });
        p.out_queued("queued after", fd);
    }));
    cases.extend(recv_bad_fds(RecvOp::Recvmsg(0)));
    Table {
        func: "ss_recvmsg",
        cases,
    }
}

/// Calls `sendmsg(fd, &m.msg, flags)` and records what `peer` received
/// (data, sender address and descriptors, via plain libc).
fn sendmsg_from(p: &mut Probe, fd: c_int, peer: Option<c_int>, m: &Message, flags: c_int) {
    // SAFETY: m is a live message whose pointers name its own buffers (or
    // deliberately invalid pointers a case put there for the kernel to reject).
    p.call(fd, |api| unsafe { (api.sendmsg)(fd, &m.msg, flags) });
    if let Some(peer) = peer {
        if arrived_after(peer, p.ret()) {
            let mut got = Message::for_receiving(256);
            // SAFETY: got is a live message naming its own buffers.
            let n = unsafe { libc::recvmsg(peer, &mut got.msg, libc::MSG_DONTWAIT) };
            p.out("peer recvmsg", n);
            observe_received(p, &got, false);
        }
        p.out_queued("peer queued after", peer);
    }
}

type SendPrepare = fn(&mut Probe, &mut Message) -> (c_int, Option<c_int>);

fn udp_to_receiver(p: &mut Probe, m: &mut Message) -> (c_int, Option<c_int>) {
    let (receiver, to) = p.bound(Family::V4, SOCK_DGRAM);
    let sender = p.udp4();
    m.name = to;
    m.msg.msg_name = m.name.mut_ptr().cast();
    m.msg.msg_namelen = m.name.len;
    (sender, Some(receiver))
}

fn stream_pair(p: &mut Probe) -> (c_int, Option<c_int>) {
    let (a, b) = p.pair(SOCK_STREAM);
    (a, Some(b))
}

pub fn sendmsg() -> Table {
    let mut cases = send_cases(SendOp::Sendmsg(0));
    cases.extend(send_flag_cases(SendOp::Sendmsg));
    let headers: [(&str, SendPrepare); 21] = [
        ("UDP with msg_name of a bound receiver", udp_to_receiver),
        ("UDP, msg_name NULL, unconnected", |p, _| (p.udp4(), None)),
        ("AF_UNIX dgram with msg_name of a path", |p, m| {
            let (receiver, to) = p.bound(Family::UnixPath, SOCK_DGRAM);
            m.name = to;
            m.msg.msg_name = m.name.mut_ptr().cast();
            m.msg.msg_namelen = to.len;
            (p.sock(AF_UNIX, SOCK_DGRAM), Some(receiver))
        }),
        ("AF_UNIX dgram with msg_name of a missing path", |p, m| {
            m.name = p.unix_addr(Family::UnixPath);
            m.msg.msg_name = m.name.mut_ptr().cast();
            m.msg.msg_namelen = m.name.len;
            (p.sock(AF_UNIX, SOCK_DGRAM), None)
        }),
        ("SCM_RIGHTS: a pipe end over AF_UNIX stream", |p, m| {
            let fd = pipe_write_end(p);
            m.set_rights(&[fd]);
            stream_pair(p)
        }),
        ("SCM_RIGHTS: two descriptors over AF_UNIX dgram", |p, m| {
            let a = pipe_write_end(p);
            let b = p.udp4();
            m.set_rights(&[a, b]);
            let (x, y) = p.pair(SOCK_DGRAM);
            (x, Some(y))
        }),
        ("SCM_RIGHTS: fd -1", |p, m| {
            m.set_rights(&[-1]);
            stream_pair(p)
        }),
        ("SCM_RIGHTS: a closed descriptor number", |p, m| {
            m.set_rights(&[reserve_fd()]);
            stream_pair(p)
        }),
        ("SCM_RIGHTS over TCP", |p, m| {
            let fd = pipe_write_end(p);
            m.set_rights(&[fd]);
            let c = p.tcp_conn();
            (c.client, Some(c.server))
        }),
        ("SCM_RIGHTS over UDP", |p, m| {
            let fd = pipe_write_end(p);
            m.set_rights(&[fd]);
            let (a, b) = p.udp_conn();
            (a, Some(b))
        }),
        ("cmsg_len beyond msg_controllen", |p, m| {
            let fd = pipe_write_end(p);
            m.set_rights(&[fd]);
            m.msg.msg_controllen -= 8;
            stream_pair(p)
        }),
        ("cmsg_len below the header size", |p, m| {
            let fd = pipe_write_end(p);
            m.set_rights(&[fd]);
            // SAFETY: set_rights placed a header at the start of the aligned control buffer.
            unsafe { (*m.msg.msg_control.cast::<cmsghdr>()).cmsg_len = 4 };
            stream_pair(p)
        }),
        ("msg_controllen SIZE_MAX", |p, m| {
            let fd = pipe_write_end(p);
            m.set_rights(&[fd]);
            m.msg.msg_controllen = usize::MAX;
            stream_pair(p)
        }),
        ("msg_control NULL, msg_controllen 24", |p, m| {
            m.msg.msg_control = std::ptr::null_mut();
            m.msg.msg_controllen = 24;
            stream_pair(p)
        }),
        ("SCM_CREDENTIALS with own pid, uid, gid", |p, m| {
            let creds = own_credentials(None);
            m.set_control(libc::SOL_SOCKET, libc::SCM_CREDENTIALS, &creds);
            let (a, b) = p.pair(SOCK_DGRAM);
            (a, Some(b))
        }),
        ("SCM_CREDENTIALS with pid 1", |p, m| {
            let creds = own_credentials(Some(1));
            m.set_control(libc::SOL_SOCKET, libc::SCM_CREDENTIALS, &creds);
            let (a, b) = p.pair(SOCK_DGRAM);
            (a, Some(b))
        }),
        ("msg_iovlen 0 on a stream", |p, m| {
            m.msg.msg_iovlen = 0;
            stream_pair(p)
        }),
        ("msg_iov NULL, msg_iovlen 1", |p, m| {
            m.msg.msg_iov = std::ptr::null_mut();
            stream_pair(p)
        }),
        ("msg_iovlen 1025", |p, m| {
            m.msg.msg_iovlen = 1025;
            stream_pair(p)
        }),
        ("msg_iovlen SIZE_MAX", |p, m| {
            m.msg.msg_iovlen = usize::MAX;
            stream_pair(p)
        }),
        ("msg_flags garbage on input", |p, m| {
            m.msg.msg_flags = -1;
            stream_pair(p)
        }),
    ];
    cases.extend(headers.into_iter().map(|(name, prepare)| {
        Case::new(name, move |p| {
            let mut m = Message::for_sending();
            let (fd, peer) = prepare(p, &mut m);
            sendmsg_from(p, fd, peer, &m, 0);
        })
    }));
    cases.extend(value_cases("UDP msg_namelen", &ADDR_LENS, |p, len| {
        let mut m = Message::for_sending();
        let (fd, peer) = udp_to_receiver(p, &mut m);
        m.msg.msg_namelen = len;
        sendmsg_from(p, fd, peer, &m, 0);
    }));
    cases.extend(wild_cases("msg_name, UDP", &Wild::FOR_INPUT, |p, wild| {
        let mut m = Message::for_sending();
        m.msg.msg_name = wild.ptr();
        m.msg.msg_namelen = 16;
        let fd = p.udp4();
        sendmsg_from(p, fd, None, &m, 0);
    }));
    cases.extend(wild_cases("msg_control", &Wild::FOR_INPUT, |p, wild| {
        let mut m = Message::for_sending();
        m.msg.msg_control = wild.ptr();
        m.msg.msg_controllen = 24;
        let (fd, peer) = stream_pair(p);
        sendmsg_from(p, fd, peer, &m, 0);
    }));
    cases.extend(wild_cases("msg", &Wild::FOR_INPUT, |p, wild| {
        let (fd, peer) = stream_pair(p);
        // SAFETY: the wild pointer only reaches the kernel, which faults on it.
        p.call(fd, |api| unsafe { (api.sendmsg)(fd, wild.ptr(), 0) });
        p.out_queued("peer queued after", peer.expect("pair"));
    }));
    cases.extend(send_bad_fds(SendOp::Sendmsg(0)));
    Table {
        func: "ss_sendmsg",
        cases,
    }
}

/// A `struct ucred` of this process as bytes, with `pid` overridden.
fn own_credentials(pid: Option<libc::pid_t>) -> Vec<u8> {
    // SAFETY: getpid/getuid/getgid take no arguments and cannot fail.
    let (own_pid, uid, gid) = unsafe { (libc::getpid(), libc::getuid(), libc::getgid()) };
    [
        pid.unwrap_or(own_pid).to_ne_bytes(),
        uid.to_ne_bytes(),
        gid.to_ne_bytes(),
    ]
    .concat()
}

/// Calls `recvfrom` into a 64-byte buffer and an address buffer with
/// `*addrlen = len`; records data, address, length and what is queued.
fn recvfrom_into(p: &mut Probe, fd: c_int, len: socklen_t) {
    let mut buf = [PATTERN; 64];
    let mut addr = RawAddr::pattern();
    let mut addrlen = len;
    // SAFETY: buf and addr are live buffers (64 and 256 bytes); the kernel
    // writes at most 128 address bytes whatever addrlen says.
    p.call(fd, |api| unsafe {
        (api.recvfrom)(fd, buf.as_mut_ptr().cast(), buf.len(), 0, addr.mut_ptr(), &mut addrlen)
    });
    let used = buf.iter().rposition(|&b| b != PATTERN).map_or(0, |i| i + 1);
    p.out("data", escape(&buf[..used]));
    p.out_addr("src_addr", &addr, addrlen);
    p.out_queued("queued after", fd);
}

pub fn recvfrom() -> Table {
    let mut cases = recv_cases(RecvOp::Recvfrom(0));
    cases.extend(recv_flag_cases(RecvOp::Recvfrom));
    type Prepare = fn(&mut Probe) -> c_int;
    let sources: [(&str, Prepare); 7] = [
        ("UDP datagram", |p| udp_datagram(p, Family::V4)),
        ("UDP6 datagram", |p| udp_datagram(p, Family::V6)),
        ("AF_UNIX dgram from a path-bound sender", |p| {
            unix_datagram(p, Some(Family::UnixPath))
        }),
        ("AF_UNIX dgram from an abstract-bound sender", |p| {
            unix_datagram(p, Some(Family::UnixAbstract))
        }),
        ("AF_UNIX dgram from an unbound sender", |p| unix_datagram(p, None)),
        ("connected TCP", crate::transfer::tcp_with_payload),
        ("AF_UNIX stream", |p| unix_with_payload(p, SOCK_STREAM)),
    ];
    cases.extend(sources.into_iter().map(|(name, prepare)| {
        Case::new(format!("{name}, address buffer"), move |p| {
            let fd = prepare(p);
            recvfrom_into(p, fd, 128);
        })
    }));
    cases.push(Case::new("UDP, address NULL, addrlen 16", |p| {
        let fd = udp_datagram(p, Family::V4);
        let mut buf = [PATTERN; 64];
        let mut addrlen: socklen_t = 16;
        // SAFETY: buf and addrlen are live; the address is NULL.
        p.call(fd, |api| unsafe {
            (api.recvfrom)(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                std::ptr::null_mut(),
                &mut addrlen,
            )
        });
        p.out("addrlen", addrlen);
    }));
    cases.push(Case::new("UDP, address buffer, addrlen NULL", |p| {
        let fd = udp_datagram(p, Family::V4);
        let mut buf = [PATTERN; 64];
        let mut addr = RawAddr::pattern();
        // SAFETY: buf and addr are live; the length pointer is NULL.
        p.call(fd, |api| unsafe {
            (api.recvfrom)(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                addr.mut_ptr(),
                std::ptr::null_mut(),
            )
        });
        p.out_addr("src_addr", &addr, 0);
        p.out_queued("queued after", fd);
    }));
    cases.extend(value_cases("UDP *addrlen", &ADDR_LENS, |p, len| {
        let fd = udp_datagram(p, Family::V4);
        recvfrom_into(p, fd, len);
    }));
    cases.extend(wild_cases("src_addr, UDP", &Wild::FOR_OUTPUT, |p, wild| {
        let fd = udp_datagram(p, Family::V4);
        let mut buf = [PATTERN; 64];
        let mut addrlen: socklen_t = 128;
        // SAFETY: buf and addrlen are live; the wild pointer only reaches the kernel.
        p.call(fd, |api| unsafe {
            (api.recvfrom)(fd, buf.as_mut_ptr().cast(), buf.len(), 0, wild.ptr(), &mut addrlen)
        });
        p.out("addrlen", addrlen);
        p.out_queued("queued after", fd);
    }));
    cases.extend(wild_cases("addrlen pointer, UDP", &Wild::FOR_OUTPUT, |p, wild| {
        let fd = udp_datagram(p, Family::V4);
        let mut buf = [PATTERN; 64];
        let mut addr = RawAddr::pattern();
        // SAFETY: buf and addr are live; the wild pointer only reaches the kernel.
        p.call(fd, |api| unsafe {
            (api.recvfrom)(fd, buf.as_mut_ptr().cast(), buf.len(), 0, addr.mut_ptr(), wild.ptr())
        });
        p.out_addr("src_addr", &addr, 0);
        p.out_queued("queued after", fd);
    }));
    cases.extend(recv_bad_fds(RecvOp::Recvfrom(0)));
    Table {
        func: "ss_recvfrom",
        cases,
    }
}

/// Calls `sendto` with [`PAYLOAD`] and `dest` (length `len`), then records
/// what `receiver` got and from which address.
fn sendto_from(p: &mut Probe, fd: c_int, dest: &RawAddr, len: socklen_t, receiver: Option<c_int>) {
    // SAFETY: PAYLOAD is static; dest is a 256-byte buffer, so every length
    // up to 256 is readable and larger ones are rejected before reading.
    p.call(fd, |api| unsafe {
        (api.sendto)(fd, PAYLOAD.as_ptr().cast(), PAYLOAD.len(), 0, dest.ptr(), len)
    });
    if let Some(receiver) = receiver {
        if arrived_after(receiver, p.ret()) {
            let mut buf = [0u8; 64];
            let mut from = RawAddr::pattern();
            let mut from_len: socklen_t = 128;
            // SAFETY: all three are live buffers of the sizes given.
            let n = unsafe {
                libc::recvfrom(
                    receiver,
                    buf.as_mut_ptr().cast(),
                    64,
                    libc::MSG_DONTWAIT,
                    from.mut_ptr(),
                    &mut from_len,
                )
            };
            let data =
                usize::try_from(n).map_or_else(|_| format!("errno {}", crate::common::errno()), |n| escape(&buf[..n]));
            p.out("receiver got", data);
            p.out_addr("receiver saw source", &from, from_len);
            if from_len > 0 && is_sockname(fd, &from) {
                p.out("source is the sender", true);
            }
        }
        p.out_queued("receiver queued after", receiver);
    }
    p.out_sockopt("SO_ERROR after", fd, libc::SOL_SOCKET, libc::SO_ERROR);
}

/// Whether `addr` is `fd`'s own address (ports included).
fn is_sockname(fd: c_int, addr: &RawAddr) -> bool {
    let own = sockname(fd);
    let n = own.len as usize;
    own.bytes[..n.min(8)] == addr.bytes[..n.min(8)]
}

type DestPrepare = fn(&mut Probe) -> (c_int, RawAddr, Option<c_int>);

fn udp_dest(p: &mut Probe) -> (c_int, RawAddr, Option<c_int>) {
    let (receiver, to) = p.bound(Family::V4, SOCK_DGRAM);
    (p.udp4(), to, Some(receiver))
}

pub fn sendto() -> Table {
    let mut cases = send_cases(SendOp::Sendto(0));
    cases.extend(send_flag_cases(SendOp::Sendto));
    let dests: [(&str, DestPrepare); 14] = [
        ("UDP to a bound receiver", udp_dest),
        ("UDP6 to a bound receiver", |p| {
            let (receiver, to) = p.bound(Family::V6, SOCK_DGRAM);
            (p.sock(libc::AF_INET6, SOCK_DGRAM), to, Some(receiver))
        }),
        ("UDP to an AF_INET6 address", |p| {
            (p.udp4(), RawAddr::v6(Ipv6Addr::LOCALHOST, 9), None)
        }),
        ("UDP to an AF_UNSPEC address", |p| {
            let (receiver, to) = p.bound(Family::V4, SOCK_DGRAM);
            (p.udp4(), to.with_family(libc::AF_UNSPEC), Some(receiver))
        }),
        ("UDP to port 0", |p| (p.udp4(), RawAddr::v4([127, 0, 0, 1], 0), None)),
        ("UDP to a closed port", |p| {
            let (fd, to) = p.bound(Family::V4, SOCK_DGRAM);
            p.close_now(fd);
            (p.udp4(), to, None)
        }),
        ("connected TCP with a destination", |p| {
            let c = p.tcp_conn();
            (c.client, RawAddr::v4([127, 0, 0, 1], 9), None)
        }),
        ("unconnected TCP with a destination", |p| {
            let (_, to) = p.listener(Family::V4, SOCK_STREAM);
            (p.tcp4(), to, None)
        }),
        ("AF_UNIX dgram to a path", |p| {
            let (receiver, to) = p.bound(Family::UnixPath, SOCK_DGRAM);
            (p.sock(AF_UNIX, SOCK_DGRAM), to, Some(receiver))
        }),
        ("AF_UNIX dgram to an abstract name", |p| {
            let (receiver, to) = p.bound(Family::UnixAbstract, SOCK_DGRAM);
            (p.sock(AF_UNIX, SOCK_DGRAM), to, Some(receiver))
        }),
        ("AF_UNIX dgram to a missing path", |p| {
            let to = p.unix_addr(Family::UnixPath);
            (p.sock(AF_UNIX, SOCK_DGRAM), to, None)
        }),
        ("AF_UNIX dgram to a stream socket's path", |p| {
            let (_, to) = p.listener(Family::UnixPath, SOCK_STREAM);
            (p.sock(AF_UNIX, SOCK_DGRAM), to, None)
        }),
        ("AF_UNIX connected stream with a destination", |p| {
            let (a, _) = p.pair(SOCK_STREAM);
            let to = p.unix_addr(Family::UnixPath);
            (a, to, None)
        }),
        ("AF_UNIX dgram with an AF_INET destination", |p| {
            (p.sock(AF_UNIX, SOCK_DGRAM), RawAddr::v4([127, 0, 0, 1], 9), None)
        }),
    ];
    cases.extend(dests.into_iter().map(|(name, prepare)| {
        Case::new(name, move |p| {
            let (fd, to, receiver) = prepare(p);
            sendto_from(p, fd, &to, to.len, receiver);
        })
    }));
    cases.push(Case::new("UDP dest NULL with addrlen 16, connected", |p| {
        let (a, b) = p.udp_conn();
        // SAFETY: PAYLOAD is static; a NULL destination is allowed.
        p.call(a, |api| unsafe {
            (api.sendto)(a, PAYLOAD.as_ptr().cast(), PAYLOAD.len(), 0, std::ptr::null(), 16)
        });
        p.out_arrived_from("peer received", a, b, p.ret());
    }));
    cases.extend(value_cases("UDP addrlen", &ADDR_LENS, |p, len| {
        let (fd, to, receiver) = udp_dest(p);
        sendto_from(p, fd, &to, len, receiver);
    }));
    cases.extend(wild_cases("dest_addr, UDP", &Wild::FOR_INPUT, |p, wild| {
        let fd = p.udp4();
        // SAFETY: PAYLOAD is static; the wild pointer only reaches the kernel.
        p.call(fd, |api| unsafe {
            (api.sendto)(fd, PAYLOAD.as_ptr().cast(), PAYLOAD.len(), 0, wild.ptr(), 16)
        });
    }));
    cases.extend(send_bad_fds(SendOp::Sendto(0)));
    Table {
        func: "ss_sendto",
        cases,
    }
}
