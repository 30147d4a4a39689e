//! Builds and runs the C examples in `c_examples/`, as a C user would.
//!
//! Runs `make -C c_examples test`: the Makefile builds `libsafesock.so` with
//! `cargo build --release`, compiles each example with strict C11 warnings
//! against `include/safesock.h`, links it to the shared library, and runs
//! every check (the echo server and client against each other, the same with
//! `SAFESOCK_TRACE=1`, a refused connection explained by `ss_last_error()`).
//! The Makefile's output is printed as it arrives; the test passes when make
//! succeeds and its summary line reads `N passed, 0 failed` with N > 0.
//!
//! Needs `make` and a C compiler (`cc`); without them the test fails and says
//! what to install.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// Fails with a clear message when `tool` cannot be started.
fn require(tool: &str, what: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "`{tool}` was not found on PATH; the C examples need {what} \
         (on Debian/Ubuntu: apt-get install build-essential)"
    );
}

/// The counts from a summary line `N passed, M failed`, if `line` is one.
fn summary(line: &str) -> Option<(u32, u32)> {
    let (passed, failed) = line.trim().split_once(" passed, ")?;
    let failed = failed.strip_suffix(" failed")?;
    Some((passed.parse().ok()?, failed.parse().ok()?))
}

#[test]
fn c_examples_build_and_pass() {
    require("make", "GNU make");
    require("cc", "a C compiler");

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("c_examples");
    // `sh -c '... 2>&1'` merges make's standard error into its output, so
    // that compiler errors and failing checks appear where they happened.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(r#"exec make --no-print-directory -C "$1" test 2>&1"#)
        .arg("sh")
        .arg(&dir)
        // Under `cargo test` LD_LIBRARY_PATH names target/debug/deps, which
        // holds a debug libsafesock.so; drop it so the examples load the
        // release library through their rpath, as outside the test.
        .env_remove("LD_LIBRARY_PATH")
        .stdout(Stdio::piped())
        .spawn()
        .expect("`sh` can be started");

    let output = child.stdout.take().expect("stdout is piped");
    let mut last_line = String::new();
    for line in BufReader::new(output).lines() {
        let line = line.expect("make's output can be read");
        println!("{line}");
        if !line.trim().is_empty() {
            last_line = line;
        }
    }
    let status = child.wait().expect("make can be waited for");

    assert!(
        status.success(),
        "`make -C {} test` failed ({status}); its output is above",
        dir.display()
    );
    let (passed, failed) = summary(&last_line)
        .unwrap_or_else(|| panic!("the last line of make test is {last_line:?}, not `N passed, M failed`"));
    assert_eq!(failed, 0, "{failed} C example check(s) failed");
    assert!(passed > 0, "make test ran no checks");
}

#[test]
fn summary_line_is_parsed() {
    assert_eq!(summary("3 passed, 0 failed"), Some((3, 0)));
    assert_eq!(summary("2 passed, 1 failed\n"), Some((2, 1)));
    assert_eq!(summary("--- PASS run_echo.sh"), None);
    assert_eq!(summary("x passed, 0 failed"), None);
}
