#!/usr/bin/env bash
# Fuzzing as CI runs it: builds every fuzz target, replays the reproducers of
# known findings (fuzz/regressions/<target>/), then runs each target for a
# bounded time from the committed seeds (fuzz/corpus/<target>/). Fails on
# any crash, panic, difference from libc, leak or timeout, and prints per
# target the executions, speed and coverage libFuzzer reached.
#
#   FUZZ_SECONDS=60        seconds per target (default 60)
#   FUZZ_TARGETS="calls addr messages"
#   FUZZ_REGRESSIONS=0     skip the replay of known findings
#   SAFESOCK_FUZZ_SKIP=... step around known, reported bugs (fuzz/src/known.rs);
#                          never set in CI
#
# What a run finds is kept in fuzz/corpus-run/<target>/ (gitignored); a
# crash leaves its input in fuzz/artifacts/<target>/ and the command that
# replays it is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/fuzz-common.sh
source scripts/fuzz-common.sh

seconds="${FUZZ_SECONDS:-60}"
targets="${FUZZ_TARGETS:-calls addr messages}"
step() { printf '\n==> %s\n' "$*"; }

step "setup"
bash scripts/fuzz-setup.sh

step "build"
for t in $targets; do
  build_target "$t"
done

failed=()
if [ "${FUZZ_REGRESSIONS:-1}" != 0 ]; then
  step "replay known findings (fuzz/regressions)"
  for t in $targets; do
    dir="fuzz/regressions/$t"
    [ -d "$dir" ] || continue
    for f in "$dir"/*; do
      [ -f "$f" ] || continue
      # A finding named *SAFESOCK_TRACE* needs tracing on to reproduce.
      trace="SAFESOCK_FUZZ_TARGET=$t"
      [[ "$f" == *SAFESOCK_TRACE* ]] && trace="SAFESOCK_TRACE=/dev/null"
      if env "$trace" "$(binary_of "$t")" "$f" >"fuzz/target/regression-$t-$(basename "$f").log" 2>&1; then
        echo "ok    $f"
      else
        echo "FAIL  $f (log: fuzz/target/regression-$t-$(basename "$f").log)"
        failed+=("regression $f")
      fi
    done
  done
fi

summary=()
for t in $targets; do
  step "fuzz $t for ${seconds}s (sanitizer: $(sanitizer_of "$t"))"
  mkdir -p "fuzz/corpus-run/$t" "fuzz/artifacts/$t" fuzz/target/logs
  log="fuzz/target/logs/$t.log"
  status=0
  env "$(env_of "$t")" "$(binary_of "$t")" \
    -max_total_time="$seconds" \
    -timeout=60 \
    -rss_limit_mb=4096 \
    -max_len="$(max_len_of "$t")" \
    -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" \
    "fuzz/corpus-run/$t" "fuzz/corpus/$t" >"$log" 2>&1 || status=$?
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
      [ -f "$a" ] && echo "replay: $(binary_of "$t") $a"
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
