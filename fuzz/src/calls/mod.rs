//! The `calls` target: a program of socket calls run against libc and
//! against safesock on mirrored resources, compared call by call.
//!
//! How one input runs:
//!
//! 1. The libc side runs in a child forked from the fuzzing process, so it
//!    starts with exactly the descriptor table, memory and signal mask the
//!    safesock side will start with. Descriptor numbers are therefore equal
//!    on both sides whenever the behaviour is, and are compared as they are.
//!    The child writes its log to shared memory and leaves with `_exit`.
//! 2. The safesock side runs in the fuzzing process itself (where libFuzzer
//!    counts coverage and where a crash is caught).
//! 3. The two logs must be equal line by line, the safesock side must keep
//!    the three safety defaults ([`world`] checks them as it goes), and the
//!    process must have exactly the descriptors it had before the input.
//!
//! Loopback traffic is asynchronous in principle (the kernel usually
//! finishes a handshake or delivery inside the call, but not always), so a
//! difference is confirmed before it counts: the input is run again up to
//! twice, and it fails only if every run differs. A difference that goes
//! away is counted as a flake and printed (at most a few times), so racy
//! spots stay visible instead of being hidden.

pub mod api;
pub mod ops;
pub mod world;

use core::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use world::{Globals, SideOutcome};

/// Bytes of shared memory for the child's log.
const SHARED_LEN: usize = 8 << 20;

/// How long the libc side may take (every call is non-blocking and every
/// wait bounded, so this only trips on a harness bug).
const CHILD_DEADLINE: Duration = Duration::from_secs(20);

/// How many runs of an input must all differ before it counts.
const ATTEMPTS: usize = 3;

struct Shared {
    base: *mut u8,
}

// SAFETY: the mapping is used from the fuzzing thread and its forked child,
// never concurrently (the parent reads only after the child has exited).
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        // SAFETY: a fresh anonymous shared mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                SHARED_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap of the shared log");
        Shared { base: base.cast() }
    })
}

/// The process-wide state, made once before the first fork.
pub fn globals() -> &'static Globals {
    static G: OnceLock<Globals> = OnceLock::new();
    G.get_or_init(|| {
        world::block_sigpipe();
        shared();
        Globals::new()
    })
}

/// Encodes a log as `u32 count, (u32 len, bytes)*`.
fn encode(log: &[String]) -> Vec<u8> {
    let mut out = (log.len() as u32).to_le_bytes().to_vec();
    for line in log {
        out.extend_from_slice(&(line.len() as u32).to_le_bytes());
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn decode(bytes: &[u8]) -> Option<Vec<String>> {
    let word = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize);
    let count = word(0)?;
    let mut at = 4;
    let mut log = Vec::with_capacity(count);
    for _ in 0..count {
        let n = word(at)?;
        log.push(String::from_utf8_lossy(bytes.get(at + 4..at + 4 + n)?).into_owned());
        at += 4 + n;
    }
    Some(log)
}

/// Writes the child's outcome into the shared mapping: a status word, the
/// length, then the encoded log (or a message).
fn publish(status: u32, payload: &[u8]) {
    let s = shared();
    let n = payload.len().min(SHARED_LEN - 8);
    // SAFETY: the mapping is SHARED_LEN bytes; 8 + n fits.
    unsafe {
        core::ptr::copy_nonoverlapping(payload.as_ptr(), s.base.add(8), n);
        core::ptr::copy_nonoverlapping((n as u32).to_le_bytes().as_ptr(), s.base.add(4), 4);
        core::ptr::copy_nonoverlapping(status.to_le_bytes().as_ptr(), s.base, 4);
    }
}

fn collect() -> (u32, Vec<u8>) {
    let s = shared();
    // SAFETY: the child has exited; the mapping holds what it wrote.
    unsafe {
        let word = |at: usize| {
            let mut b = [0u8; 4];
            core::ptr::copy_nonoverlapping(s.base.add(at), b.as_mut_ptr(), 4);
            u32::from_le_bytes(b)
        };
        let status = word(0);
        let n = (word(4) as usize).min(SHARED_LEN - 8);
        (status, core::slice::from_raw_parts(s.base.add(8), n).to_vec())
    }
}

/// Runs the libc side in a forked child and returns its log.
fn run_libc(g: &'static Globals, program: &[ops::Op]) -> Result<Vec<String>, String> {
    publish(0, b"");
    // SAFETY: fork; the child only runs the libc side of the program (plain
    // system calls and allocation, which glibc and the sanitizers make
    // fork-safe) and leaves with _exit, never returning into libFuzzer.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: errno {}", api::errno()));
    }
    if pid == 0 {
        // libfuzzer-sys aborts on panic (and the abort would be reported
        // as a crash of this input): leave quietly with the message instead.
        std::panic::set_hook(Box::new(|info| {
            publish(2, info.to_string().as_bytes());
            // SAFETY: leaving the child without running any exit handler.
            unsafe { libc::_exit(2) };
        }));
        let out = world::run_side(&api::LIBC, g, program);
        publish(1, &encode(&out.log));
        // SAFETY: as above.
        unsafe { libc::_exit(0) };
    }
    let started = Instant::now();
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if started.elapsed() > CHILD_DEADLINE {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Err(format!("the libc side did not finish in {CHILD_DEADLINE:?}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let (kind, payload) = collect();
    match kind {
        1 if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 => {
            decode(&payload).ok_or_else(|| "the libc side's log is malformed".to_owned())
        }
        2 => Err(format!("the libc side panicked: {}", String::from_utf8_lossy(&payload))),
        _ => Err(format!("the libc side died: wait status {status:#x}")),
    }
}

/// The descriptors of this process (from /proc/self/fd).
fn fd_list() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| {
                let e = e.ok()?;
                let target = std::fs::read_link(e.path())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                Some(format!("{} -> {target}", e.file_name().to_string_lossy()))
            })
            .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The differences between the logs, and the safety-default problems.
fn differences(program: &[ops::Op], libc_log: &[String], ss: &SideOutcome) -> Option<String> {
    let mut report = String::new();
    for p in &ss.problems {
        let _ = writeln!(report, "safety default: {p}");
    }
    let n = libc_log.len().max(ss.log.len());
    for i in 0..n {
        let l = libc_log.get(i).map_or("<missing>", String::as_str);
        let s = ss.log.get(i).map_or("<missing>", String::as_str);
        if l != s {
            if i > 0 && is_port_collision(program.get(i - 1), l, s) {
                break;
            }
            let what = if i == 0 {
                "setup".to_owned()
            } else {
                format!("step {}: {:?}", i - 1, program.get(i - 1))
            };
            let _ = writeln!(report, "first difference at {what}\n  libc: {l}\n  ss:   {s}");
            break;
        }
    }
    (!report.is_empty()).then_some(report)
}

/// Whether a difference is a bind colliding by chance with a port in use:
/// binding to another socket's port (a TCP socket to a UDP socket's port,
/// say) succeeds or fails with EADDRINUSE depending on which ports of the
/// other protocol the process holds at that moment, and the two worlds (and
/// the TIME_WAIT entries of earlier inputs) share that port space. Such an
/// input is not comparable from that step on; it is no finding.
fn is_port_collision(op: Option<&ops::Op>, libc_line: &str, ss_line: &str) -> bool {
    const IN_USE: &str = "errno=98"; // EADDRINUSE
    matches!(
        op,
        Some(ops::Op::Bind {
            addr: ops::AddrIn::Named { .. },
            ..
        })
    ) && libc_line.contains(IN_USE) != ss_line.contains(IN_USE)
}

fn full_logs(program: &[ops::Op], libc_log: &[String], ss: &SideOutcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "program ({} calls):", program.len());
    for (i, op) in program.iter().enumerate() {
        let _ = writeln!(out, "  {i}: {op:?}");
    }
    let _ = writeln!(out, "libc log:");
    for l in libc_log {
        let _ = writeln!(out, "  {l}");
    }
    let _ = writeln!(out, "ss log:");
    for l in &ss.log {
        let _ = writeln!(out, "  {l}");
    }
    out
}

static FLAKES: AtomicUsize = AtomicUsize::new(0);

/// Runs one fuzz input; panics (a finding) on a confirmed difference, a
/// breach of a safety default, or a descriptor leak.
pub fn run(data: &[u8]) {
    let program = ops::decode(data);
    if program.is_empty() {
        return;
    }
    let g = globals();
    let before = fd_list();
    let mut first = None;
    for attempt in 0..ATTEMPTS {
        let libc_log = match run_libc(g, &program) {
            Ok(log) => log,
            Err(e) => panic!(
                "{e}\n{}",
                full_logs(
                    &program,
                    &[],
                    &SideOutcome {
                        log: vec![],
                        problems: vec![]
                    }
                )
            ),
        };
        let ss = world::run_side(&api::SS, g, &program);
        let after = fd_list();
        if after != before {
            panic!(
                "descriptor leak: the process had {before:?} before the input and {after:?} after\n{}",
                full_logs(&program, &libc_log, &ss)
            );
        }
        match differences(&program, &libc_log, &ss) {
            None => {
                if let Some(report) = first
                    && FLAKES.fetch_add(1, Ordering::Relaxed) < 20
                {
                    eprintln!("calls: a difference went away on attempt {attempt} (a race, not counted):\n{report}");
                }
                return;
            }
            Some(report) => {
                if first.is_none() {
                    first = Some(format!("{report}\n{}", full_logs(&program, &libc_log, &ss)));
                }
            }
        }
    }
    panic!(
        "ss_ differs from libc beyond the documented safety defaults ({ATTEMPTS} runs out of {ATTEMPTS}):\n{}",
        first.unwrap_or_default()
    );
}

/// Decodes and prints an input's program (for reading a crash artifact).
pub fn describe(data: &[u8]) -> String {
    let mut out = String::new();
    for (i, op) in ops::decode(data).iter().enumerate() {
        let _ = writeln!(out, "{i}: {op:?}");
    }
    out
}
