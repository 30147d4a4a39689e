#!/usr/bin/env bash
# Fuzzing as CI runs it: builds every fuzz target, replays every input in
# fuzz/regressions/<target>/ through its target (the reproducers of the
# findings fuzzing made: each must run clean, so a fixed bug stays fixed
# and an open one keeps failing), then runs each target for a bounded time
# from the committed seeds (fuzz/corpus/<target>/; not from the regression
# inputs, so that a failing replay does not stop the fuzzing of its target
# at the first seed).
# Fails on any crash, panic, difference from libc, leak or timeout, and
# prints per target the executions, speed and coverage libFuzzer reached.
#
#   FUZZ_SECONDS=45        seconds per target (default 45: with the two
#                          builds from a cold cache, about 2 min, the whole
#                          run stays within 5 min)
#   FUZZ_TARGETS="calls addr messages"
#
# Without the nightly toolchain, and no way to install it, it prints
# `skipped: <reason>` and exits 0 (see scripts/fuzz-setup.sh).
#
# What a run finds is kept in fuzz/corpus-run/<target>/ (gitignored); a
# crash leaves its input in fuzz/artifacts/<target>/ and the command that
# replays it is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/fuzz-common.sh
source scripts/fuzz-common.sh

seconds="${FUZZ_SECONDS:-45}"
targets="${FUZZ_TARGETS:-calls addr messages}"
step() { printf '\n==> %s\n' "$*"; }

step "setup"
setup_or_skip nightly cargo-fuzz

step "build"
for t in $targets; do
  build_target "$t"
done

failed=()
mkdir -p fuzz/target/logs
step "replay fuzz/regressions (every input must run clean)"
replayed=0
for t in $targets; do
  for f in "fuzz/regressions/$t"/*; do
    [ -f "$f" ] || continue
    log="fuzz/target/logs/regression-$t-$(basename "$f").log"
    replayed=$((replayed + 1))
    # An input named *SAFESOCK_TRACE* needs tracing on to reproduce
    # (`messages` runs with it anyway).
    trace=()
    [[ "$f" == *SAFESOCK_TRACE* ]] && trace=(SAFESOCK_TRACE=/dev/null)
    if with_env_of "$t" "${trace[@]}" "$(binary_of "$t")" -timeout=60 -rss_limit_mb=4096 "$f" >"$log" 2>&1; then
      echo "ok    $f"
    else
      echo "FAIL  $f (log: $log; replay: $(replay_command_of "$t" "$f"))"
      grep -v '^\s*#[0-9]* 0x' "$log" | tail -n 40
      failed+=("regression $f")
    fi
  done
done
echo "$replayed regression input(s) replayed"

summary=()
for t in $targets; do
  step "fuzz $t for ${seconds}s (sanitizer: $(sanitizer_of "$t"))"
  mkdir -p "fuzz/corpus-run/$t" "fuzz/artifacts/$t"
  log="fuzz/target/logs/$t.log"
  status=0
  run_fuzzer "$t" "$seconds" "fuzz/corpus-run/$t" "fuzz/corpus/$t" >"$log" 2>&1 || status=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1, ft \2/p' <<<"${done_line:-$(grep -E ' cov: ' "$log" | tail -n 1)}")
  line="$t: ${execs:-?} executions, ${speed:-?} exec/s, ${cov:-no coverage line}"
  if [ "$status" -ne 0 ]; then
    line="$line, FAILED (exit $status)"
    failed+=("fuzz $t")
    echo "---- last lines of $log ----"
    grep -v '^\s*#[0-9]* 0x' "$log" | tail -n 60
    for a in "fuzz/artifacts/$t"/*; do
      [ -f "$a" ] && echo "replay: $(replay_command_of "$t" "$a")"
    done
  fi
  echo "$line"
  [ -n "$done_line" ] && echo "$done_line"
  summary+=("$line")
done

step "summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzzing passed"
