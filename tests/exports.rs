//! What a C user gets: the symbols the shared library exports, the header
//! (self-contained, valid C11 and C++17, usable for linking a program against
//! `libsafesock.so`), and that the committed `include/safesock.h` is exactly
//! what the build generates.
//!
//! The shared library and the build script's output are found next to this
//! test executable (`target/<profile>/deps/exports-*`): the cdylib is built
//! with the test profile as `target/<profile>/libsafesock.so`. The tools `nm`,
//! `gcc` and `g++` are required; a missing tool fails the test with a clear message.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use common::{TempDir, repo_root, run};

/// The 23 mirror functions of API.md section 1.
const MIRRORS: [&str; 23] = [
    "ss_socket",
    "ss_socketpair",
    "ss_bind",
    "ss_listen",
    "ss_connect",
    "ss_accept",
    "ss_accept4",
    "ss_read",
    "ss_write",
    "ss_recv",
    "ss_send",
    "ss_readv",
    "ss_writev",
    "ss_recvmsg",
    "ss_sendmsg",
    "ss_recvfrom",
    "ss_sendto",
    "ss_shutdown",
    "ss_close",
    "ss_getsockname",
    "ss_getpeername",
    "ss_getsockopt",
    "ss_setsockopt",
];

/// The diagnostics functions of API.md section 2.
const DIAGNOSTICS: [&str; 4] = ["ss_last_error", "ss_clear_error", "ss_errno_name", "ss_version"];

/// `target/<profile>`: the parent of the `deps` directory holding this test.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its executable");
    let deps = exe.parent().expect("the test executable is in a directory");
    assert_eq!(
        deps.file_name().and_then(|n| n.to_str()),
        Some("deps"),
        "expected the test executable under target/<profile>/deps, found {}",
        exe.display()
    );
    deps.parent().expect("deps has a parent").to_path_buf()
}

/// The shared library of the profile the tests were built with. `cargo test`
/// builds only the Rust library for the tests, so the cdylib is built here
/// (a no-op when it is up to date); tests in one binary share one build.
fn shared_library() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    let profile = profile_dir();
    BUILT.call_once(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.current_dir(repo_root()).args(["build", "--lib", "--quiet"]);
        if profile.file_name().and_then(|n| n.to_str()) == Some("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build for the cdylib");
        assert!(status.success(), "cargo build --lib failed: {status}");
    });
    let lib = profile.join("libsafesock.so");
    assert!(lib.is_file(), "{} is missing after cargo build --lib", lib.display());
    lib
}

#[test]
fn shared_library_exports_only_ss_functions() {
    let lib = shared_library();
    let text = run(Command::new("nm").args(["-D", "--defined-only"]).arg(&lib), "nm");
    // name -> nm type letter
    let mut symbols = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [_, kind, name] | [kind, name] => {
                symbols.insert(name.to_string(), kind.to_string());
            }
            _ => panic!("unexpected nm line {line:?}"),
        }
    }
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for kind in symbols.values() {
        *by_kind.entry(kind).or_default() += 1;
    }
    println!("{} defined dynamic symbols by nm type: {by_kind:?}", symbols.len());
    let foreign: Vec<String> = symbols
        .iter()
        .filter(|(name, kind)| !(name.starts_with("ss_") && kind.as_str() == "T"))
        .map(|(name, kind)| format!("{kind} {name}"))
        .collect();
    assert!(
        foreign.is_empty(),
        "{} exports symbols other than ss_ functions: {foreign:#?}",
        lib.display()
    );
    let missing: Vec<&str> = MIRRORS
        .iter()
        .chain(&DIAGNOSTICS)
        .copied()
        .filter(|name| !symbols.contains_key(*name))
        .collect();
    assert!(missing.is_empty(), "missing exports: {missing:?}");
    let extra: Vec<&String> = symbols
        .keys()
        .filter(|name| !MIRRORS.contains(&name.as_str()) && !DIAGNOSTICS.contains(&name.as_str()))
        .collect();
    println!("all 23 mirror functions and 4 diagnostics exported; other ss_ functions: {extra:?}");
}

/// A C/C++ source that includes only `<safesock.h>` and takes the address of
/// every function with the exact type API.md gives it.
const HEADER_ONLY: &str = r#"#include <safesock.h>

int main(void) {
    int (*socket_)(int, int, int) = ss_socket;
    int (*socketpair_)(int, int, int, int *) = ss_socketpair;
    int (*bind_)(int, const struct sockaddr *, socklen_t) = ss_bind;
    int (*listen_)(int, int) = ss_listen;
    int (*connect_)(int, const struct sockaddr *, socklen_t) = ss_connect;
    int (*accept_)(int, struct sockaddr *, socklen_t *) = ss_accept;
    int (*accept4_)(int, struct sockaddr *, socklen_t *, int) = ss_accept4;
    ssize_t (*read_)(int, void *, size_t) = ss_read;
    ssize_t (*write_)(int, const void *, size_t) = ss_write;
    ssize_t (*recv_)(int, void *, size_t, int) = ss_recv;
    ssize_t (*send_)(int, const void *, size_t, int) = ss_send;
    ssize_t (*readv_)(int, const struct iovec *, int) = ss_readv;
    ssize_t (*writev_)(int, const struct iovec *, int) = ss_writev;
    ssize_t (*recvmsg_)(int, struct msghdr *, int) = ss_recvmsg;
    ssize_t (*sendmsg_)(int, const struct msghdr *, int) = ss_sendmsg;
    ssize_t (*recvfrom_)(int, void *, size_t, int, struct sockaddr *, socklen_t *) = ss_recvfrom;
    ssize_t (*sendto_)(int, const void *, size_t, int, const struct sockaddr *, socklen_t) = ss_sendto;
    int (*shutdown_)(int, int) = ss_shutdown;
    int (*close_)(int) = ss_close;
    int (*getsockname_)(int, struct sockaddr *, socklen_t *) = ss_getsockname;
    int (*getpeername_)(int, struct sockaddr *, socklen_t *) = ss_getpeername;
    int (*getsockopt_)(int, int, int, void *, socklen_t *) = ss_getsockopt;
    int (*setsockopt_)(int, int, int, const void *, socklen_t) = ss_setsockopt;
    const char *(*last_error_)(void) = ss_last_error;
    void (*clear_error_)(void) = ss_clear_error;
    const char *(*errno_name_)(int) = ss_errno_name;
    const char *(*version_)(void) = ss_version;
    struct sockaddr_storage storage;
    struct iovec iov;
    struct msghdr msg;
    (void)socket_; (void)socketpair_; (void)bind_; (void)listen_; (void)connect_;
    (void)accept_; (void)accept4_; (void)read_; (void)write_; (void)recv_; (void)send_;
    (void)readv_; (void)writev_; (void)recvmsg_; (void)sendmsg_; (void)recvfrom_;
    (void)sendto_; (void)shutdown_; (void)close_; (void)getsockname_; (void)getpeername_;
    (void)getsockopt_; (void)setsockopt_; (void)last_error_; (void)clear_error_;
    (void)errno_name_; (void)version_;
    (void)storage; (void)iov; (void)msg;
    return SS_VERSION_MAJOR + SS_VERSION_MINOR + SS_VERSION_PATCH >= 0 ? 0 : 1;
}
"#;

/// Compiles [`HEADER_ONLY`] with `compiler` in `std` mode, warnings as errors.
fn compile_header_alone(compiler: &str, std: &str, file: &str) {
    let dir = TempDir::new(&format!("exports-{compiler}"));
    let source = dir.write(file, HEADER_ONLY);
    let object = dir.path().join("header_only.o");
    let include = repo_root().join("include");
    run(
        Command::new(compiler)
            .arg(format!("-std={std}"))
            .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
            .arg(&include)
            .arg("-c")
            .arg(&source)
            .arg("-o")
            .arg(&object),
        compiler,
    );
    assert!(object.is_file());
    println!("{compiler} -std={std}: safesock.h compiles alone");
}

#[test]
fn header_compiles_alone_as_c11() {
    compile_header_alone("gcc", "c11", "header_only.c");
}

#[test]
fn header_compiles_alone_as_cpp17() {
    compile_header_alone("g++", "c++17", "header_only.cpp");
}

const LINKED_PROGRAM: &str = r#"#include <safesock.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    char want[64];
    int fd;
    snprintf(want, sizeof want, "%d.%d.%d", SS_VERSION_MAJOR, SS_VERSION_MINOR, SS_VERSION_PATCH);
    if (strcmp(ss_version(), want) != 0) {
        fprintf(stderr, "ss_version() = %s, header says %s\n", ss_version(), want);
        return 1;
    }
    if (strcmp(ss_errno_name(ECONNREFUSED), "ECONNREFUSED") != 0) {
        fprintf(stderr, "ss_errno_name(ECONNREFUSED) = %s\n", ss_errno_name(ECONNREFUSED));
        return 2;
    }
    fd = ss_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || ss_close(fd) != 0) {
        fprintf(stderr, "ss_socket/ss_close: %s\n", ss_last_error());
        return 3;
    }
    if (ss_listen(-1, 1) != -1 || errno != EBADF || strstr(ss_last_error(), "(EBADF)") == NULL) {
        fprintf(stderr, "ss_listen(-1): errno %d, %s\n", errno, ss_last_error());
        return 4;
    }
    printf("version %s\n%s\n", ss_version(), ss_last_error());
    return 0;
}
"#;

#[test]
fn c_program_links_against_the_shared_library_and_runs() {
    let lib = shared_library();
    let lib_dir = lib.parent().expect("library directory");
    let dir = TempDir::new("exports-link");
    let source = dir.write("linked.c", LINKED_PROGRAM);
    let program = dir.path().join("linked");
    let include = repo_root().join("include");
    let rpath = format!("-Wl,-rpath,{}", lib_dir.display());
    run(
        Command::new("gcc")
            .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
            .arg(&include)
            .arg(&source)
            .arg("-o")
            .arg(&program)
            .arg("-L")
            .arg(lib_dir)
            .arg("-lsafesock")
            .arg(&rpath),
        "gcc",
    );
    let text = run(&mut Command::new(&program), "the linked program");
    println!("{text}");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("version {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    let message = lines.next().unwrap_or_default();
    assert!(
        message.starts_with("ss_listen(fd -1, backlog 1): Bad file descriptor (EBADF)"),
        "{message}"
    );
}

/// The newest `target/<profile>/build/safesock-*/out/safesock.h`.
fn generated_header() -> PathBuf {
    let build = profile_dir().join("build");
    let entries = std::fs::read_dir(&build).unwrap_or_else(|e| panic!("cannot read {}: {e}", build.display()));
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("safesock-"))
        .map(|e| e.path().join("out").join("safesock.h"))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((modified, p))
        })
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no safesock-*/out/safesock.h under {}", build.display()))
}

#[test]
fn header_is_fresh() {
    let generated_path = generated_header();
    let committed_path = repo_root().join("include").join("safesock.h");
    let generated = std::fs::read(&generated_path).expect("read generated header");
    let committed = std::fs::read(&committed_path).expect("read include/safesock.h");
    if generated != committed {
        let (g, c) = (String::from_utf8_lossy(&generated), String::from_utf8_lossy(&committed));
        let first = g
            .lines()
            .zip(c.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| g.lines().count().min(c.lines().count()));
        panic!(
            "{} differs from the generated {} from line {}:\n  generated: {:?}\n  committed: {:?}\n\
             rebuild without CI set to refresh the committed header",
            committed_path.display(),
            generated_path.display(),
            first + 1,
            g.lines().nth(first),
            c.lines().nth(first)
        );
    }
    println!(
        "include/safesock.h ({} bytes) matches {}",
        committed.len(),
        generated_path.display()
    );
}

/// API.md: macros carry the `SS_` prefix; nothing else may leak into a user's
/// namespace (a crate constant turned into `#define MAX_TEXT` would clash).
#[test]
fn header_macros_all_have_the_ss_prefix() {
    let header = std::fs::read_to_string(repo_root().join("include/safesock.h")).expect("read include/safesock.h");
    let stray: Vec<&str> = header
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("#define "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|name| !name.starts_with("SS_") && *name != "SAFESOCK_H")
        .collect();
    assert!(stray.is_empty(), "macros without the SS_ prefix: {stray:?}");
    assert!(
        header.contains("#define SS_TCP_TIME_WAIT 6"),
        "SS_TCP_* constants are missing"
    );
}
