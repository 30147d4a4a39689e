#!/usr/bin/env bash
# Long fuzzing campaigns: each target (or those named) for FUZZ_HOURS hours
# (default 4) with FUZZ_JOBS parallel workers (default: the number of
# cores), in libFuzzer's fork mode, which keeps going after a finding and
# collects every crashing input in fuzz/artifacts/<target>/.
#
#   scripts/fuzz-long.sh                 all targets, one after another
#   scripts/fuzz-long.sh calls           one target
#   FUZZ_HOURS=0.5 FUZZ_JOBS=2 scripts/fuzz-long.sh addr
#
# The corpus grows in fuzz/corpus-run/<target>/ (gitignored) and is reused
# by the next campaign. To refresh the committed seeds from it, merge into
# a fresh directory and keep the smallest inputs, for example:
#   fuzz/target/none/x86_64-unknown-linux-gnu/release/calls -merge=1 /tmp/min fuzz/corpus-run/calls
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/fuzz-common.sh
source scripts/fuzz-common.sh

hours="${FUZZ_HOURS:-4}"
jobs="${FUZZ_JOBS:-$(nproc)}"
targets="${*:-calls addr messages}"
seconds=$(awk -v h="$hours" 'BEGIN { printf "%d", h * 3600 }')

# Unlike CI, a missing nightly toolchain is an error here (exit 77).
bash scripts/fuzz-setup.sh nightly cargo-fuzz
for t in $targets; do
  build_target "$t"
done

for t in $targets; do
  mkdir -p "fuzz/corpus-run/$t" "fuzz/artifacts/$t" fuzz/target/logs
  log="fuzz/target/logs/long-$t.log"
  echo "==> $t: ${hours}h, $jobs jobs, log $log"
  status=0
  seeds=("fuzz/corpus/$t")
  [ -d "fuzz/regressions/$t" ] && seeds+=("fuzz/regressions/$t")
  run_fuzzer "$t" "$seconds" \
    -fork="$jobs" \
    -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    "fuzz/corpus-run/$t" "${seeds[@]}" >"$log" 2>&1 || status=$?
  grep -E ' cov: ' "$log" | tail -n 1 || true
  found=$(find "fuzz/artifacts/$t" -type f | wc -l)
  echo "$t: exit $status, $found input(s) in fuzz/artifacts/$t/"
done
