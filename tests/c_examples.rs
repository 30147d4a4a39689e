//! Builds and runs the C examples in `c_examples/`, as a C user would.
//!
//! Runs `make -C c_examples test`: the Makefile builds `libsafesock.so` with
//! `cargo build --release`, compiles each example with strict C11 warnings
//! (and the C++ check with strict C++17) against `include/safesock.h`, links
//! it to the shared library, and runs every check: the TCP echo server and
//! client (plain, with `SAFESOCK_TRACE=1`, and refused), the UDP echo pair
//! over 127.0.0.1 and ::1, `handshake`, `teardown`, `close_refcount`,
//! `vectored_io`, `fd_passing`, `mistakes` (plain and traced) and
//! `cpp_check`. Each example exits non-zero when what it demonstrates does
//! not happen. The Makefile's output is printed as it arrives; the test
//! passes when make succeeds and its summary line reads `N passed, 0 failed`
//! with N > 0.
//!
//! A second test checks that every example source in `c_examples/` is built
//! by the Makefile and run by one of its checks, so that no example can be
//! added and silently never run.
//!
//! The same checks run with sanitizers, under valgrind and statically linked
//! through `make -C c_examples asan`, `valgrind` and `static`.
//!
//! Needs `make`, a C compiler (`cc`) and a C++ compiler (`g++`); without them
//! the test fails and says what to install.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{repo_root, require};

/// The counts from a summary line `N passed, M failed`, if `line` is one.
fn summary(line: &str) -> Option<(u32, u32)> {
    let (passed, failed) = line.trim().split_once(" passed, ")?;
    let failed = failed.strip_suffix(" failed")?;
    Some((passed.parse().ok()?, failed.parse().ok()?))
}

#[test]
fn c_examples_build_and_pass() {
    require("make", "the C examples (GNU make)", "build-essential");
    require("cc", "the C examples (a C compiler)", "build-essential");
    require("g++", "the C examples (a C++ compiler)", "build-essential");

    let dir = repo_root().join("c_examples");
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

/// The words of the Makefile variable `name` (`NAME := a b \\ c`), with
/// continuation lines joined.
fn make_list(makefile: &str, name: &str) -> Vec<String> {
    let joined = makefile.replace("\\\n", " ");
    joined
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim_start().strip_prefix(":="))
        .unwrap_or_else(|| panic!("the Makefile has no `{name} :=` line"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_example_is_built_and_checked() {
    let dir = repo_root().join("c_examples");
    let makefile = fs::read_to_string(dir.join("Makefile")).expect("c_examples/Makefile can be read");
    let mut programs = make_list(&makefile, "EXAMPLES");
    programs.extend(make_list(&makefile, "CXX_EXAMPLES"));
    let checks = make_list(&makefile, "CHECKS");

    // Every source file is a program the Makefile builds.
    for entry in fs::read_dir(&dir).expect("c_examples/ can be listed").flatten() {
        let path = entry.path();
        let (Some(stem), Some(ext)) = (path.file_stem().and_then(|s| s.to_str()), path.extension()) else {
            continue;
        };
        if ext == "c" || ext == "cpp" {
            let ext = ext.to_string_lossy();
            assert!(
                programs.iter().any(|p| p == stem),
                "c_examples/{stem}.{ext} is not in EXAMPLES or CXX_EXAMPLES"
            );
        }
    }

    // Every check exists, and every program is run: as a check itself, or
    // by a check script that names it.
    let scripts: Vec<String> = checks
        .iter()
        .filter(|c| c.ends_with(".sh"))
        .map(|c| fs::read_to_string(dir.join(c)).unwrap_or_else(|e| panic!("check {c} cannot be read: {e}")))
        .collect();
    for check in checks.iter().filter(|c| !c.ends_with(".sh")) {
        assert!(
            programs.contains(check),
            "check {check} is neither a script nor a program in EXAMPLES"
        );
    }
    for program in &programs {
        let run = checks.contains(program) || scripts.iter().any(|s| s.contains(&format!("/{program}\"")));
        assert!(run, "the example {program} is built but no check runs it");
    }
}

#[test]
fn makefile_lists_are_parsed() {
    let text = "A := x y \\\n    z\nCHECKS := a.sh b\nB := q\n";
    assert_eq!(make_list(text, "A"), ["x", "y", "z"]);
    assert_eq!(make_list(text, "CHECKS"), ["a.sh", "b"]);
    assert_eq!(make_list(text, "B"), ["q"]);
}
