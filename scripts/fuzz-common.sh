# Shared by the fuzz scripts (sourced, not run): which sanitizer each target
# is built with, and where its binary is.
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

# Environment a target runs with: `messages` also builds every trace line
# (SAFESOCK_TRACE to /dev/null), so the trace formatting is fuzzed too,
# unless the known `fmtbuf` bug is being skipped (its trace-line form
# cannot be stepped around: it aborts inside the call).
env_of() {
  if [ "$1" = messages ] && [[ ",${SAFESOCK_FUZZ_SKIP:-}," != *,fmtbuf,* ]]; then
    echo "SAFESOCK_TRACE=/dev/null"
  else
    echo "SAFESOCK_FUZZ_TARGET=$1"
  fi
}

# One build directory per sanitizer, so switching does not rebuild all.
target_dir_of() {
  echo "fuzz/target/$(sanitizer_of "$1")"
}

binary_of() {
  echo "$(target_dir_of "$1")/$triple/release/$1"
}

build_target() {
  cargo "+$toolchain" fuzz build --sanitizer "$(sanitizer_of "$1")" --target-dir "$(target_dir_of "$1")" "$1"
}
