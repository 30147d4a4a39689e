//! Installs safesock the way a C user gets it, and builds against the installed copy.
//!
//! Runs the top-level `make install PREFIX=<tmp>/prefix DESTDIR=` and checks
//! what it installed: `include/safesock.h`, `lib/libsafesock.a`,
//! `lib/libsafesock.so.VERSION` whose SONAME is `libsafesock.so.MAJOR`, the
//! `libsafesock.so.MAJOR` and `libsafesock.so` symlinks, and
//! `lib/pkgconfig/safesock.pc` pointing at the prefix. Then it builds C
//! examples from `c_examples/` with nothing but the flags `pkg-config` gives:
//!
//! - `pkg-config --cflags --libs safesock`: linked to the shared library;
//!   the programs must record the SONAME and load the library from the prefix;
//! - `pkg-config --static --cflags --libs safesock` with `-lsafesock` wrapped
//!   in `-Wl,-Bstatic ... -Wl,-Bdynamic`: linked to `libsafesock.a`; the
//!   programs must not need any `libsafesock.so` at all.
//!
//! Each build runs the echo server and client against each other
//! (`c_examples/run_echo.sh`) and `vectored_io`. Then `make uninstall` must
//! leave no file behind (empty directories may stay). A second install into a
//! staging directory (`DESTDIR=<tmp>/stage PREFIX=/usr/local`) checks that
//! DESTDIR only moves the files, and the `.pc` still says `/usr/local`.
//!
//! The programs run without `LD_LIBRARY_PATH` (`cargo test` sets it to
//! `target/debug/deps`, which would hide a wrong rpath). The first install
//! builds the release library in `target/install` (about 20 s).
//!
//! Needs `make`, `cc`, `readelf` and `pkg-config`; without them the test fails
//! and says what to install (`.ci/run` installs them).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TempDir, repo_root, require, run};

/// The version the installed file names carry, as in Cargo.toml.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The major version: the SONAME is `libsafesock.so.MAJOR`.
fn major() -> &'static str {
    VERSION.split('.').next().expect("a version has a major part")
}

/// A command with `LD_LIBRARY_PATH` removed, so that programs load libraries
/// only as their own rpath and the system say.
fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

/// `make -C <root> TARGET PREFIX=prefix DESTDIR=destdir`.
fn make(target: &str, prefix: &str, destdir: &str) {
    println!("make {target} PREFIX={prefix} DESTDIR={destdir}");
    run(
        command("make")
            .arg("--no-print-directory")
            .arg("-C")
            .arg(repo_root())
            .arg(target)
            .arg(format!("PREFIX={prefix}"))
            .arg(format!("DESTDIR={destdir}")),
        &format!("make {target}"),
    );
}

/// The words `pkg-config ARGS safesock` prints, with the `.pc` files of `pc_dir`.
fn pkg_config(pc_dir: &Path, args: &[&str]) -> Vec<String> {
    let out = run(
        command("pkg-config")
            .env("PKG_CONFIG_PATH", pc_dir)
            .args(args)
            .arg("safesock"),
        &format!("pkg-config {}", args.join(" ")),
    );
    out.split_whitespace().map(str::to_owned).collect()
}

/// The text between the brackets of each `readelf -d` line of kind `tag`
/// (`NEEDED`, `SONAME`, `RUNPATH`): "0x1 (NEEDED) Shared library: [libc.so.6]" -> "libc.so.6".
fn dynamic_entries(readelf_output: &str, tag: &str) -> Vec<String> {
    let kind = format!("({tag})");
    readelf_output
        .lines()
        .filter(|line| line.split_whitespace().nth(1) == Some(kind.as_str()))
        .filter_map(|line| {
            let start = line.find('[')? + 1;
            let end = line[start..].find(']')? + start;
            Some(line[start..end].to_owned())
        })
        .collect()
}

/// `readelf -d` of `file`.
fn readelf(file: &Path) -> String {
    run(command("readelf").arg("-d").arg(file), "readelf -d")
}

/// Every file and symlink under `dir`, recursively (directories are not listed).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else { return found };
    for entry in entries.flatten() {
        let path = entry.path();
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => found.extend(files_under(&path)),
            _ => found.push(path),
        }
    }
    found
}

/// Compiles `c_examples/NAME.c` into `build/NAME` with strict C11 and the given
/// compiler and linker words.
fn compile(build: &Path, name: &str, cflags: &[String], libs: &[String]) -> PathBuf {
    let source = repo_root().join("c_examples").join(format!("{name}.c"));
    let out = build.join(name);
    run(
        command("cc")
            .args([
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-D_POSIX_C_SOURCE=200809L",
            ])
            .args(cflags)
            .arg("-o")
            .arg(&out)
            .arg(&source)
            .args(libs),
        &format!("compiling {name}.c with the pkg-config flags"),
    );
    out
}

/// Builds the echo pair and vectored_io into `build` and runs them.
fn build_and_run(build: &Path, cflags: &[String], libs: &[String]) -> Vec<PathBuf> {
    fs::create_dir_all(build).expect("the build directory can be created");
    let programs: Vec<PathBuf> = ["echo_server", "echo_client", "vectored_io"]
        .iter()
        .map(|name| compile(build, name, cflags, libs))
        .collect();
    let echo = run(
        command("sh")
            .arg(repo_root().join("c_examples").join("run_echo.sh"))
            .env("EXAMPLES_BUILD", build)
            .env_remove("EXAMPLES_WRAPPER")
            .env_remove("SAFESOCK_TRACE"),
        "the echo pair built against the installed library",
    );
    assert!(echo.contains("run_echo: OK"), "run_echo.sh did not report OK:\n{echo}");
    let vectored = run(
        &mut command(build.join("vectored_io")),
        "vectored_io built against the installed library",
    );
    assert!(
        vectored.contains("vectored_io: OK"),
        "vectored_io did not report OK:\n{vectored}"
    );
    programs
}

/// The `prefix=` line of a `.pc` file.
fn pc_prefix(pc: &Path) -> String {
    let text = fs::read_to_string(pc).unwrap_or_else(|e| panic!("{} cannot be read: {e}", pc.display()));
    text.lines()
        .find_map(|l| l.strip_prefix("prefix="))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Fails with the likely cause when the installed `.pc` names another prefix.
fn assert_pc_prefix(pc: &Path, prefix: &str) {
    let found = pc_prefix(pc);
    assert_eq!(
        found,
        prefix,
        "{} says prefix={found}, but make install was given PREFIX={prefix}. \
         The top-level Makefile makes safesock.pc in the repository root by a rule that depends only on \
         safesock.pc.in and Cargo.toml, so an earlier install's file (with its PREFIX) is installed again; \
         the .pc must be regenerated for every install",
        pc.display()
    );
}

#[test]
fn install_build_against_it_and_uninstall() {
    const FOR: &str = "the packaging test";
    require("make", FOR, "make");
    require("cc", FOR, "gcc");
    require("readelf", FOR, "binutils");
    require("pkg-config", FOR, "pkg-config");

    let tmp = TempDir::new("packaging");
    let prefix_dir = tmp.path().join("prefix");
    let prefix = prefix_dir.to_str().expect("the temporary path is UTF-8").to_owned();
    let lib = prefix_dir.join("lib");
    let pc_dir = lib.join("pkgconfig");
    let real_so = format!("libsafesock.so.{VERSION}");
    let soname = format!("libsafesock.so.{}", major());

    // 1. Install, and check every file.
    make("install", &prefix, "");
    let header = fs::read(prefix_dir.join("include/safesock.h")).expect("include/safesock.h is installed");
    assert_eq!(
        header,
        fs::read(repo_root().join("include/safesock.h")).unwrap(),
        "the installed header is the repository's"
    );
    assert!(lib.join("libsafesock.a").is_file(), "lib/libsafesock.a is installed");
    let so_meta = fs::symlink_metadata(lib.join(&real_so)).expect("the shared library is installed");
    assert!(so_meta.file_type().is_file(), "lib/{real_so} is a regular file");
    assert_eq!(
        fs::read_link(lib.join(&soname)).ok(),
        Some(PathBuf::from(&real_so)),
        "lib/{soname} -> {real_so}"
    );
    assert_eq!(
        fs::read_link(lib.join("libsafesock.so")).ok(),
        Some(PathBuf::from(&soname)),
        "lib/libsafesock.so -> {soname}"
    );
    assert_eq!(
        dynamic_entries(&readelf(&lib.join(&real_so)), "SONAME"),
        [soname.as_str()],
        "the SONAME of {real_so}"
    );
    let pc = pc_dir.join("safesock.pc");
    assert!(pc.is_file(), "lib/pkgconfig/safesock.pc is installed");
    assert_pc_prefix(&pc, &prefix);
    assert_eq!(
        pkg_config(&pc_dir, &["--modversion"]),
        [VERSION],
        "pkg-config --modversion"
    );

    // 2. Build with `pkg-config --cflags --libs` only: the shared library.
    let cflags = pkg_config(&pc_dir, &["--cflags"]);
    let mut libs = pkg_config(&pc_dir, &["--libs"]);
    assert!(
        cflags.contains(&format!("-I{prefix}/include")),
        "pkg-config --cflags names the prefix: {cflags:?}"
    );
    assert!(
        libs.contains(&format!("-L{prefix}/lib")),
        "pkg-config --libs names the prefix: {libs:?}"
    );
    // The run-time search path: the library is not in a system directory.
    libs.push(format!("-Wl,-rpath,{prefix}/lib"));
    for program in build_and_run(&tmp.path().join("build-shared"), &cflags, &libs) {
        let dynamic = readelf(&program);
        let needed = dynamic_entries(&dynamic, "NEEDED");
        assert!(
            needed.contains(&soname),
            "{} records the SONAME {soname}: {needed:?}",
            program.display()
        );
        let ldd = run(command("ldd").arg(&program), "ldd");
        let expected = format!("{soname} => {prefix}/lib/{soname}");
        assert!(
            ldd.contains(&expected),
            "{} loads the installed library ({expected}):\n{ldd}",
            program.display()
        );
    }

    // 3. Build with `pkg-config --static`: libsafesock.a, and its native libraries.
    let static_flags = pkg_config(&pc_dir, &["--static", "--cflags", "--libs"]);
    assert!(
        static_flags.iter().any(|w| w == "-lsafesock"),
        "pkg-config --static --libs has -lsafesock: {static_flags:?}"
    );
    let (static_cflags, static_libs): (Vec<String>, Vec<String>) = static_flags
        .into_iter()
        .partition(|w| w.starts_with("-I") || w.starts_with("-D"));
    // -lsafesock alone would pick libsafesock.so; -Bstatic makes the linker take the archive.
    let static_libs: Vec<String> = static_libs
        .into_iter()
        .flat_map(|w| {
            if w == "-lsafesock" {
                vec!["-Wl,-Bstatic".to_owned(), w, "-Wl,-Bdynamic".to_owned()]
            } else {
                vec![w]
            }
        })
        .collect();
    for program in build_and_run(&tmp.path().join("build-static"), &static_cflags, &static_libs) {
        let needed = dynamic_entries(&readelf(&program), "NEEDED");
        assert!(
            !needed.iter().any(|n| n.starts_with("libsafesock")),
            "{} is linked statically yet needs {needed:?}",
            program.display()
        );
    }

    // 4. Uninstall: no file may remain.
    make("uninstall", &prefix, "");
    let left = files_under(&prefix_dir);
    assert!(left.is_empty(), "make uninstall left files behind: {left:?}");

    // 5. A staged install for packagers: DESTDIR moves the files, the .pc keeps PREFIX.
    let stage = tmp.path().join("stage");
    let stage_text = stage.to_str().expect("the temporary path is UTF-8").to_owned();
    make("install", "/usr/local", &stage_text);
    let staged = stage.join("usr/local");
    for file in ["include/safesock.h", "lib/libsafesock.a", "lib/pkgconfig/safesock.pc"] {
        assert!(staged.join(file).is_file(), "DESTDIR install has {file}");
    }
    assert!(
        fs::symlink_metadata(staged.join("lib").join(&soname)).is_ok(),
        "DESTDIR install has lib/{soname}"
    );
    assert_pc_prefix(&staged.join("lib/pkgconfig/safesock.pc"), "/usr/local");
    make("uninstall", "/usr/local", &stage_text);
    let left = files_under(&stage);
    assert!(
        left.is_empty(),
        "make uninstall with DESTDIR left files behind: {left:?}"
    );
}

#[test]
fn readelf_lines_are_parsed() {
    let sample = "\
Dynamic section at offset 0x2d88 contains 27 entries:
  Tag        Type                         Name/Value
 0x0000000000000001 (NEEDED)             Shared library: [libsafesock.so.0]
 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]
 0x000000000000000e (SONAME)             Library soname: [libsafesock.so.0]
 0x000000000000001d (RUNPATH)            Library runpath: [/tmp/p/lib]
";
    assert_eq!(dynamic_entries(sample, "NEEDED"), ["libsafesock.so.0", "libc.so.6"]);
    assert_eq!(dynamic_entries(sample, "SONAME"), ["libsafesock.so.0"]);
    assert_eq!(dynamic_entries(sample, "RUNPATH"), ["/tmp/p/lib"]);
    assert!(dynamic_entries(sample, "RPATH").is_empty());
}
