//! Generates `include/safesock.h` from the exported Rust functions with cbindgen.
//!
//! The header is committed so that C users need no Rust tooling to read it. The
//! build writes the generated text to `OUT_DIR/safesock.h` and refreshes the
//! committed copy when it differs; under CI (`CI` set) it leaves the committed
//! copy alone so that the `header_is_fresh` test can catch a stale one.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));

    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=CI");

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    config.after_includes = Some(version_macros());

    let generated = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen can read the exported functions");

    let mut text = Vec::new();
    generated.write(&mut text);
    fs::write(out_dir.join("safesock.h"), &text).expect("OUT_DIR is writable");

    let committed = crate_dir.join("include").join("safesock.h");
    let in_ci = env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    if !in_ci && fs::read(&committed).ok().as_deref() != Some(text.as_slice()) {
        fs::create_dir_all(committed.parent().expect("header path has a parent")).expect("include/ can be created");
        fs::write(&committed, &text).expect("include/safesock.h is writable");
    }
}

/// The `SS_VERSION_*` macros, taken from the package version so they cannot drift.
fn version_macros() -> String {
    let part = |name: &str| env::var(name).expect("cargo sets the version parts");
    format!(
        "\n\n/** Major version of the safesock this header belongs to. */\n#define SS_VERSION_MAJOR {}\n\
         /** Minor version of the safesock this header belongs to. */\n#define SS_VERSION_MINOR {}\n\
         /** Patch version of the safesock this header belongs to. */\n#define SS_VERSION_PATCH {}",
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
    )
}
