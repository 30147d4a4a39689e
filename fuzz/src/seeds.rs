//! The committed seed corpus, written by `examples/write_seeds.rs`
//! (`cargo run --example write_seeds` in `fuzz/`): small hand-made inputs
//! that reach each function and the interesting states quickly (a
//! connection accepted, data waiting, a double close, a number reused by
//! plain code, descriptors passed with SCM_RIGHTS ...). The fuzzer starts
//! from these and from what earlier runs found.

use crate::calls::ops::{AddrIn, AddrOut, Buf, Iov, Named, Place, code};
use crate::input::Seed;

/// Descriptor choices (see `calls::world::RESOURCES`).
mod fd {
    pub const L: u8 = 0;
    pub const C1: u8 = 1;
    pub const S1: u8 = 2;
    pub const T4: u8 = 4;
    pub const T6: u8 = 5;
    pub const U1: u8 = 6;
    pub const U2: u8 = 7;
    pub const US0: u8 = 9;
    pub const US1: u8 = 10;
    pub const UD0: u8 = 11;
    pub const UD1: u8 = 12;
    pub const UQ0: u8 = 13;
    pub const UL: u8 = 15;
    pub const P0: u8 = 17;
    pub const P1: u8 = 18;
    pub const F: u8 = 19;
    pub const X: u8 = 20;
    pub const MINUS_ONE: u8 = 21;
    /// The first descriptor a call made.
    pub const NEW0: u8 = 128;
}

fn start(offset: u8, len: usize) -> Buf {
    Buf::Start { offset, len }
}

fn valid_out(seed: Seed, len: u32) -> Seed {
    AddrOut::encode_valid(seed, len)
}

fn named(seed: Seed, which: Named) -> Seed {
    AddrIn::encode_named(seed, which)
}

/// A message header: valid header, no name, one iovec, the control data
/// given as its raw selector bytes, natural lengths.
fn msg(seed: Seed, entry: Buf, ctrl: &[u8]) -> Seed {
    let seed = seed.byte(Place::Valid.code()).bytes(&[0, 0]); // header; name: NULL, length 0
    let seed = Iov::encode(seed, Place::Valid, 1, &[entry]);
    seed.byte(0xfe).bytes(ctrl).byte(0xfe).byte(0) // iovlen natural, ctrl, ctrl_len natural, flags 0
}

/// Seeds for the `calls` target: (name, input, number of calls it decodes to).
pub fn calls() -> Vec<(&'static str, Vec<u8>, usize)> {
    let s = Seed::new;
    let mut v: Vec<(&'static str, Seed, usize)> = vec![
        ("socket-tcp", s().bytes(&[code::SOCKET, 0, 0, 0, 0]), 1),
        ("socket-bad-domain", s().bytes(&[code::SOCKET, 4, 0, 0, 0]), 1),
        ("socket-bad-flags", s().bytes(&[code::SOCKET, 0, 0, 2, 0]), 1),
        (
            "socketpair-unix",
            s().bytes(&[code::SOCKETPAIR, 2, 0, 0, 0, Place::Valid.code()]),
            1,
        ),
        (
            "socketpair-kernel-sv",
            s().bytes(&[code::SOCKETPAIR, 2, 1, 0, 0, Place::Kernel.code()]),
            1,
        ),
        (
            "socketpair-short-sv",
            s().bytes(&[code::SOCKETPAIR, 2, 0, 0, 0, Place::Tail(4).code()]),
            1,
        ),
        (
            "connect-accept",
            {
                let x = named(s().bytes(&[code::CONNECT, fd::T4]), Named::Listener);
                valid_out(x.bytes(&[code::ACCEPT, fd::L]), 128)
            },
            2,
        ),
        (
            "bind-listen-getsockname",
            {
                let x = named(s().bytes(&[code::BIND, fd::T4]), Named::Any4);
                valid_out(x.bytes(&[code::LISTEN, fd::T4, 2, code::GETSOCKNAME, fd::T4]), 128)
            },
            3,
        ),
        (
            "bind-v6-listen",
            named(s().bytes(&[code::BIND, fd::T6]), Named::Any6).bytes(&[code::LISTEN, fd::T6, 1]),
            2,
        ),
        (
            "send-recv-read",
            {
                let x = start(0, 64).encode(s().bytes(&[code::SEND, fd::C1])).byte(0);
                let x = start(8, 128).encode(x.bytes(&[code::RECV, fd::S1])).byte(1);
                start(16, 256).encode(x.bytes(&[code::READ, fd::S1]))
            },
            3,
        ),
        ("close-twice", s().bytes(&[code::CLOSE, fd::C1, code::CLOSE, fd::C1]), 2),
        ("close-closed-number", s().bytes(&[code::CLOSE, fd::X]), 1),
        ("close-minus-one", s().bytes(&[code::CLOSE, fd::MINUS_ONE]), 1),
        (
            "ss-close-then-plain-pipe-reuses-number",
            s().bytes(&[
                code::CLOSE,
                fd::US0,
                code::PLAIN_PIPE,
                code::CLOSE,
                fd::NEW0,
                code::CLOSE,
                fd::NEW0,
            ]),
            4,
        ),
        (
            "write-pipe-without-reader",
            start(0, 16).encode(s().bytes(&[code::CLOSE, fd::P0, code::WRITE, fd::P1])),
            2,
        ),
        (
            "write-huge-pipe-without-reader",
            Buf::Huge {
                offset: 0,
                count: 0x8000_0000,
            }
            .encode(s().bytes(&[code::CLOSE, fd::P0, code::WRITE, fd::P1])),
            2,
        ),
        (
            "write-to-closed-peer",
            {
                let x = start(0, 16).encode(s().bytes(&[code::CLOSE, fd::S1, code::WRITE, fd::C1]));
                start(0, 16).encode(x.bytes(&[code::WRITE, fd::C1]))
            },
            3,
        ),
        (
            "send-after-shutdown",
            start(0, 8)
                .encode(s().bytes(&[code::SHUTDOWN, fd::US0, 1, code::SEND, fd::US0]))
                .byte(0),
            2,
        ),
        (
            "writev-empty-buffer",
            Iov::encode(s().bytes(&[code::WRITEV, fd::US0]), Place::Valid, 1, &[Buf::Null(0)]),
            1,
        ),
        (
            "readv-iov-max",
            Iov::encode(
                s().bytes(&[code::READV, fd::US1]),
                Place::Valid,
                1024,
                &[start(0, 4), start(1, 1)],
            ),
            1,
        ),
        (
            "readv-over-iov-max",
            Iov::encode(s().bytes(&[code::READV, fd::US1]), Place::Valid, 1025, &[start(0, 4)]),
            1,
        ),
        (
            "sendmsg-rights-recvmsg",
            {
                let x = msg(s().bytes(&[code::SENDMSG, fd::US0]), start(0, 1), &[2, 0, fd::P0]).byte(0);
                msg(x.bytes(&[code::RECVMSG, fd::US1]), start(16, 256), &[3]).byte(0)
            },
            2,
        ),
        (
            "sendmsg-creds-dgram",
            {
                let x = msg(s().bytes(&[code::SENDMSG, fd::UD0]), start(0, 10), &[3]).byte(0);
                msg(x.bytes(&[code::RECVMSG, fd::UD1]), start(16, 256), &[3]).byte(0)
            },
            2,
        ),
        (
            "sendmsg-wild-header",
            s().bytes(&[code::SENDMSG, fd::US0, Place::Kernel.code(), 0, 0]),
            1,
        ),
        (
            "recvfrom-udp",
            valid_out(start(0, 128).encode(s().bytes(&[code::RECVFROM, fd::U1])).byte(0), 128),
            1,
        ),
        (
            "sendto-udp-then-recvfrom",
            {
                let x = named(
                    start(0, 32).encode(s().bytes(&[code::SENDTO, fd::U2])).byte(0),
                    Named::Udp1,
                );
                valid_out(start(0, 64).encode(x.bytes(&[code::RECVFROM, fd::U1])).byte(0), 16)
            },
            2,
        ),
        (
            "sendto-dead-port",
            named(
                start(0, 32).encode(s().bytes(&[code::SENDTO, fd::U2])).byte(0),
                Named::Dead,
            ),
            1,
        ),
        (
            "getsockopt-so-error",
            valid_out(
                start(0, 4).encode(s().bytes(&[code::GETSOCKOPT, fd::C1, 0, libc::SO_ERROR as u8])),
                4,
            ),
            1,
        ),
        (
            "getsockopt-short-len",
            valid_out(
                start(0, 4).encode(s().bytes(&[code::GETSOCKOPT, fd::C1, 0, libc::SO_TYPE as u8])),
                2,
            ),
            1,
        ),
        (
            "setsockopt-reuseaddr",
            start(0, 4)
                .encode(s().bytes(&[code::SETSOCKOPT, fd::T4, 0, libc::SO_REUSEADDR as u8]))
                .blob(&[1, 0, 0, 0])
                .byte(0xfe),
            1,
        ),
        ("shutdown-bad-how", s().bytes(&[code::SHUTDOWN, fd::C1, 3]), 1),
        (
            "accept4-bad-flags",
            valid_out(s().bytes(&[code::ACCEPT4, fd::L]), 16).byte(4),
            1,
        ),
        ("accept-unix", valid_out(s().bytes(&[code::ACCEPT, fd::UL]), 110), 1),
        (
            "getpeername-short",
            valid_out(s().bytes(&[code::GETPEERNAME, fd::C1]), 4),
            1,
        ),
        (
            "tcp-listen-and-connect",
            s().bytes(&[code::TCP_LISTEN, 0, 2, code::TCP_CONNECT, 2, 0]),
            2,
        ),
        (
            "tcp-listen-malformed",
            s().bytes(&[code::TCP_LISTEN, 7, 2, code::TCP_LISTEN, 9, 2]),
            2,
        ),
        ("tcp-connect-refused", s().bytes(&[code::TCP_CONNECT, 3, 1]), 1),
        ("udp-bind", s().bytes(&[code::UDP_BIND, 0, code::UDP_BIND, 2]), 2),
        (
            "send-all-recv-exact",
            {
                let x = start(0, 100).encode(s().bytes(&[code::SEND_ALL, fd::UQ0]));
                start(0, 200).encode(x.bytes(&[code::RECV_EXACT, fd::US1]))
            },
            2,
        ),
        (
            "local-port-tcp-state",
            s().bytes(&[
                code::LOCAL_PORT,
                fd::L,
                code::LOCAL_PORT,
                fd::US0,
                code::TCP_STATE,
                fd::C1,
                code::TCP_STATE,
                fd::US0,
            ]),
            4,
        ),
        (
            "plain-dup-plain-close",
            s().bytes(&[
                code::PLAIN_DUP,
                fd::C1,
                code::PLAIN_CLOSE,
                fd::NEW0,
                code::CLOSE,
                fd::NEW0,
            ]),
            3,
        ),
        (
            "stale-kind-write",
            start(0, 8).encode(s().bytes(&[
                code::PLAIN_CLOSE,
                fd::U2,
                code::PLAIN_DUP,
                fd::US0,
                code::WRITE,
                fd::NEW0,
            ])),
            3,
        ),
        ("read-file", start(0, 300).encode(s().bytes(&[code::READ, fd::F])), 1),
        (
            "write-then-read-file",
            {
                let x = start(0, 100).encode(s().bytes(&[code::WRITE, fd::F]));
                start(0, 300).encode(x.bytes(&[code::READ, fd::F]))
            },
            2,
        ),
        (
            "read-into-guard",
            Buf::Short(200).encode(s().bytes(&[code::READ, fd::S1])),
            1,
        ),
        (
            "recv-errqueue",
            start(0, 64).encode(s().bytes(&[code::RECV, fd::C1])).byte(5),
            1,
        ),
        (
            "unix-socket-connect-accept",
            {
                let x = named(
                    s().bytes(&[code::SOCKET, 2, 0, 0, 0, code::CONNECT, fd::NEW0]),
                    Named::UnixListener,
                );
                valid_out(x.bytes(&[code::ACCEPT, fd::UL]), 110)
            },
            3,
        ),
        (
            "bind-raw-v6",
            s().bytes(&[code::BIND, fd::T6, 5, 1]).blob(&[0; 26]).bytes(&[0, 0xfe]),
            1,
        ),
        (
            "connect-unspec-disconnect",
            named(s().bytes(&[code::CONNECT, fd::U1]), Named::Unspec),
            1,
        ),
        (
            "send-from-read-only",
            Buf::ReadOnly(64).encode(s().bytes(&[code::SEND, fd::US0])).byte(0),
            1,
        ),
        (
            "write-kernel-pointer",
            Buf::Kernel(64).encode(s().bytes(&[code::WRITE, fd::US0])),
            1,
        ),
    ];
    v.drain(..).map(|(n, seed, ops)| (n, seed.finish(), ops)).collect()
}

/// Seeds for the `addr` target.
pub fn addr() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for (i, text) in [
        "127.0.0.1:8080",
        "0.0.0.0:0",
        "255.255.255.255:65535",
        "[::1]:80",
        "[::]:0",
        "[fe80::1%lo]:22",
        "[fe80::1%1]:22",
        "[::ffff:1.2.3.4]:80",
        "unix:/tmp/x.sock",
        "unix:@abstract",
        "unix:@",
        "unix:",
        "unix:\\x40at",
        "unix:a\\\\b",
        "unix:@\\x00\\x01",
        "1.2.3.4",
        "1.2.3.4:65536",
        "[::1]",
        "::1:80",
        "localhost:80",
        ":80",
        "unix:\\x4",
        "[fe80::1%]:1",
    ]
    .iter()
    .enumerate()
    {
        v.push((format!("text-{i:02}"), [&[0u8][..], text.as_bytes()].concat()));
    }
    // Bytes: selector 1, family index, length selector, mapped selector, body.
    for (i, (family, len, body)) in [
        (0u8, 6u8, vec![0x1f, 0x90, 127, 0, 0, 1]),
        (
            1,
            10,
            vec![0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
        ),
        (2, 14, b"/tmp/sock".to_vec()),
        (2, 14, b"\0abstract".to_vec()),
        (2, 2, vec![]),
        (3, 6, vec![]),
        (4, 6, vec![1, 2, 3]),
        (0, 4, vec![0x1f, 0x90, 127, 0, 0, 1]),
        (2, 16, vec![b'a'; 108]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut b = vec![1u8, family, len, 0];
        b.extend_from_slice(&body);
        v.push((format!("bytes-{i:02}"), b));
    }
    v
}

/// Seeds for the `messages` target.
pub fn messages() -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    // Calls: kind selector 2, descriptor choice, op, count, flags, pointers, op arguments.
    for (i, body) in [
        vec![2u8, 3, 19],                    // ss_close of a number ss_close closed
        vec![2, 0, 0, 0, 0, 1, 1, 0, 0],     // ss_bind(-1, ...)
        vec![2, 6, 1, 0, 0, 1, 1, 0, 0, 16], // ss_connect(tcp) to the dead port
        vec![2, 8, 4, 0, 0, 1, 1],           // ss_accept on the listener: EAGAIN
        vec![2, 4, 9, 2, 0, 1, 1],           // ss_send on a pipe: ENOTSOCK
        vec![2, 7, 2, 2, 0, 1, 1, 0, 0, 16], // ss_sendto on udp
        vec![2, 5, 17, 0, 0, 4, 4, 0, 4],    // ss_getsockopt with kernel pointers
        vec![2, 6, 20, 0, 0, 0, 0, 3, 2, 0], // ss_socket(-1, ...)
        vec![2, 1, 11, 0, 0, 1, 1, 3],       // ss_writev with iovcnt 1025
    ]
    .into_iter()
    .enumerate()
    {
        v.push((format!("call-{i:02}"), body));
    }
    for (i, text) in [
        "127.0.0.1:0",
        "[::1]:0",
        "localhost:0",
        "nonsense",
        "unix:/x",
        "1.2.3.4",
        "[::1",
        "",
    ]
    .iter()
    .enumerate()
    {
        for which in 0..4u8 {
            let mut b = vec![1u8, which];
            b.extend_from_slice(text.as_bytes());
            v.push((format!("text-{i:02}-{which}"), b));
        }
    }
    v.push(("names".to_owned(), vec![0, 111, 0, 0, 0, 0, 6, 0, 0, 0]));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_seeds_decode_to_the_calls_meant() {
        for (name, bytes, ops) in calls() {
            let decoded = crate::calls::ops::decode(&bytes);
            assert_eq!(decoded.len(), ops, "{name}: {decoded:?}");
        }
    }
}
