//! Stress: many loopback TCP connections moving length-prefixed messages both
//! ways at once through the `ss_` functions, every byte verified.
//!
//! Each connection has a client and a server endpoint, and each endpoint a
//! writer and a reader thread (full duplex, so no send can wait on a reader
//! that is itself waiting to send). A message is a 4-byte little-endian
//! length and a payload of 0..=64 KiB. The writer sends even messages with
//! one `ss_send_all` of header and payload, odd ones with one gathering
//! `ss_writev` of the two (looping over short writes); the reader takes
//! messages `4k, 4k+1` with `ss_recv_exact` (header, then payload) and
//! `4k+2, 4k+3` with a scattering `ss_readv` into header and payload
//! (looping over short reads), so every writer/reader pairing occurs. Both
//! ends generate the same stream from a per-direction xorshift seed, so the
//! reader compares every payload byte with what must have been sent, and
//! keeps a checksum of everything it received, which must equal the one the
//! writer sends in a trailer after the last message; then the writer shuts
//! down writing and the reader must see end of stream.
//!
//! The whole run has a deadline: a watchdog shuts every socket down when it
//! passes (or when any thread fails), so blocked calls return and the test
//! fails with the first cause instead of hanging. Afterwards the process must
//! have exactly the descriptors it had before; the tests of this binary take
//! one lock, so none of them opens a descriptor while another counts.
//!
//! Scale ([`Scale`]): the default run is 64 connections × 200 messages each
//! way; the full run (64 × 2000, about 4 GiB each way) is ignored by default:
//! `cargo test --release --test stress -- --ignored --nocapture`.
//! `SAFESOCK_STRESS_MESSAGES` (and `SAFESOCK_STRESS_CONNECTIONS`) override
//! the size of either. With valgrind installed, a third test runs this binary
//! again under `valgrind --track-fds=yes --leak-check=full` at 4 × 20 and
//! requires a clean report.

#![deny(clippy::undocumented_unsafe_blocks)]

mod common;

use std::collections::BTreeMap;
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use libc::iovec;
use safesock::ffi;

use common::{
    Rng, TempFile, errno, errno_name, last_error, only_test_args, panic_text, tcp_connect, tcp_listen, try_set_timeouts,
};

// ---------------------------------------------------------------------------
// Scale
// ---------------------------------------------------------------------------

/// Messages each way per connection (overrides the run's default).
const MESSAGES_ENV: &str = "SAFESOCK_STRESS_MESSAGES";
/// Connections (overrides the run's default).
const CONNECTIONS_ENV: &str = "SAFESOCK_STRESS_CONNECTIONS";
/// Set in the copy of this binary that runs under valgrind.
const VALGRIND_CHILD_ENV: &str = "SAFESOCK_STRESS_VALGRIND_CHILD";

/// How big a run is.
#[derive(Clone, Copy, Debug)]
struct Scale {
    connections: usize,
    messages: usize,
    /// The whole run must end by then.
    deadline: Duration,
}

impl Scale {
    /// What plain `cargo test` runs: a few seconds in a debug build.
    const DEFAULT: Scale = Scale {
        connections: 64,
        messages: 200,
        deadline: Duration::from_secs(180),
    };
    /// The full size of the issue (about 4 GiB each way).
    const FULL: Scale = Scale {
        connections: 64,
        messages: 2000,
        deadline: Duration::from_secs(600),
    };
    /// What runs under valgrind.
    const VALGRIND: Scale = Scale {
        connections: 4,
        messages: 20,
        deadline: Duration::from_secs(600),
    };

    /// This scale with the environment's overrides applied.
    fn with_env_overrides(self) -> Scale {
        let read = |name: &str, default: usize| match std::env::var(name) {
            Ok(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or_else(|| panic!("{name}={text:?}: expected a positive number")),
            Err(_) => default,
        };
        Scale {
            connections: read(CONNECTIONS_ENV, self.connections),
            messages: read(MESSAGES_ENV, self.messages),
            ..self
        }
    }
}

/// The largest payload.
const MAX_PAYLOAD: usize = 64 << 10;
/// The random bytes payloads are cut from.
const POOL: usize = 2 * MAX_PAYLOAD;
/// The header value that marks the trailer instead of a message.
const TRAILER_MARK: u32 = u32::MAX;
/// A second net under the watchdog: one call that waits this long fails the run.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// The message stream both ends generate
// ---------------------------------------------------------------------------

/// Which way a stream flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// A byte buffer on 16-byte-aligned storage, so that [`Checksum`] can take
/// it 16 bytes a step even in a debug build.
struct Buffer(Vec<u128>);

impl Buffer {
    fn new(len: usize) -> Buffer {
        Buffer(vec![0; len.div_ceil(16)])
    }

    fn bytes(&self, len: usize) -> &[u8] {
        assert!(len <= 16 * self.0.len());
        // SAFETY: the storage holds 16 * words initialised bytes, any bit
        // pattern is a valid u8, and the borrow of `self` keeps it alive.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().cast(), len) }
    }

    fn bytes_mut(&mut self, len: usize) -> &mut [u8] {
        assert!(len <= 16 * self.0.len());
        // SAFETY: as in `bytes`; the exclusive borrow of `self` makes the view unique.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast(), len) }
    }
}

/// The messages of one direction of one connection, generated identically
/// by the writer and the reader: a payload is a random cut of a random pool
/// with its first 8 bytes replaced by the message number, so a lost,
/// repeated or reordered message cannot match.
struct Messages {
    rng: Rng,
    pool: Vec<u8>,
    payload: Buffer,
    stamp: u64,
}

impl Messages {
    fn new(connection: usize, direction: Direction) -> Messages {
        let seed = 0x5afe_50c4_0000_0000 ^ ((connection as u64) << 8) ^ direction as u64;
        let mut rng = Rng::new(seed);
        let mut pool = vec![0u8; POOL];
        rng.fill(&mut pool);
        Messages {
            rng,
            pool,
            payload: Buffer::new(MAX_PAYLOAD),
            stamp: seed.rotate_left(17),
        }
    }

    /// The payload of message `index` (messages are generated in order).
    fn next(&mut self, index: usize) -> &[u8] {
        let len = self.rng.below(MAX_PAYLOAD as u64 + 1) as usize;
        let start = self.rng.below((POOL - len) as u64 + 1) as usize;
        let payload = self.payload.bytes_mut(len);
        payload.copy_from_slice(&self.pool[start..start + len]);
        let stamp = (self.stamp ^ index as u64).to_le_bytes();
        let n = len.min(stamp.len());
        payload[..n].copy_from_slice(&stamp[..n]);
        self.payload.bytes(len)
    }
}

/// A checksum over every byte of a sequence of payloads (FNV-style, 16
/// bytes a step). Payloads must start 16-byte aligned ([`Buffer`]), so both
/// ends group the bytes the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Checksum(u128);

impl Checksum {
    const START: Checksum = Checksum(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

    fn add(&mut self, bytes: &[u8]) {
        // SAFETY: every bit pattern is a valid u128.
        let (head, words, tail) = unsafe { bytes.align_to::<u128>() };
        assert!(head.is_empty(), "payloads start 16-byte aligned");
        let mut h = (self.0 ^ bytes.len() as u128).wrapping_mul(Self::PRIME);
        for &w in words {
            h = (h ^ w).wrapping_mul(Self::PRIME);
        }
        for &b in tail {
            h = (h ^ u128::from(b)).wrapping_mul(Self::PRIME);
        }
        self.0 = h;
    }

    /// The 8 bytes the trailer carries: both halves folded.
    fn folded(self) -> u64 {
        (self.0 as u64) ^ ((self.0 >> 64) as u64)
    }
}

/// The trailer: mark, message count, checksum.
fn trailer(count: usize, sum: Checksum) -> [u8; 20] {
    let mut t = [0u8; 20];
    t[..4].copy_from_slice(&TRAILER_MARK.to_le_bytes());
    t[4..12].copy_from_slice(&(count as u64).to_le_bytes());
    t[12..].copy_from_slice(&sum.folded().to_le_bytes());
    t
}

// ---------------------------------------------------------------------------
// The calls, as a C program makes them
// ---------------------------------------------------------------------------

/// A failed call: what, the errno name and safesock's explanation.
fn failed(what: &str) -> String {
    let e = errno();
    format!("{what}: {} ({e}): {}", errno_name(e), last_error())
}

fn send_all(fd: c_int, data: &[u8], what: &str) -> Result<(), String> {
    // SAFETY: `data` is a live slice of the length given.
    let n = unsafe { ffi::ss_send_all(fd, data.as_ptr().cast(), data.len()) };
    if n < 0 {
        return Err(failed(what));
    }
    if n as usize != data.len() {
        return Err(format!("{what}: ss_send_all returned {n} of {}", data.len()));
    }
    Ok(())
}

/// `ss_recv_exact`; end of stream before `into` is full is an error.
fn recv_exact(fd: c_int, into: &mut [u8], what: &str) -> Result<(), String> {
    // SAFETY: `into` is a live, writable slice of the length given.
    let n = unsafe { ffi::ss_recv_exact(fd, into.as_mut_ptr().cast(), into.len()) };
    if n < 0 {
        return Err(failed(what));
    }
    if n as usize != into.len() {
        return Err(format!("{what}: end of stream after {n} of {} bytes", into.len()));
    }
    Ok(())
}

/// Drops the first `n` bytes from the front of `iov[*first..]`.
fn advance(iov: &mut [iovec], first: &mut usize, mut n: usize) {
    while n > 0 {
        let entry = &mut iov[*first];
        if n >= entry.iov_len {
            n -= entry.iov_len;
            *first += 1;
        } else {
            entry.iov_base = entry.iov_base.cast::<u8>().wrapping_add(n).cast();
            entry.iov_len -= n;
            n = 0;
        }
    }
}

/// Moves all the bytes `iov` names with `ss_writev` or `ss_readv`, looping
/// over short transfers (and `EINTR`). Returns how many calls it took beyond
/// the first. The buffers the entries name must stay live and, for a read,
/// writable, for the duration of the call.
fn vector_all(fd: c_int, iov: &mut [iovec], read: bool, what: &str) -> Result<usize, String> {
    let total: usize = iov.iter().map(|v| v.iov_len).sum();
    let (mut done, mut first, mut calls) = (0, 0, 0usize);
    while done < total {
        let rest = &iov[first..];
        let count = c_int::try_from(rest.len()).expect("a few entries");
        // SAFETY: every entry names live memory of its length (the caller's
        // buffers, advanced past what moved), writable when reading.
        let n = unsafe {
            if read {
                ffi::ss_readv(fd, rest.as_ptr(), count)
            } else {
                ffi::ss_writev(fd, rest.as_ptr(), count)
            }
        };
        calls += 1;
        match n {
            n if n > 0 => {
                done += n as usize;
                advance(iov, &mut first, n as usize);
            }
            0 => return Err(format!("{what}: end of stream after {done} of {total} bytes")),
            _ if errno() == libc::EINTR => {}
            _ => return Err(failed(what)),
        }
    }
    Ok(calls.saturating_sub(1))
}

fn iov_of(bytes: &[u8]) -> iovec {
    iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    }
}

fn iov_of_mut(bytes: &mut [u8]) -> iovec {
    iovec {
        iov_base: bytes.as_mut_ptr().cast(),
        iov_len: bytes.len(),
    }
}

/// Bounds every blocking call on `fd` by [`CALL_TIMEOUT`].
fn set_call_timeouts(fd: c_int) -> Result<(), String> {
    try_set_timeouts(ffi::ss_setsockopt, fd, CALL_TIMEOUT).map_err(|_| failed("ss_setsockopt(SO_RCVTIMEO/SO_SNDTIMEO)"))
}

// ---------------------------------------------------------------------------
// One run
// ---------------------------------------------------------------------------

/// What the threads of a run share: its sockets (closed with `ss_close`
/// when the run is dropped), the abort switch and the first failure.
struct Run {
    scale: Scale,
    started: Instant,
    fds: Mutex<Vec<c_int>>,
    aborted: AtomicBool,
    first_failure: OnceLock<String>,
    /// Client and server threads still running.
    live: AtomicUsize,
    short_reads: AtomicUsize,
    short_writes: AtomicUsize,
    /// Payload bytes received and verified, both ways together.
    verified: AtomicUsize,
}

impl Run {
    fn new(scale: Scale) -> Run {
        Run {
            scale,
            started: Instant::now(),
            fds: Mutex::new(Vec::new()),
            aborted: AtomicBool::new(false),
            first_failure: OnceLock::new(),
            live: AtomicUsize::new(0),
            short_reads: AtomicUsize::new(0),
            short_writes: AtomicUsize::new(0),
            verified: AtomicUsize::new(0),
        }
    }

    fn fds(&self) -> MutexGuard<'_, Vec<c_int>> {
        self.fds.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes a socket of the run (closed when the run is dropped) and
    /// bounds its blocking calls.
    fn adopt(&self, fd: c_int) -> Result<(), String> {
        self.fds().push(fd);
        if self.aborted.load(Ordering::SeqCst) {
            // Adopted after `fail` shut the others down: shut this one too.
            // SAFETY: shutdown takes no pointer; `fd` stays open until the run is dropped.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
        set_call_timeouts(fd)
    }

    /// Records the first failure and shuts every socket down, so every
    /// blocked call of every thread returns at once.
    fn fail(&self, why: String) {
        let _ = self.first_failure.set(why);
        if !self.aborted.swap(true, Ordering::SeqCst) {
            for &fd in self.fds().iter() {
                // SAFETY: shutdown takes no pointer; `fd` stays open until the run is dropped.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            }
        }
    }

    fn check_going(&self) -> Result<(), String> {
        if self.aborted.load(Ordering::Relaxed) {
            Err("stopped: another thread failed or the deadline passed".to_owned())
        } else {
            Ok(())
        }
    }

    /// Runs a thread's work; a failure (or a panic) aborts the run.
    fn thread_body(&self, name: &str, work: impl FnOnce() -> Result<(), String>) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or_else(|panic| Err(format!("panicked: {}", panic_text(&*panic))));
        if let Err(why) = outcome {
            self.fail(format!("{name}: {why}"));
        }
    }

    /// Spawns a client or server thread, counted in `live` until it ends.
    fn spawn<'scope>(&'scope self, s: &'scope thread::Scope<'scope, '_>, body: impl FnOnce() + Send + 'scope) {
        self.live.fetch_add(1, Ordering::SeqCst);
        let spawned = thread::Builder::new().stack_size(STACK).spawn_scoped(s, move || {
            let _counted = Live(&self.live);
            body();
        });
        if let Err(e) = spawned {
            self.live.fetch_sub(1, Ordering::SeqCst);
            self.fail(format!("spawning a thread: {e}"));
        }
    }
}

/// Counts a thread out of [`Run::live`] when it ends, also by a panic.
struct Live<'a>(&'a AtomicUsize);

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Stack size of the run's threads (their buffers are on the heap).
const STACK: usize = 256 << 10;

impl Drop for Run {
    fn drop(&mut self) {
        for fd in self.fds().drain(..) {
            // A failure here cannot be reported from a drop; the descriptor
            // count check after the run catches anything left open.
            ffi::ss_close(fd);
        }
    }
}

/// Sends the messages of one direction, then the trailer, then FIN.
fn write_stream(run: &Run, fd: c_int, connection: usize, direction: Direction) -> Result<(), String> {
    let mut messages = Messages::new(connection, direction);
    let mut sum = Checksum::START;
    let mut whole = Vec::with_capacity(4 + MAX_PAYLOAD);
    for index in 0..run.scale.messages {
        run.check_going()?;
        let payload = messages.next(index);
        sum.add(payload);
        let header = (payload.len() as u32).to_le_bytes();
        let what = format!("message {index} ({} bytes)", payload.len());
        if index % 2 == 0 {
            whole.clear();
            whole.extend_from_slice(&header);
            whole.extend_from_slice(payload);
            send_all(fd, &whole, &format!("ss_send_all of {what}"))?;
        } else {
            let mut iov = [iov_of(&header), iov_of(payload)];
            let extra = vector_all(fd, &mut iov, false, &format!("ss_writev of {what}"))?;
            run.short_writes.fetch_add(extra, Ordering::Relaxed);
        }
    }
    send_all(fd, &trailer(run.scale.messages, sum), "ss_send_all of the trailer")?;
    if ffi::ss_shutdown(fd, libc::SHUT_WR) != 0 {
        return Err(failed("ss_shutdown(SHUT_WR)"));
    }
    Ok(())
}

/// Receives and verifies the messages of one direction, the trailer and
/// the end of stream.
fn read_stream(run: &Run, fd: c_int, connection: usize, direction: Direction) -> Result<(), String> {
    let mut messages = Messages::new(connection, direction);
    let mut sum = Checksum::START;
    let mut buf = Buffer::new(MAX_PAYLOAD);
    for index in 0..run.scale.messages {
        run.check_going()?;
        let expected = messages.next(index);
        let mut header = [0u8; 4];
        let got = if (index / 2) % 2 == 0 {
            recv_exact(fd, &mut header, &format!("ss_recv_exact of header {index}"))?;
            let len = u32::from_le_bytes(header) as usize;
            if len != expected.len() {
                return Err(format!(
                    "message {index}: header says {len} bytes, expected {}",
                    expected.len()
                ));
            }
            recv_exact(fd, buf.bytes_mut(len), &format!("ss_recv_exact of payload {index}"))?;
            buf.bytes(len)
        } else {
            let len = expected.len();
            let mut iov = [iov_of_mut(&mut header), iov_of_mut(buf.bytes_mut(len))];
            let extra = vector_all(fd, &mut iov, true, &format!("ss_readv of message {index}"))?;
            run.short_reads.fetch_add(extra, Ordering::Relaxed);
            let said = u32::from_le_bytes(header) as usize;
            if said != len {
                return Err(format!("message {index}: header says {said} bytes, expected {len}"));
            }
            buf.bytes(len)
        };
        if got != expected {
            let at = got.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(0);
            return Err(format!(
                "message {index} ({} bytes): byte {at} is {:#04x}, expected {:#04x}",
                got.len(),
                got[at],
                expected[at]
            ));
        }
        sum.add(got);
        run.verified.fetch_add(got.len(), Ordering::Relaxed);
    }
    let mut t = [0u8; 20];
    recv_exact(fd, &mut t, "ss_recv_exact of the trailer")?;
    if t != trailer(run.scale.messages, sum) {
        return Err(format!(
            "trailer {t:02x?} does not match {} messages with checksum {:#018x}",
            run.scale.messages,
            sum.folded()
        ));
    }
    let mut one = [0u8; 1];
    // SAFETY: `one` is a live one-byte buffer.
    let n = unsafe { ffi::ss_recv(fd, one.as_mut_ptr().cast(), 1, 0) };
    match n {
        0 => Ok(()),
        n if n < 0 => Err(failed("ss_recv after the trailer")),
        n => Err(format!("{n} bytes after the trailer instead of end of stream")),
    }
}

/// Runs both directions of one endpoint: the reader on a new thread, the
/// writer on this one.
fn endpoint(run: &Run, fd: c_int, connection: usize, sends: Direction, receives: Direction) {
    thread::scope(|s| {
        let reader = thread::Builder::new().stack_size(STACK).spawn_scoped(s, || {
            run.thread_body(&format!("connection {connection} {receives:?} reader"), || {
                read_stream(run, fd, connection, receives)
            })
        });
        if let Err(e) = reader {
            run.fail(format!("spawning a reader: {e}"));
            return;
        }
        run.thread_body(&format!("connection {connection} {sends:?} writer"), || {
            write_stream(run, fd, connection, sends)
        });
    });
}

/// Waits until `fd` is readable, the run is aborted, or the deadline passes.
fn wait_readable(run: &Run, fd: c_int) -> Result<(), String> {
    loop {
        run.check_going()?;
        if run.started.elapsed() > run.scale.deadline {
            return Err("the deadline passed while waiting for connections".to_owned());
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, a local.
        if unsafe { libc::poll(&mut pfd, 1, 100) } > 0 {
            return Ok(());
        }
    }
}

/// Accepts the connections and starts a server endpoint for each; the
/// client says which connection it is in its first 8 bytes.
fn serve<'scope>(run: &'scope Run, s: &'scope thread::Scope<'scope, '_>, listener: c_int) -> Result<(), String> {
    for _ in 0..run.scale.connections {
        wait_readable(run, listener)?;
        // SAFETY: NULL address and length are allowed.
        let fd = unsafe { ffi::ss_accept(listener, std::ptr::null_mut(), std::ptr::null_mut()) };
        if fd < 0 {
            return Err(failed("ss_accept"));
        }
        run.adopt(fd)?;
        run.spawn(s, move || {
            let mut connection = None;
            run.thread_body("server", || {
                let mut hello = [0u8; 8];
                recv_exact(fd, &mut hello, "ss_recv_exact of the hello")?;
                let said = u64::from_le_bytes(hello);
                match usize::try_from(said) {
                    Ok(n) if n < run.scale.connections => connection = Some(n),
                    _ => return Err(format!("the hello names connection {said}")),
                }
                Ok(())
            });
            if let Some(connection) = connection {
                endpoint(run, fd, connection, Direction::Down, Direction::Up);
            }
        });
    }
    Ok(())
}

/// Connects as client `connection`, says hello, and runs the endpoint.
fn client(run: &Run, port: u16, connection: usize) {
    let mut connected = None;
    run.thread_body(&format!("connection {connection} client"), || {
        let fd = tcp_connect(&format!("127.0.0.1:{port}"), 10_000);
        if fd < 0 {
            return Err(failed("ss_tcp_connect"));
        }
        run.adopt(fd)?;
        connected = Some(fd);
        send_all(fd, &(connection as u64).to_le_bytes(), "ss_send_all of the hello")
    });
    if let Some(fd) = connected
        && !run.aborted.load(Ordering::Relaxed)
    {
        endpoint(run, fd, connection, Direction::Up, Direction::Down);
    }
}

/// What a run moved.
struct Moved {
    took: Duration,
    verified: usize,
    short_reads: usize,
    short_writes: usize,
}

/// Runs `scale`: the connections, their threads, the watchdog.
fn stress(scale: Scale) -> Result<Moved, String> {
    let run = Run::new(scale);
    let listener = tcp_listen("127.0.0.1:0", 128);
    if listener < 0 {
        return Err(failed("ss_tcp_listen"));
    }
    run.fds().push(listener);
    let port = u16::try_from(ffi::ss_local_port(listener)).map_err(|_| failed("ss_local_port"))?;
    thread::scope(|s| {
        for connection in 0..scale.connections {
            let run = &run;
            run.spawn(s, move || client(run, port, connection));
        }
        if let Err(why) = serve(&run, s, listener) {
            run.fail(format!("server: {why}"));
        }
        // The watchdog, until every client and server thread has ended.
        while run.live.load(Ordering::SeqCst) > 0 {
            if run.started.elapsed() > scale.deadline && !run.aborted.load(Ordering::SeqCst) {
                run.fail(format!(
                    "the deadline of {:?} passed with {} client and server threads still running",
                    scale.deadline,
                    run.live.load(Ordering::SeqCst)
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    match run.first_failure.get() {
        Some(why) => Err(why.clone()),
        None => Ok(Moved {
            took: run.started.elapsed(),
            verified: run.verified.load(Ordering::Relaxed),
            short_reads: run.short_reads.load(Ordering::Relaxed),
            short_writes: run.short_writes.load(Ordering::Relaxed),
        }),
    }
}

// ---------------------------------------------------------------------------
// Descriptors before and after
// ---------------------------------------------------------------------------

/// The tests of this binary run one at a time, so none opens a descriptor
/// (a socket, a pipe to a child) while another counts.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The open descriptors of this process and what each refers to, without
/// the one that reads the directory.
fn open_descriptors() -> BTreeMap<c_int, String> {
    let dir = Path::new("/proc/self/fd");
    let listing = PathBuf::from(format!("/proc/{}/fd", std::process::id()));
    std::fs::read_dir(dir)
        .expect("/proc/self/fd")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let fd: c_int = entry.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            (target != listing).then(|| (fd, target.display().to_string()))
        })
        .collect()
}

/// Runs `scale` and checks that it left the descriptor table as it found it.
fn stress_and_count(scale: Scale) {
    let before = open_descriptors();
    let outcome = stress(scale);
    let after = open_descriptors();
    let outcome = outcome.unwrap_or_else(|why| panic!("stress run {scale:?} failed: {why}"));
    let mib = outcome.verified as f64 / f64::from(1 << 20);
    eprintln!(
        "stress: {} connections x {} messages each way in {:.2?}: {mib:.0} MiB verified ({:.0} MiB each way, \
         {:.0} MiB/s); {} extra ss_readv and {} extra ss_writev calls for short transfers; {} descriptors \
         open before and after",
        scale.connections,
        scale.messages,
        outcome.took,
        mib / 2.0,
        mib / outcome.took.as_secs_f64(),
        outcome.short_reads,
        outcome.short_writes,
        after.len()
    );
    assert_eq!(before, after, "the run changed the open descriptors (before vs after)");
}

#[test]
fn many_connections_move_verified_messages_both_ways() {
    let _one_at_a_time = serial();
    stress_and_count(Scale::DEFAULT.with_env_overrides());
}

#[test]
#[ignore = "full size, about 4 GiB each way: cargo test --release --test stress -- --ignored"]
fn full_size_many_connections_move_verified_messages_both_ways() {
    let _one_at_a_time = serial();
    stress_and_count(Scale::FULL.with_env_overrides());
}

// ---------------------------------------------------------------------------
// Under valgrind
// ---------------------------------------------------------------------------

/// Not a test of its own: the entry point the valgrind test runs in a
/// fresh copy of this binary (it does nothing elsewhere).
#[test]
fn valgrind_child_entry() {
    if std::env::var_os(VALGRIND_CHILD_ENV).is_none() {
        return;
    }
    let _one_at_a_time = serial();
    stress_and_count(Scale::VALGRIND.with_env_overrides());
}

/// The blocks of a valgrind `--track-fds=yes` report, one per descriptor
/// open at exit: its "Open ..." line and the lines after it.
fn open_descriptor_blocks(log: &str) -> Vec<Vec<String>> {
    // Every line starts with "==PID== "; a blank remainder ends a block.
    let body = log.lines().map(|line| match line.strip_prefix("==") {
        Some(rest) => rest.split_once("== ").map_or("", |(_, text)| text).to_owned(),
        None => line.to_owned(),
    });
    let mut blocks: Vec<Vec<String>> = Vec::new();
    let mut inside = false;
    for line in body {
        if line.starts_with("Open ") {
            blocks.push(vec![line]);
            inside = true;
        } else if inside && !line.trim().is_empty() {
            blocks.last_mut().expect("a block").push(line);
        } else {
            inside = false;
        }
    }
    blocks
}

/// The one report valgrind makes about the test harness rather than this
/// run: std keeps the main thread's `Thread` handle (an `Arc`) in a thread
/// local that is never dropped at exit, pointing into the allocation rather
/// than at its start, so memcheck calls its 48 bytes "possibly lost". Only
/// that allocation (made in `std::thread::current::init_current`) is
/// suppressed; any other leak still fails the run.
const SUPPRESSIONS: &str = "{
   std-main-thread-handle-kept-in-a-thread-local
   Memcheck:Leak
   match-leak-kinds: possible
   fun:malloc
   ...
   fun:*init_current*
}
";

#[test]
fn stress_is_clean_under_valgrind_track_fds() {
    let _one_at_a_time = serial();
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("note: valgrind is not installed; the valgrind run of the stress test is skipped");
        return;
    }
    let log = TempFile::new("stress-valgrind.log", "");
    let suppressions = TempFile::new("stress-valgrind.supp", SUPPRESSIONS);
    let started = Instant::now();
    let scale = Scale::VALGRIND;
    let output = Command::new("valgrind")
        .args([
            "--error-exitcode=1",
            "--track-fds=yes",
            "--leak-check=full",
            "--show-leak-kinds=definite,possible",
        ])
        .arg(format!("--log-file={}", log.0.display()))
        .arg(format!("--suppressions={}", suppressions.0.display()))
        .arg(std::env::current_exe().expect("this test binary"))
        .args(only_test_args("valgrind_child_entry"))
        .env(VALGRIND_CHILD_ENV, "1")
        .env(CONNECTIONS_ENV, scale.connections.to_string())
        .env(MESSAGES_ENV, scale.messages.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run valgrind");
    let report = std::fs::read_to_string(&log.0).unwrap_or_default();
    let child_output = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the run under valgrind failed ({}):\n{child_output}\n--- valgrind report ---\n{report}",
        output.status
    );
    assert!(
        child_output.contains("1 passed"),
        "the child did not run the entry test:\n{child_output}"
    );
    assert!(
        report.contains("FILE DESCRIPTORS:"),
        "no descriptor report from --track-fds:\n{report}"
    );
    // Valgrind lists every descriptor open at exit except 0, 1 and 2 (those
    // only with --track-fds=all). Each one the process opened itself comes
    // with the stack of the call that opened it; the ones it was started
    // with say "<inherited from parent>" instead: whatever the shell or cargo
    // left inheritable (a jobserver pipe, a /dev/null), and the log file,
    // which valgrind opens before it starts the program. So a block with a
    // stack is a descriptor this run left open.
    let blocks = open_descriptor_blocks(&report);
    let leaked: Vec<String> = blocks
        .iter()
        .filter(|block| !block.iter().any(|line| line.trim() == "<inherited from parent>"))
        .map(|block| block.join("\n"))
        .collect();
    assert!(
        leaked.is_empty(),
        "descriptors the run opened and left open at exit:\n{}",
        leaked.join("\n\n")
    );
    eprintln!(
        "valgrind: {} connections x {} messages clean (no errors, no leaks, {} descriptors open at exit, all inherited) in {:.1?}",
        scale.connections,
        scale.messages,
        blocks.len(),
        started.elapsed()
    );
}
