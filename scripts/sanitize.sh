#!/usr/bin/env bash
# Runs the Rust tests under sanitizers (nightly, -Zbuild-std, so the standard
# library is instrumented too), each in a build directory of its own under
# target/ so the normal build is untouched:
#
#   address  AddressSanitizer (+ LeakSanitizer): the unit tests and every
#            integration test binary that runs in-process;
#   thread   ThreadSanitizer: the unit tests (the descriptor table's racing
#            claims among them), the concurrency tests of
#            tests/safety_defaults.rs, the multi-threaded fault and stress
#            tests, and tests/regressions.rs (descriptor numbers recycled
#            across threads).
#
#   scripts/sanitize.sh               both
#   scripts/sanitize.sh address       one
#
# The C examples have their own ASan build: make -C c_examples asan.
#
# Without the nightly toolchain (or its rust-src), and no way to install it,
# it prints `skipped: <reason>` and exits 0 (see scripts/fuzz-setup.sh); a
# failing test, a sanitizer report or a build error exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/fuzz-common.sh
source scripts/fuzz-common.sh

which="${*:-address thread}"

setup_or_skip nightly rust-src

# Test binaries left out of the address run entirely:
#   c_examples, exports, packaging  build the library and C programs with
#       cargo/make/gcc in a child process, which would inherit RUSTFLAGS with
#       -Z options the stable toolchain refuses; what they check (symbols,
#       header, installation) does not depend on memory safety, and the C side
#       has make -C c_examples asan.
address_excluded=" c_examples exports packaging "
address_tests=()
for f in tests/*.rs; do
  name=$(basename "$f" .rs)
  [[ "$address_excluded" == *" $name "* ]] || address_tests+=("$name")
done

# Tests left out by name, and why (the arrays are passed to run by name):
# shellcheck disable=SC2034
address_skips=(
  # Pass wild pointers (0x1, PROT_NONE pages, kernel addresses) to
  # getsockopt/accept4/getpeername/recvmsg ... on purpose, to check EFAULT.
  # ASan's interceptors of those functions dereference the pointers in user
  # space before the system call and crash inside ASan (plain libc does the
  # same under ASan). The same properties are fuzzed by fuzz/ (calls,
  # messages), built without ASan.
  every_mirror_function_matches_libc
  random_c_inputs_never_reach_a_panic_and_every_failure_explains_itself
  # Calls ss_ functions from a signal handler that interrupts other ss_
  # calls; ASan's interceptors and allocator are not async-signal-safe and
  # the child hangs until its 30 s alarm.
  ss_calls_inside_a_signal_handler_neither_crash_nor_garble_the_interrupted_thread
  # Runs the test binary under valgrind, which cannot run an ASan binary.
  stress_is_clean_under_valgrind_track_fds
)
thread_tests=()
for name in safety_defaults faults stress regressions; do
  [ -f "tests/$name.rs" ] && thread_tests+=("$name")
done
# shellcheck disable=SC2034
thread_skips=(
  # Wild pointers, as above: TSan's interceptors touch caller memory before
  # the system call too (seen: SEGV at 0x1 in its getpeername).
  random_c_inputs_never_reach_a_panic_and_every_failure_explains_itself
  # valgrind cannot run a TSan binary.
  stress_is_clean_under_valgrind_track_fds
)

run() {
  local sanitizer="$1"
  shift
  local -n tests="$1"
  local -n skips="$2"
  local args=(--lib)
  for t in "${tests[@]}"; do args+=(--test "$t"); done
  local skip_args=()
  for s in "${skips[@]}"; do skip_args+=(--skip "$s"); done
  printf '\n==> %s sanitizer: %s\n' "$sanitizer" "lib ${tests[*]}"
  local log="target/sanitize-$sanitizer.log"
  mkdir -p target
  local status=0
  RUSTFLAGS="-Zsanitizer=$sanitizer" RUSTDOCFLAGS="-Zsanitizer=$sanitizer" \
    cargo "+$toolchain" test -Zbuild-std --target "$triple" --target-dir "target/sanitize-$sanitizer" \
    --no-fail-fast "${args[@]}" -- "${skip_args[@]}" 2>&1 | tee "$log" || status=$?
  grep -E '^test result: ' "$log" | awk -v s="$sanitizer" \
    '{p+=$4; f+=$6} END {printf "%s sanitizer: %d passed, %d failed\n", s, p, f}'
  if grep -qE '^(SUMMARY: (Address|Thread|Leak)Sanitizer|WARNING: ThreadSanitizer)' "$log"; then
    echo "$sanitizer sanitizer reported a problem (see $log)" >&2
    status=1
  fi
  return "$status"
}

failed=0
for s in $which; do
  case "$s" in
    # detect_leaks: LeakSanitizer runs at the end of each test binary.
    address) ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" run address address_tests address_skips || failed=1 ;;
    # die_after_fork=0: several tests fork a child that starts threads (a
    # racing ss_close, for example); TSan refuses threads after a fork of a
    # multi-threaded process unless told otherwise. The children only make
    # system calls and use atomics.
    thread) TSAN_OPTIONS="die_after_fork=0" run thread thread_tests thread_skips || failed=1 ;;
    *) echo "unknown sanitizer $s (address, thread)" >&2; exit 2 ;;
  esac
done
exit "$failed"
