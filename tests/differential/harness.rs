//! The comparison machinery: the two call tables (libc and `ss_`), the
//! [`Probe`] a case runs against, what one run observed, and the comparison of
//! the two observations under the contract's documented differences.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;

use libc::{c_int, c_void, iovec, msghdr, sockaddr, socklen_t, ssize_t};

use crate::common::{errno, errno_name, last_error, panic_text, set_errno};
use crate::fixtures::getsockopt_int;

/// The value `errno` holds before every mirror call; a call that succeeds
/// must leave it there (libc does not touch `errno` on success).
pub const ERRNO_SENTINEL: c_int = 7777;

/// Which implementation a run goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Libc,
    Ss,
}

/// Declares [`Api`] with one function pointer per mirror function, and the two
/// tables: [`LIBC`] (`libc::name`) and [`SS`] (`safesock::ffi::ss_name`). Each
/// of the 23 functions is named exactly once here.
macro_rules! mirror_api {
    ($($name:ident => $ss:ident : fn($($arg:ty),*) -> $ret:ty;)*) => {
        /// The 23 socket calls, as function pointers of one side.
        pub struct Api {
            pub side: Side,
            $(pub $name: unsafe extern "C" fn($($arg),*) -> $ret,)*
        }

        /// The system's functions.
        pub static LIBC: Api = Api { side: Side::Libc, $($name: libc::$name,)* };

        /// safesock's mirrors of them.
        pub static SS: Api = Api { side: Side::Ss, $($name: safesock::ffi::$ss,)* };

        /// The names of the mirror functions, in declaration order.
        pub const MIRROR_FUNCTIONS: &[&str] = &[$(stringify!($ss)),*];
    };
}

mirror_api! {
    socket => ss_socket: fn(c_int, c_int, c_int) -> c_int;
    socketpair => ss_socketpair: fn(c_int, c_int, c_int, *mut c_int) -> c_int;
    bind => ss_bind: fn(c_int, *const sockaddr, socklen_t) -> c_int;
    listen => ss_listen: fn(c_int, c_int) -> c_int;
    connect => ss_connect: fn(c_int, *const sockaddr, socklen_t) -> c_int;
    accept => ss_accept: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    accept4 => ss_accept4: fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int;
    read => ss_read: fn(c_int, *mut c_void, usize) -> ssize_t;
    write => ss_write: fn(c_int, *const c_void, usize) -> ssize_t;
    recv => ss_recv: fn(c_int, *mut c_void, usize, c_int) -> ssize_t;
    send => ss_send: fn(c_int, *const c_void, usize, c_int) -> ssize_t;
    readv => ss_readv: fn(c_int, *const iovec, c_int) -> ssize_t;
    writev => ss_writev: fn(c_int, *const iovec, c_int) -> ssize_t;
    recvmsg => ss_recvmsg: fn(c_int, *mut msghdr, c_int) -> ssize_t;
    sendmsg => ss_sendmsg: fn(c_int, *const msghdr, c_int) -> ssize_t;
    recvfrom => ss_recvfrom: fn(c_int, *mut c_void, usize, c_int, *mut sockaddr, *mut socklen_t) -> ssize_t;
    sendto => ss_sendto: fn(c_int, *const c_void, usize, c_int, *const sockaddr, socklen_t) -> ssize_t;
    shutdown => ss_shutdown: fn(c_int, c_int) -> c_int;
    close => ss_close: fn(c_int) -> c_int;
    getsockname => ss_getsockname: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    getpeername => ss_getpeername: fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
    getsockopt => ss_getsockopt: fn(c_int, c_int, c_int, *mut c_void, *mut socklen_t) -> c_int;
    setsockopt => ss_setsockopt: fn(c_int, c_int, c_int, *const c_void, socklen_t) -> c_int;
}

/// A C return value widened for comparison.
pub trait RetVal {
    fn widen(self) -> i64;
}

impl RetVal for c_int {
    fn widen(self) -> i64 {
        i64::from(self)
    }
}

impl RetVal for ssize_t {
    fn widen(self) -> i64 {
        self as i64
    }
}

/// `errno` as text: the sentinel means "untouched".
fn describe_errno(value: c_int) -> String {
    if value == ERRNO_SENTINEL {
        "untouched".to_owned()
    } else {
        format!("{} ({value})", errno_name(value))
    }
}

/// Catches a SIGPIPE raised by the calling thread during one call: SIGPIPE is
/// ignored process-wide (so the libc side cannot kill the test), but a blocked
/// signal is never discarded, so blocking it around the call keeps it pending
/// where `sigpending` can see it.
struct SigpipeCatcher {
    saved_mask: libc::sigset_t,
}

fn sigpipe_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it fully.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        set
    }
}

/// Consumes a pending SIGPIPE of this thread; true if there was one.
fn take_pending_sigpipe() -> bool {
    let set = sigpipe_set();
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: all pointers refer to locals; a NULL siginfo is allowed.
    unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &zero) == libc::SIGPIPE }
}

impl SigpipeCatcher {
    fn arm() -> Self {
        let set = sigpipe_set();
        // SAFETY: sigset_t is plain data; pthread_sigmask fills it.
        let mut saved_mask: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers refer to live locals.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut saved_mask) };
        assert_eq!(rc, 0, "pthread_sigmask");
        while take_pending_sigpipe() {}
        SigpipeCatcher { saved_mask }
    }

    /// Whether a SIGPIPE was raised since [`SigpipeCatcher::arm`]; restores the mask.
    fn disarm(self) -> bool {
        let raised = take_pending_sigpipe();
        // SAFETY: restores the mask saved by arm; the pointer refers to self.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.saved_mask, std::ptr::null_mut()) };
        raised
    }
}

/// Something a probe created and must release after the run.
pub enum Owned {
    /// A descriptor made through the side's own functions: closed with its `close`.
    ByApi(c_int),
    /// A descriptor made with plain libc (pipes, files, `dup2`): closed with `libc::close`.
    ByLibc(c_int),
    /// A file or socket path in the probe's directory.
    File(PathBuf),
    /// The probe's temporary directory.
    Dir(PathBuf),
}

/// The outcome of the one mirror call of a run.
#[derive(Clone, Debug)]
struct Called {
    ret: i64,
    errno: c_int,
    target_is_socket: bool,
    sigpipe: bool,
    message: Option<String>,
}

/// One run of one case on one side: the resources it prepared, the single
/// mirror call, and what was observed after it.
pub struct Probe {
    pub api: &'static Api,
    owned: Vec<Owned>,
    /// Byte strings (socket paths, abstract names) that differ between the
    /// sides only by their unique part; observations mask them.
    pub(crate) marks: Vec<Vec<u8>>,
    pub(crate) dir: Option<PathBuf>,
    called: Option<Called>,
    new_fd_ret: bool,
    outs: Vec<(String, String)>,
    cloexec: Vec<(String, bool)>,
    problems: Vec<String>,
}

/// Everything one run observed, in comparable form (descriptor numbers,
/// ephemeral ports and temporary paths are masked).
#[derive(Clone, Debug)]
pub struct Observed {
    pub ret: String,
    pub errno: String,
    pub outs: Vec<(String, String)>,
    pub target_is_socket: bool,
    pub sigpipe: bool,
    pub cloexec: Vec<(String, bool)>,
    pub message: Option<String>,
    pub problems: Vec<String>,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ret {}, errno {}", self.ret, self.errno)?;
        for (label, value) in &self.outs {
            write!(f, ", {label} = {value}")?;
        }
        if self.sigpipe {
            write!(f, ", raised SIGPIPE")?;
        }
        for (label, cloexec) in &self.cloexec {
            write!(f, ", {label} FD_CLOEXEC={cloexec}")?;
        }
        for problem in &self.problems {
            write!(f, ", PROBLEM: {problem}")?;
        }
        Ok(())
    }
}

impl Probe {
    pub fn new(api: &'static Api) -> Self {
        Probe {
            api,
            owned: Vec::new(),
            marks: Vec::new(),
            dir: None,
            called: None,
            new_fd_ret: false,
            outs: Vec::new(),
            cloexec: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub fn side(&self) -> Side {
        self.api.side
    }

    /// Makes the case's one mirror call. `target` is the descriptor it acts
    /// on (-1 for none): whether it is a socket decides whether SIGPIPE is
    /// allowed. Around the call `errno` holds [`ERRNO_SENTINEL`] and SIGPIPE
    /// is caught; on an `ss_` failure the message is read at once.
    pub fn call<R: RetVal>(&mut self, target: c_int, f: impl FnOnce(&Api) -> R) -> i64 {
        assert!(self.called.is_none(), "a case makes exactly one mirror call");
        let target_is_socket = is_socket(target);
        let api = self.api;
        let catcher = SigpipeCatcher::arm();
        set_errno(ERRNO_SENTINEL);
        let ret = f(api).widen();
        let errno = errno();
        let message = (api.side == Side::Ss && ret == -1).then(last_error);
        let sigpipe = catcher.disarm();
        self.called = Some(Called {
            ret,
            errno,
            target_is_socket,
            sigpipe,
            message,
        });
        ret
    }

    /// As [`Probe::call`] for a call that returns a new descriptor: a
    /// non-negative result is recorded by its properties (not its number) and
    /// owned by the probe, to be closed through the same side.
    pub fn call_new_fd(&mut self, target: c_int, f: impl FnOnce(&Api) -> c_int) -> c_int {
        let ret = self.call(target, f);
        self.new_fd_ret = true;
        let fd = c_int::try_from(ret).expect("c_int result");
        if fd >= 0 {
            self.adopt_new_fd("returned fd", fd);
        }
        fd
    }

    /// The result of the mirror call.
    pub fn ret(&self) -> i64 {
        self.called.as_ref().expect("the mirror call was made").ret
    }

    /// Records a descriptor the mirror call created (returned, in `sv`, or
    /// received as `SCM_RIGHTS`): its properties become an observation, its
    /// close-on-exec flag is checked separately, and the probe closes it.
    pub fn adopt_new_fd(&mut self, label: &str, fd: c_int) {
        let (properties, cloexec) = describe_new_fd(fd);
        self.out(label, properties);
        self.cloexec.push((label.to_owned(), cloexec));
        self.own(Owned::ByApi(fd));
    }

    /// Records a descriptor received by plain libc while observing (not by
    /// the mirror call): its properties only; the probe closes it with libc.
    pub fn adopt_plain_fd(&mut self, label: &str, fd: c_int) {
        let (properties, _) = describe_new_fd(fd);
        self.out(label, properties);
        self.own(Owned::ByLibc(fd));
    }

    /// Records an observation made after the call.
    pub fn out(&mut self, label: &str, value: impl fmt::Display) {
        self.outs.push((label.to_owned(), value.to_string()));
    }

    /// Takes ownership of a resource, released after the run.
    pub fn own(&mut self, what: Owned) {
        self.owned.push(what);
    }

    /// Whether the probe owns `fd` as made through its side.
    pub fn owns_by_api(&self, fd: c_int) -> bool {
        self.owned.iter().any(|o| matches!(o, Owned::ByApi(f) if *f == fd))
    }

    /// Adds a per-run byte string (a path, an abstract name) that
    /// observations mask, since it differs between the two runs.
    pub fn mark(&mut self, unique: Vec<u8>) {
        self.marks.push(unique);
    }

    /// Stops owning `fd` (the mirror call closed it).
    pub fn forget(&mut self, fd: c_int) {
        self.owned
            .retain(|o| !matches!(o, Owned::ByApi(f) | Owned::ByLibc(f) if *f == fd));
    }

    /// Adds a note that makes the comparison fail.
    pub fn problem(&mut self, text: String) {
        self.problems.push(text);
    }

    fn release(&mut self, checked: bool) {
        while let Some(owned) = self.owned.pop() {
            let failure = match owned {
                Owned::ByApi(fd) => {
                    // SAFETY: the probe created fd through this side and still owns it.
                    let rc = unsafe { (self.api.close)(fd) };
                    (rc != 0).then(|| format!("closing fd {fd} through its side failed: errno {}", errno()))
                }
                Owned::ByLibc(fd) => {
                    // SAFETY: the probe created fd with plain libc and still owns it.
                    let rc = unsafe { libc::close(fd) };
                    (rc != 0).then(|| format!("libc::close({fd}) failed: errno {}", errno()))
                }
                Owned::File(path) => std::fs::remove_file(&path)
                    .err()
                    .filter(|e| e.kind() != std::io::ErrorKind::NotFound)
                    .map(|e| format!("removing {}: {e}", path.display())),
                Owned::Dir(path) => std::fs::remove_dir(&path)
                    .err()
                    .map(|e| format!("removing {}: {e}", path.display())),
            };
            if let Some(failure) = failure
                && checked
            {
                self.problems.push(format!("cleanup: {failure}"));
            }
        }
    }

    /// Releases every resource and returns what the run observed.
    pub fn finish(mut self) -> Observed {
        self.release(true);
        let called = self.called.clone();
        let (ret, errno, target_is_socket, sigpipe, message) = match called {
            Some(c) => {
                let ret = if self.new_fd_ret && c.ret >= 0 {
                    "a new fd".to_owned()
                } else {
                    c.ret.to_string()
                };
                (ret, describe_errno(c.errno), c.target_is_socket, c.sigpipe, c.message)
            }
            None => {
                self.problems.push("the case made no mirror call".to_owned());
                (String::new(), String::new(), false, false, None)
            }
        };
        Observed {
            ret,
            errno,
            outs: std::mem::take(&mut self.outs),
            target_is_socket,
            sigpipe,
            cloexec: std::mem::take(&mut self.cloexec),
            message,
            problems: std::mem::take(&mut self.problems),
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // Only reached with resources left when a case panicked: best effort.
        self.release(false);
    }
}

/// Whether `fd` is an open socket (checked with `fstat`, which safesock never sees).
pub fn is_socket(fd: c_int) -> bool {
    if fd < 0 {
        return false;
    }
    // SAFETY: stat is plain data; fstat fills it or fails without touching it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer refers to the local above.
    let rc = unsafe { libc::fstat(fd, &mut st) };
    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
}

/// A new descriptor's properties except its number and close-on-exec flag
/// (the documented difference), and that flag.
fn describe_new_fd(fd: c_int) -> (String, bool) {
    // SAFETY: F_GETFD/F_GETFL take no pointer.
    let (fd_flags, fl_flags) = unsafe { (libc::fcntl(fd, libc::F_GETFD), libc::fcntl(fd, libc::F_GETFL)) };
    let properties = format!(
        "open={} O_NONBLOCK={} accmode={} type={} domain={} protocol={} listening={}",
        fd_flags >= 0,
        fl_flags >= 0 && fl_flags & libc::O_NONBLOCK != 0,
        fl_flags & libc::O_ACCMODE,
        getsockopt_int(fd, libc::SO_TYPE),
        getsockopt_int(fd, libc::SO_DOMAIN),
        getsockopt_int(fd, libc::SO_PROTOCOL),
        getsockopt_int(fd, libc::SO_ACCEPTCONN),
    );
    (properties, fd_flags >= 0 && fd_flags & libc::FD_CLOEXEC != 0)
}

/// What a case expects of the two observations.
#[derive(Clone, Copy)]
pub enum Expect {
    /// The drop-in rule: equal, up to the documented differences every case allows.
    Same,
    /// A documented difference with its own check of (libc, ss).
    Documented(fn(&Observed, &Observed) -> Result<(), String>),
}

/// A named case: prepares fresh resources on a probe and makes one mirror call.
#[derive(Clone)]
pub struct Case {
    pub name: String,
    pub run: Arc<dyn Fn(&mut Probe) + Send + Sync>,
    pub expect: Expect,
}

impl Case {
    pub fn new(name: impl Into<String>, run: impl Fn(&mut Probe) + Send + Sync + 'static) -> Self {
        Case {
            name: name.into(),
            run: Arc::new(run),
            expect: Expect::Same,
        }
    }

    pub fn documented(
        name: impl Into<String>,
        check: fn(&Observed, &Observed) -> Result<(), String>,
        run: impl Fn(&mut Probe) + Send + Sync + 'static,
    ) -> Self {
        Case {
            expect: Expect::Documented(check),
            ..Case::new(name, run)
        }
    }
}

/// The cases of one mirror function.
pub struct Table {
    pub func: &'static str,
    pub cases: Vec<Case>,
}

/// The outcome of one table.
pub struct TableReport {
    pub func: &'static str,
    pub cases: usize,
    pub documented: usize,
    pub mismatches: Vec<String>,
    /// Cases that took longer than [`SLOW_CASE`] (a wait ran into its timeout).
    pub slow: Vec<String>,
}

/// A case slower than this waited for something that never came.
pub const SLOW_CASE: std::time::Duration = std::time::Duration::from_secs(1);

fn run_side(api: &'static Api, case: &Case) -> Observed {
    let mut probe = Probe::new(api);
    match catch_unwind(AssertUnwindSafe(|| (case.run)(&mut probe))) {
        Ok(()) => probe.finish(),
        Err(panic) => {
            probe.problem(format!("the case panicked: {}", panic_text(&*panic)));
            probe.finish()
        }
    }
}

/// The differences between the libc and `ss_` observations that the
/// contract does not allow (empty when the drop-in rule holds).
pub fn compare(func: &str, libc_side: &Observed, ss_side: &Observed) -> Vec<String> {
    let mut diffs = Vec::new();
    for (side, obs) in [("libc", libc_side), ("ss", ss_side)] {
        for problem in &obs.problems {
            diffs.push(format!("{side} side: {problem}"));
        }
    }
    if libc_side.ret != ss_side.ret {
        diffs.push(format!("return value: libc {} vs ss {}", libc_side.ret, ss_side.ret));
    }
    if libc_side.errno != ss_side.errno {
        diffs.push(format!("errno: libc {} vs ss {}", libc_side.errno, ss_side.errno));
    }
    if libc_side.outs != ss_side.outs {
        for i in 0..libc_side.outs.len().max(ss_side.outs.len()) {
            let l = libc_side.outs.get(i);
            let s = ss_side.outs.get(i);
            if l != s {
                diffs.push(format!("out-parameter/state: libc {l:?} vs ss {s:?}"));
            }
        }
    }
    for (label, cloexec) in &ss_side.cloexec {
        if !cloexec {
            diffs.push(format!("{label} from ss lacks FD_CLOEXEC (documented default 1)"));
        }
    }
    if ss_side.sigpipe && ss_side.target_is_socket {
        diffs.push("ss raised SIGPIPE on a socket (documented default 2 forbids it)".to_owned());
    }
    if !ss_side.target_is_socket && ss_side.sigpipe != libc_side.sigpipe {
        diffs.push(format!(
            "SIGPIPE on a non-socket: libc raised={} vs ss raised={}",
            libc_side.sigpipe, ss_side.sigpipe
        ));
    }
    if let Some(message) = &ss_side.message {
        let call = format!("{func}(");
        if !message.starts_with(&call) {
            diffs.push(format!("ss_last_error() does not name the call: {message:?}"));
        }
    }
    diffs
}

/// Set to a substring of "ss_func [case name]" to print the observations of
/// the matching cases even when they agree.
pub const SHOW_ENV: &str = "SSDIFF_SHOW";

/// Runs each table on its own thread (the tables are independent: every
/// case prepares its own resources) and returns the reports in order.
pub fn run_tables_in_parallel(tables: &[Table]) -> Vec<TableReport> {
    std::thread::scope(|s| {
        let running: Vec<_> = tables.iter().map(|t| s.spawn(move || run_table(t))).collect();
        running
            .into_iter()
            .map(|r| r.join().expect("a table thread panicked"))
            .collect()
    })
}

/// Runs every case of `table` once per side, each on fresh resources, and compares.
pub fn run_table(table: &Table) -> TableReport {
    let mut names = std::collections::HashSet::new();
    let mut mismatches = Vec::new();
    let mut documented = 0;
    let show = std::env::var(SHOW_ENV).ok();
    let mut slow = Vec::new();
    for case in &table.cases {
        assert!(
            names.insert(case.name.as_str()),
            "{}: duplicate case name {:?}",
            table.func,
            case.name
        );
        let started = std::time::Instant::now();
        let libc_side = run_side(&LIBC, case);
        let ss_side = run_side(&SS, case);
        let elapsed = started.elapsed();
        if elapsed > SLOW_CASE {
            slow.push(format!("{} [{}] took {elapsed:.1?}", table.func, case.name));
        }
        let diffs = match case.expect {
            Expect::Same => compare(table.func, &libc_side, &ss_side),
            Expect::Documented(check) => {
                documented += 1;
                let mut diffs: Vec<String> = [&libc_side, &ss_side]
                    .iter()
                    .flat_map(|o| o.problems.iter().cloned())
                    .collect();
                if let Err(e) = check(&libc_side, &ss_side) {
                    diffs.push(e);
                }
                diffs
            }
        };
        if show
            .as_deref()
            .is_some_and(|s| format!("{} [{}]", table.func, case.name).contains(s))
        {
            eprintln!(
                "{} [{}]:\n    libc: {libc_side}\n    ss:   {ss_side}",
                table.func, case.name
            );
        }
        if !diffs.is_empty() {
            mismatches.push(format!(
                "{} [{}]:\n    libc: {libc_side}\n    ss:   {ss_side}\n    - {}",
                table.func,
                case.name,
                diffs.join("\n    - ")
            ));
        }
    }
    TableReport {
        func: table.func,
        cases: table.cases.len(),
        documented,
        mismatches,
        slow,
    }
}
