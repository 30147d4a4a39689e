# shellcheck shell=bash
# Shared by the fuzz scripts (sourced, not run): which sanitizer each target
# is built with, where its binary is, and the environment it runs in.
#
# `calls` and `messages` pass wild pointers (NULL, 0x1, guard pages, kernel
# addresses) on purpose: safesock must hand them to the kernel and get
# EFAULT. AddressSanitizer's own interceptors of accept4, getsockname,
# recvmsg, readv ... dereference such pointers in user space *before* the
# system call and crash inside ASan (not in safesock, and the same for plain
# libc), so those two targets are built without a sanitizer (libFuzzer's
# coverage and crash detection still apply). `addr` passes only mapped
# memory and runs under ASan. scripts/sanitize.sh covers the rest.

toolchain="${FUZZ_TOOLCHAIN:-nightly}"
triple="x86_64-unknown-linux-gnu"

sanitizer_of() {
  case "$1" in
    addr) echo address ;;
    *) echo none ;;
  esac
}

# Largest input each target reads.
max_len_of() {
  case "$1" in
    calls) echo 1024 ;;
    addr) echo 2048 ;;
    *) echo 1200 ;;
  esac
}

# Runs a command (the rest of the arguments) in the environment target $1
# is fuzzed in: `messages` with SAFESOCK_TRACE=/dev/null, so every trace
# line is built too and the trace formatting is fuzzed; the others with
# tracing off, whatever the caller's environment says.
with_env_of() {
  local t="$1"
  shift
  if [ "$t" = messages ]; then
    env SAFESOCK_TRACE=/dev/null "$@"
  else
    env -u SAFESOCK_TRACE "$@"
  fi
}

# The command line that replays input $2 of target $1 as the scripts run it.
replay_command_of() {
  local prefix=""
  if [ "$1" = messages ] || [[ "$2" == *SAFESOCK_TRACE* ]]; then
    prefix="SAFESOCK_TRACE=/dev/null "
  fi
  echo "$prefix$(binary_of "$1") $2"
}

# One build directory per sanitizer, so switching does not rebuild all.
target_dir_of() {
  echo "fuzz/target/$(sanitizer_of "$1")"
}

binary_of() {
  echo "$(target_dir_of "$1")/$triple/release/$1"
}

# Runs the fuzzer of target $1 for $2 seconds with the settings every run
# shares (timeouts, memory limit, input size, where findings go); the rest
# of the arguments are extra libFuzzer flags, then the corpus directories.
run_fuzzer() {
  local t="$1" seconds="$2"
  shift 2
  with_env_of "$t" "$(binary_of "$t")" \
    -max_total_time="$seconds" \
    -timeout=60 \
    -rss_limit_mb=4096 \
    -max_len="$(max_len_of "$t")" \
    -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" \
    "$@"
}

build_target() {
  cargo "+$toolchain" fuzz build --sanitizer "$(sanitizer_of "$1")" --target-dir "$(target_dir_of "$1")" "$1"
}

# Runs scripts/fuzz-setup.sh with the given parts. When the nightly
# toolchain is missing and cannot be installed (no route to the toolchain
# server: an environment limit, not a failure of this code), fuzz-setup.sh
# prints one `skipped: <reason>` line and exits 77; the calling script then
# stops with exit 0. Any other failure of the setup is returned as it is.
setup_or_skip() {
  local status=0
  bash scripts/fuzz-setup.sh "$@" || status=$?
  if [ "$status" -eq 77 ]; then
    exit 0
  fi
  return "$status"
}
