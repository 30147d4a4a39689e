#!/usr/bin/env bash
# Installs what fuzzing and the sanitizer runs need, idempotently (a second
# run changes nothing and takes a second). Parts, all by default:
#   nightly     the nightly toolchain (cargo fuzz and -Zsanitizer need it);
#   rust-src    its rust-src component (-Zbuild-std, scripts/sanitize.sh);
#   cargo-fuzz  cargo-fuzz, pinned, built from crates.io (about 90 s the
#               first time; scripts/fuzz-ci.sh and fuzz-long.sh).
#
#   scripts/fuzz-setup.sh                     everything
#   scripts/fuzz-setup.sh nightly cargo-fuzz  what fuzzing needs
#
# When the nightly toolchain (or its rust-src) is not installed and rustup
# cannot install it, for want of a route to the toolchain server, that is a
# limit of the machine, not a failure of this project: the script prints one
# line `skipped: <reason>` and exits 77, which the scripts that use it
# (through setup_or_skip in fuzz-common.sh) turn into exit 0. Every other
# failure, cargo-fuzz not building from crates.io among them, is an error.
set -euo pipefail
cd "$(dirname "$0")/.."

toolchain="${FUZZ_TOOLCHAIN:-nightly}"
cargo_fuzz_version="${CARGO_FUZZ_VERSION:-0.13.2}"
parts=" ${*:-nightly rust-src cargo-fuzz} "
for p in $parts; do
  case "$p" in
    nightly | rust-src | cargo-fuzz) ;;
    *) echo "fuzz-setup: unknown part $p (nightly, rust-src, cargo-fuzz)" >&2; exit 2 ;;
  esac
done
want() { [[ "$parts" == *" $1 "* ]]; }

mkdir -p target
log="target/fuzz-setup-rustup.log"

# rustup's own error line (its backtrace and causes stay in the log).
rustup_error() {
  grep -m 1 '^error' "$log" | cut -c 1-200 || echo "see $log"
}

has_toolchain() { rustup run "$toolchain" rustc --version >/dev/null 2>&1; }
has_rust_src() {
  rustup component list --toolchain "$toolchain" --installed 2>/dev/null | grep -q '^rust-src'
}

if ! has_toolchain; then
  components=()
  want rust-src && components=(--component rust-src)
  echo "fuzz-setup: installing the $toolchain toolchain"
  if ! timeout 300 rustup toolchain install "$toolchain" --profile minimal "${components[@]}" >"$log" 2>&1 ||
    ! has_toolchain; then
    echo "skipped: the $toolchain Rust toolchain is not installed and rustup could not install it ($(rustup_error)); fuzzing and sanitizer runs need it"
    exit 77
  fi
fi

if want rust-src && ! has_rust_src; then
  echo "fuzz-setup: adding rust-src to $toolchain"
  if ! timeout 300 rustup component add rust-src --toolchain "$toolchain" >"$log" 2>&1 || ! has_rust_src; then
    echo "skipped: the rust-src component of $toolchain is not installed and rustup could not install it ($(rustup_error)); the sanitizer runs (-Zbuild-std) need it"
    exit 77
  fi
fi

if want cargo-fuzz && ! cargo fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  echo "fuzz-setup: installing cargo-fuzz $cargo_fuzz_version"
  cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

summary="$(rustup run "$toolchain" rustc --version)"
want rust-src && summary="$summary with rust-src"
want cargo-fuzz && summary="$summary, $(cargo fuzz --version)"
echo "fuzz-setup: $summary"
