//! What the tests that build and run things need: the repository root,
//! external tools that must be installed, running a command to the end,
//! and running one test of the current test binary again in a child.

use std::path::Path;
use std::process::{Command, Stdio};

/// The repository root (where `Cargo.toml` is).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Fails with a clear message when `tool` cannot be started: it is needed
/// for `what`, and Debian/Ubuntu's `package` has it.
#[track_caller]
pub fn require(tool: &str, what: &str, package: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "`{tool}` was not found on PATH; it is needed for {what} \
         (on Debian/Ubuntu: apt-get install {package}; .ci/run installs it)"
    );
}

/// Runs `cmd` to the end; panics with its output if it cannot start or
/// fails. Returns its standard output.
#[track_caller]
pub fn run(cmd: &mut Command, what: &str) -> String {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?} (is it installed?): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}): {cmd:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    stdout
}

/// The arguments that make a test binary run only `test`, on one thread,
/// with its output shown.
pub fn only_test_args(test: &str) -> [&str; 4] {
    ["--exact", test, "--nocapture", "--test-threads=1"]
}

/// A command that runs this test binary again, with only `test`.
pub fn rerun(test: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test knows its executable"));
    cmd.args(only_test_args(test));
    cmd
}
