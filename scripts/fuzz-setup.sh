#!/usr/bin/env bash
# Installs what fuzzing and the sanitizer runs need, idempotently (a second
# run changes nothing and takes a second):
#   - the nightly toolchain (cargo fuzz and -Zsanitizer need it),
#   - its rust-src component (-Zbuild-std for the sanitizer runs),
#   - cargo-fuzz, pinned, built from crates.io (about 90 s the first time).
# Used by scripts/fuzz-ci.sh, scripts/fuzz-long.sh and scripts/sanitize.sh.
set -euo pipefail

toolchain="${FUZZ_TOOLCHAIN:-nightly}"
cargo_fuzz_version="${CARGO_FUZZ_VERSION:-0.13.2}"

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  echo "fuzz-setup: installing the $toolchain toolchain"
  rustup toolchain install "$toolchain" --profile minimal
fi

if ! rustup component list --toolchain "$toolchain" --installed 2>/dev/null | grep -q '^rust-src'; then
  echo "fuzz-setup: adding rust-src to $toolchain"
  rustup component add rust-src --toolchain "$toolchain"
fi

if cargo fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  :
else
  echo "fuzz-setup: installing cargo-fuzz $cargo_fuzz_version"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

echo "fuzz-setup: $(rustup run "$toolchain" rustc --version), $(cargo fuzz --version)"
