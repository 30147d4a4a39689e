#!/usr/bin/env python3
"""Runs the safesock benchmark and prints one table (standard library only).

Three programs are built from the same source (see bench_api.h):
bench_libc calls libc, bench_ss calls the ss_ functions, bench_noise is a
second libc program. For every workload the driver runs the three in turn,
in a rotating order, several times ("pairs"); each run prints
"result NAME VALUE UNIT lower|higher". From every round it takes the ratio
safesock/libc (libc/safesock for throughput, so > 1 always means slower)
and noise/libc, and reports the median ratio and its spread (half the
interquartile range). The noise ratio is what the method shows when
nothing differs: a safesock ratio inside that band is not a measurable cost.

Then it counts user-space instructions and heap allocations per successful
call of each mirror function with callgrind (two loop lengths, difference
divided by the difference, libc loop subtracted), and the memory the
descriptor table costs for 10,000 sockets.

Usage: driver.py --build-dir DIR [--quick] [--only W1,W2] [--pairs N]
                 [--procs P] [--windows K] [--scale S] [--no-count] [--show-pairs]
"""

import argparse
import concurrent.futures
import itertools
import math
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

BUILDS = ("libc", "ss", "noise")
# Every order of the three builds; round r uses ORDERS[r % 6], so each build
# runs first, second and third about equally often.
ORDERS = list(itertools.permutations(BUILDS))

# The targets: the largest acceptable median ratio per workload.
TARGETS = {
    "tcp_pingpong_1b": 1.02,
    "tcp_pingpong_1k": 1.02,
    "tcp_bulk_64k": 1.01,
    "connect_accept_close": 1.02,
    "udp_pingpong": 1.02,
    "writev_readv_8x512": 1.02,
    "unix_sendmsg_recvmsg": 1.02,
    "floor_recv_eagain": 1.05,
    "floor_pipe_write_read": 1.05,
    "two_threads": 1.02,
    "c10k": 1.02,
}
EXTRA_INSTRUCTIONS_TARGET = 40
NOISE_LIMIT = 0.02  # the noise band should stay inside 1 +- 2%

# How much to run. scale multiplies each workload's operations per window;
# procs: fresh processes per run (each sets the workload up and times
# `windows` windows); the run's value is the mean of their median windows.
MODES = {
    "full": {"pairs": 10, "procs": 4, "windows": 3, "scale": 0.6, "count_n": (2000, 12000), "fd_runs": 3,
             "extra_share": 0.5},
    "quick": {"pairs": 4, "procs": 2, "windows": 3, "scale": 0.3, "count_n": (200, 1200), "fd_runs": 1,
              "extra_share": 0.2},
}
# Count cases whose loop makes TCP/UDP or AF_UNIX connections: shorter loops.
SLOW_COUNT_CASES = {"accept", "accept4", "bind", "listen", "connect", "socketpair", "shutdown"}

# Other processes on the machine (a build, a test run) disturb the timing.
# A round of libc/ss/noise during which they used more than this share of
# one CPU counts as disturbed: the driver runs more rounds until it has
# `pairs` quiet ones, waiting (up to QUIET_WAIT_S) for a quiet moment first.
# Each workload may run extra_share (MODES) times `pairs` extra rounds, so
# a machine that stays busy costs at most that much more time.
FOREIGN_CPU_LIMIT = 0.10
QUIET_WAIT_S = 2
QUIET_SAMPLE_S = 0.5

FDMEM_SOCKETS = 10000
RUN_TIMEOUT_S = 600
ALLOC_FUNCTIONS = {
    "malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign",
    "valloc", "pvalloc", "__libc_malloc", "__libc_calloc", "__libc_realloc", "__libc_memalign",
    "__posix_memalign",
}


class BenchError(Exception):
    """A benchmark program failed; the message says which and how."""


def log(text):
    """Progress goes to stderr, so that stdout is only the report."""
    print(text, file=sys.stderr, flush=True)


def program(build_dir, build):
    return os.path.join(build_dir, "bench_" + build)


def run_program(args, timeout=RUN_TIMEOUT_S):
    """Runs a command; returns its stdout, raises BenchError if it failed."""
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"{' '.join(args)}: no result after {timeout} s") from e
    if done.returncode != 0:
        raise BenchError(f"{' '.join(args)}: exit status {done.returncode}: {done.stderr.strip()}")
    return done.stdout


# ---- Statistics ---------------------------------------------------------------


def quartiles(values):
    """(25th, 50th, 75th percentile), interpolated; all equal for one value."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


def summarize(ratios):
    """Median ratio and half the interquartile range, as numbers."""
    q1, q2, q3 = quartiles(ratios)
    return {"median": q2, "spread": (q3 - q1) / 2}


# ---- Timed workloads ------------------------------------------------------------


def parse_run(stdout):
    """('result', value, unit, better) or ('skipped', text)."""
    for line in stdout.splitlines():
        if line.startswith("skipped:"):
            return ("skipped", line)
        if line.startswith("result "):
            _, _, value, unit, better = line.split()
            return ("result", float(value), unit, better)
    raise BenchError(f"no result line in: {stdout!r}")


def measure(opts, build, workload):
    args = [program(opts.build_dir, build), "--run", workload, "--procs", str(opts.procs),
            "--windows", str(opts.windows), "--scale", str(opts.scale), "--placement", opts.placement]
    return parse_run(run_program(args))


class CpuWatch:
    """CPU time used by processes other than this driver and its children.

    /proc/stat counts the whole machine (the busy time of every process and
    of interrupt handling); getrusage counts this driver and the benchmark
    programs it waited for. The difference is everybody else.
    """

    HZ = os.sysconf("SC_CLK_TCK")

    def __init__(self):
        self.start = self._sample()

    @classmethod
    def _sample(cls):
        with open("/proc/stat", encoding="ascii") as f:
            # user nice system idle iowait irq softirq: the kernel may book the
            # benchmark's own loopback traffic as softirq time, so count it.
            user, nice, system, _, _, irq, softirq = (int(x) for x in f.readline().split()[1:8])
        mine = 0.0
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            usage = resource.getrusage(who)
            mine += usage.ru_utime + usage.ru_stime
        return time.monotonic(), (user + nice + system + irq + softirq) / cls.HZ, mine

    def foreign_share(self):
        """Others' CPU seconds per second of wall time since the start,
        less two clock ticks for the granularity of /proc/stat."""
        (t0, busy0, mine0), (t1, busy1, mine1) = self.start, self._sample()
        foreign = (busy1 - busy0) - (mine1 - mine0) - 2 / self.HZ
        return max(0.0, foreign) / max(t1 - t0, 1e-3)


def slowdown(libc, other, better):
    """The ratio that is > 1 when `other` is slower than libc."""
    return other / libc if better == "lower" else libc / other


def wait_for_quiet():
    """Waits until other processes leave the CPUs alone for a moment, or
    QUIET_WAIT_S passed."""
    deadline = time.monotonic() + QUIET_WAIT_S
    while time.monotonic() < deadline:
        watch = CpuWatch()
        time.sleep(QUIET_SAMPLE_S)
        if watch.foreign_share() <= FOREIGN_CPU_LIMIT:
            return


def bench_round(opts, workload, order):
    """One run of each build in `order`: ({build: outcome}, share of a CPU
    that other processes used meanwhile)."""
    watch = CpuWatch()
    outcomes = {}
    for build in order:
        outcomes[build] = measure(opts, build, workload)
        if outcomes[build][0] == "skipped":
            break
    return outcomes, watch.foreign_share()


def quiet_rounds(opts, workload):
    """Runs rounds until `pairs` of them were quiet (or the workload's
    extra rounds are spent). Returns (rounds to use, rounds run, how many of
    those used are disturbed); a round is ({build: outcome}, foreign share).
    Disturbed rounds fill in, least disturbed first, only when too few were
    quiet."""
    quiet, disturbed = [], []
    attempts = 0
    share = 0.0
    most = opts.pairs + math.ceil(opts.extra_share * opts.pairs)
    while len(quiet) < opts.pairs and attempts < most:
        if share > FOREIGN_CPU_LIMIT:
            wait_for_quiet()  # the last round was disturbed: give the others a moment
        outcomes, share = bench_round(opts, workload, ORDERS[attempts % len(ORDERS)])
        attempts += 1
        if any(o[0] == "skipped" for o in outcomes.values()):
            return [(outcomes, share)], attempts, 0
        if share <= FOREIGN_CPU_LIMIT:
            quiet.append((outcomes, share))
        else:
            disturbed.append((outcomes, share))
            log(f"{workload}: other processes used {share:.0%} of a CPU during round {attempts}")
    fill = sorted(disturbed, key=lambda r: r[1])[:opts.pairs - len(quiet)]
    return quiet + fill, attempts, len(fill)


def bench_workload(opts, workload):
    """Runs the pairs of one workload; returns its row of the table."""
    started = time.monotonic()
    rounds, attempts, disturbed = quiet_rounds(opts, workload)
    values = {b: [] for b in BUILDS}
    unit = better = None
    for outcomes, _ in rounds:
        for build, outcome in outcomes.items():
            if outcome[0] == "skipped":
                log(f"{workload}: {outcome[1]}")
                return {"workload": workload, "skipped": outcome[1]}
            _, value, unit, better = outcome
            values[build].append(value)
    ratio = [slowdown(l, s, better) for l, s in zip(values["libc"], values["ss"])]
    noise = [slowdown(l, n, better) for l, n in zip(values["libc"], values["noise"])]
    log(f"{workload}: {attempts} rounds in {time.monotonic() - started:.0f} s")
    return {
        "workload": workload,
        "unit": unit,
        "libc": statistics.median(values["libc"]),
        "ss": statistics.median(values["ss"]),
        "ratio": summarize(ratio),
        "noise": summarize(noise),
        "ratios": ratio,
        "noises": noise,
        "extra_rounds": attempts - len(rounds),
        "disturbed": disturbed,
    }


def format_value(value, unit):
    if value >= 1000:
        text = f"{value:.0f}"
    elif value >= 100:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}"


def noise_ok(row):
    """Whether the noise band, median ± spread, stays inside 1 ± NOISE_LIMIT."""
    n = row["noise"]
    return abs(n["median"] - 1) + n["spread"] <= NOISE_LIMIT


def print_table(rows):
    header = (f"{'workload':<22} {'libc':>12} {'safesock':>12} {'ratio':>7} {'spread':>7}  "
              f"{'noise band':<15} {'target':>6}  met")
    print(header)
    print("-" * len(header))
    for row in rows:
        name = row["workload"]
        if "skipped" in row:
            print(f"{name:<22} {row['skipped']}")
            continue
        r, n = row["ratio"], row["noise"]
        target = TARGETS.get(name)
        met = ("yes" if r["median"] <= target else "NO") + ("*" if row["disturbed"] else "")
        noise = f"{n['median']:.3f} ±{n['spread'] * 100:.1f}%"
        libc, ss = format_value(row["libc"], row["unit"]), format_value(row["ss"], row["unit"])
        spread = f"±{r['spread'] * 100:.1f}%"
        print(f"{name:<22} {libc:>12} {ss:>12} {r['median']:>7.3f} {spread:>7}  {noise:<15} "
              f"{'≤%.2f' % target:>6}  {met}")
    print()
    print("ratio: median over pairs of safesock/libc per pair (libc/safesock for MB/s): > 1 = safesock slower.")
    print("spread: half the interquartile range of those per-pair ratios.")
    print("noise band: the same for bench_noise (a second libc build) against libc: the method's own noise.")
    measured = [row for row in rows if "skipped" not in row]
    extra = sum(row["extra_rounds"] for row in measured)
    disturbed = sum(row["disturbed"] for row in measured)
    print(f"rounds left out because other processes used over {FOREIGN_CPU_LIMIT:.0%} of a CPU: {extra}; "
          f"disturbed rounds used for lack of quiet ones: {disturbed}"
          + (" (marked *: the machine was busy, those ratios are suspect)" if disturbed else ""))
    wide = [row["workload"] for row in measured if not noise_ok(row)]
    print("noise band (median ± spread) inside 1 ± 2%: "
          + ("yes, every workload" if not wide else "NO for " + ", ".join(wide)))


def print_pairs(rows):
    """Every per-pair ratio, for whoever wants to look closer."""
    print("per-pair ratios (safesock/libc | noise/libc), in run order:")
    for row in rows:
        if "skipped" in row:
            continue
        ss = " ".join(f"{x:.3f}" for x in row["ratios"])
        noise = " ".join(f"{x:.3f}" for x in row["noises"])
        print(f"  {row['workload']:<22} {ss} | {noise}")


# ---- Instruction and allocation counts ---------------------------------------------


def callgrind_file(opts, build, case, n):
    return os.path.join(opts.build_dir, "callgrind", f"{build}-{case}-{n}.out")


def parse_callgrind(path):
    """(instructions, allocations) inside the collected region of one run.

    Instructions: the file's totals (only bench_count_region is collected).
    Allocations: the calls into malloc and friends from anything that is
    not itself an allocation function (realloc calling malloc counts once).
    """
    names = {}  # callgrind compresses names: "(12) malloc" first, "(12)" after
    total = None
    allocs = 0
    caller = callee = ""

    def name_of(spec):
        m = re.match(r"\((\d+)\)(?: (.*))?", spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        return names.get(m.group(1), "")

    def base(name):
        return name.split("'")[0]  # "malloc'2" is malloc at recursion depth 2

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                caller = base(name_of(line[3:].strip()))
            elif line.startswith("cfn="):
                callee = base(name_of(line[4:].strip()))
            elif line.startswith("calls="):
                if callee in ALLOC_FUNCTIONS and caller not in ALLOC_FUNCTIONS:
                    allocs += int(line.split()[0][len("calls="):])
            elif line.startswith(("totals:", "summary:")) and total is None:
                total = int(line.split()[1])
    if total is None:
        raise BenchError(f"{path}: no totals line")
    return total, allocs


def callgrind_run(opts, build, case, n):
    out = callgrind_file(opts, build, case, n)
    run_program(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--collect-atstart=no",
                 "--toggle-collect=bench_count_region", program(opts.build_dir, build), "--count", case, str(n)])
    return parse_callgrind(out)


def count_lengths(opts, case):
    n1, n2 = opts.count_n
    return (n1 // 4, n2 // 4) if case in SLOW_COUNT_CASES else (n1, n2)


def per_iteration(results, build, case, lengths):
    """Instructions and allocations per loop iteration: the difference of two lengths."""
    n1, n2 = lengths
    (i1, a1), (i2, a2) = results[(build, case, n1)], results[(build, case, n2)]
    return (i2 - i1) / (n2 - n1), (a2 - a1) / (n2 - n1)


def count_calls(opts):
    """Runs every count case under callgrind (one run per CPU at a time); returns rows."""
    cases = [line.split() for line in run_program([program(opts.build_dir, "libc"), "--count-list"]).splitlines()]
    os.makedirs(os.path.join(opts.build_dir, "callgrind"), exist_ok=True)
    jobs = [(b, c, n) for c, _ in cases for b in ("libc", "ss") for n in count_lengths(opts, c)]
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {job: pool.submit(callgrind_run, opts, *job) for job in jobs}
        results = {job: f.result() for job, f in futures.items()}
    log(f"callgrind: {len(jobs)} runs in {time.monotonic() - started:.0f} s")
    per_iter = {(b, c): per_iteration(results, b, c, count_lengths(opts, c))
                for c, _ in cases for b in ("libc", "ss")}
    rows = []
    for case, minus in cases:
        libc_ir, libc_alloc = per_iter[("libc", case)]
        ss_ir, ss_alloc = per_iter[("ss", case)]
        extra, allocs = ss_ir - libc_ir, ss_alloc - libc_alloc
        if minus != "-":
            extra -= per_iter[("ss", minus)][0] - per_iter[("libc", minus)][0]
            allocs -= per_iter[("ss", minus)][1] - per_iter[("libc", minus)][1]
        rows.append({"case": case, "minus": minus, "libc": libc_ir, "ss": ss_ir, "extra": extra, "allocs": allocs})
    return rows


def print_counts(rows, opts):
    n1, n2 = opts.count_n
    print(f"Instructions per successful call (callgrind, user space; loops of {n1} and {n2} iterations, "
          f"{n1 // 4} and {n2 // 4} for connection set-up)")
    header = (f"{'function':<14} {'loop Ir/iter libc':>17} {'loop Ir/iter ss':>15} {'extra Ir/call':>13} "
              f"{'allocs/call':>11}  met")
    print(header)
    print("-" * len(header))
    for row in rows:
        failing = row["case"].endswith("_eagain")
        ok = (failing or row["extra"] <= EXTRA_INSTRUCTIONS_TARGET) and abs(row["allocs"]) < 0.001
        note = " (failing call; no target)" if failing else ""
        if row["minus"] != "-":
            note = f" (loop is {row['minus']}+{row['case']}; {row['minus']} subtracted)"
        print(f"{row['case']:<14} {row['libc']:>17.1f} {row['ss']:>15.1f} {row['extra']:>13.1f} "
              f"{row['allocs']:>11.3f}  {'yes' if ok else 'NO'}{note}")
    mirrors = [r for r in rows if not r["case"].endswith("_eagain")]
    worst = max(mirrors, key=lambda r: r["extra"])
    print(f"targets: <= {EXTRA_INSTRUCTIONS_TARGET} extra instructions per call: "
          + ("met" if worst["extra"] <= EXTRA_INSTRUCTIONS_TARGET else "NOT met")
          + f" (most: {worst['case']} {worst['extra']:.1f}); 0 allocations per call: "
          + ("met" if all(abs(r["allocs"]) < 0.001 for r in rows) else "NOT met"))
    print(f"callgrind output files: {os.path.join(opts.build_dir, 'callgrind')} "
          "(callgrind_annotate --inclusive=yes FILE shows where the instructions go)")


# ---- Descriptor-table memory ---------------------------------------------------------


def fdmem_once(opts, build):
    """{'open': (rss_kib, heap_bytes), 'closed': (...)}; None if skipped."""
    out = run_program([program(opts.build_dir, build), "--fdmem", str(FDMEM_SOCKETS)])
    if out.startswith("skipped:"):
        return None
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if parts[:1] == ["fdmem"]:
            found[parts[1]] = (int(parts[3]), int(parts[5]))
    return found


def fd_memory(opts):
    runs = {b: [fdmem_once(opts, b) for _ in range(opts.fd_runs)] for b in ("libc", "ss")}
    if any(r is None for rs in runs.values() for r in rs):
        print(f"descriptor-table memory: skipped: cannot open {FDMEM_SOCKETS} descriptors here")
        return

    def med(build, when, i):
        return statistics.median(r[when][i] for r in runs[build])

    print(f"Descriptor-table memory, {FDMEM_SOCKETS} sockets opened with socket/ss_socket "
          f"(growth in the process, safesock build minus libc build, median of {opts.fd_runs}):")
    for when in ("open", "closed"):
        rss = med("ss", when, 0) - med("libc", when, 0)
        heap = med("ss", when, 1) - med("libc", when, 1)
        when_text = "opening" if when == "open" else "closing all"
        print(f"  after {when_text:<12} RSS {rss:+.0f} KiB, heap {heap:+.0f} bytes")
    print("  theory: one byte per descriptor number, in chunks that double: 0..1023 a static 1 KiB array (zero pages,"
          " mapped when touched), then 1, 2, 4, 8 KiB from the heap; numbers up to 16383 cost 16 KiB, kept.")


# ---- Main ----------------------------------------------------------------------------


def describe_machine(opts):
    model = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", os.path.dirname(opts.build_dir), "describe", "--always", "--dirty"],
                            capture_output=True, text=True, check=False).stdout.strip() or "?"
    print(f"safesock benchmark ({opts.mode}): {len(os.sched_getaffinity(0))} CPUs ({model}), "
          f"Linux {platform.release()}, commit {commit}")
    print(f"{opts.pairs} pairs per workload; a run is {opts.procs} fresh processes x {opts.windows} windows "
          f"(mean of their median windows), scale {opts.scale}, placement {opts.placement}; "
          "the order of libc/ss/noise rotates every pair")
    print()


def check_builds(opts):
    for build in BUILDS:
        name = run_program([program(opts.build_dir, build), "--build"]).strip()
        if name != build:
            raise BenchError(f"{program(opts.build_dir, build)} says it is the {name!r} build")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build-dir", required=True, help="where bench_libc, bench_ss, bench_noise are")
    p.add_argument("--quick", action="store_true", help="fewer pairs, shorter windows, small callgrind loops")
    p.add_argument("--only", help="comma-separated workloads to run")
    p.add_argument("--pairs", type=int, help="rounds of libc/ss/noise per workload")
    p.add_argument("--procs", type=int, help="fresh processes per run")
    p.add_argument("--windows", type=int, help="timed windows per process")
    p.add_argument("--scale", type=float, help="multiplies the operations per window")
    p.add_argument("--placement", default="same", choices=("same", "split", "none"),
                   help="both ends of a conversation on one CPU (same), on two (split), or unpinned")
    p.add_argument("--no-count", action="store_true", help="skip callgrind and the memory figure")
    p.add_argument("--show-pairs", action="store_true", help="print every per-pair ratio")
    opts = p.parse_args()
    opts.build_dir = os.path.abspath(opts.build_dir)
    opts.mode = "quick" if opts.quick else "full"
    for key, value in MODES[opts.mode].items():
        if getattr(opts, key, None) is None:
            setattr(opts, key, value)
    return opts


def main():
    opts = parse_args()
    try:
        check_builds(opts)
        workloads = [line.split()[0] for line in run_program([program(opts.build_dir, "libc"), "--list"]).splitlines()]
        if opts.only:
            wanted = opts.only.split(",")
            unknown = set(wanted) - set(workloads)
            if unknown:
                raise BenchError(f"unknown workloads: {', '.join(sorted(unknown))}")
            workloads = [w for w in workloads if w in wanted]
        describe_machine(opts)
        started = time.monotonic()
        rows = [bench_workload(opts, w) for w in workloads]
        print_table(rows)
        if opts.show_pairs:
            print()
            print_pairs(rows)
        if not opts.no_count:
            print()
            if shutil.which("valgrind"):
                print_counts(count_calls(opts), opts)
            else:
                print("instruction and allocation counts: skipped: valgrind is not installed")
            print()
            fd_memory(opts)
        print()
        print(f"done in {time.monotonic() - started:.0f} s")
    except BenchError as e:
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
