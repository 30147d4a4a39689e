/*
 * main.c: the benchmark program's command line and timing harness.
 *
 *   bench_BUILD --build                      print the build's name (libc, ss, noise)
 *   bench_BUILD --list                       the workloads: name, unit, better, description
 *   bench_BUILD --run NAME [--windows K] [--scale S] [--procs P]
 *                          [--placement same|split|none]
 *                                            time one workload; prints
 *                                            "result NAME VALUE UNIT lower|higher"
 *   bench_BUILD --count CASE N               N successful calls of one mirror
 *                                            function, for callgrind (count.c)
 *   bench_BUILD --count-list                 the count cases: name and what to subtract
 *   bench_BUILD --fdmem N                    memory after opening N sockets
 *
 * --run measures in P fresh child processes one after the other (default
 * 1): each sets the workload up, warms it up with a quarter window, times
 * K windows (default 7) of ops_per_window * S operations and tears it
 * down. It prints all the windows on a "windows" line ("|" between
 * processes) and on the "result" line the mean over the processes of each
 * one's median window. A workload that cannot run prints "skipped: <why>".
 * The driver (driver.py) runs the three builds in turn and pairs results.
 */

#include "common.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Any single run that takes longer than this is stuck: the alarm kills it. */
#define WATCHDOG_S 900
#define MAX_WINDOWS 99
#define MAX_PROCS 16

static void usage(void)
{
    fprintf(stderr, "usage: bench_%s --build | --list | --count-list\n"
                    "       bench_%s --run NAME [--windows K] [--scale S] [--procs P] [--placement same|split|none]\n"
                    "       bench_%s --count CASE N | --fdmem N\n",
            BENCH_BUILD, BENCH_BUILD, BENCH_BUILD);
    exit(2);
}

/* ---- Timing ------------------------------------------------------------- */

static const struct workload *find_workload(const char *name)
{
    for (size_t i = 0; i < WORKLOAD_COUNT; i++)
        if (strcmp(WORKLOADS[i].name, name) == 0)
            return &WORKLOADS[i];
    return NULL;
}

static const char *unit_of(const struct workload *w)
{
    switch (w->measure) {
    case PER_OP_NS:
        return "ns";
    case PER_OP_US:
        return "us";
    case MB_PER_S:
        return "MB/s";
    }
    return "?";
}

/* The reported value for `ops` operations that took `seconds`. */
static double value_of(const struct workload *w, long ops, double seconds)
{
    double items = (double)ops * w->per_op;

    switch (w->measure) {
    case PER_OP_NS:
        return seconds / items * 1e9;
    case PER_OP_US:
        return seconds / items * 1e6;
    case MB_PER_S:
        return items / seconds / 1e6;
    }
    return 0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *values, int n)
{
    qsort(values, (size_t)n, sizeof *values, compare_doubles);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

/* Sets the workload up, warms it up, times `windows` windows of `ops`
 * operations into `values` and tears it down. Returns how many values it
 * stored: 0 when the workload was skipped (setup printed why). */
static int measure_windows(const struct workload *w, int windows, long ops, double *values)
{
    void *ctx = w->setup();

    if (ctx == NULL)
        return 0;
    w->run(ctx, ops / 4 > 0 ? ops / 4 : 1); /* warm-up */
    for (int i = 0; i < windows; i++) {
        double start = now();

        w->run(ctx, ops);
        values[i] = value_of(w, ops, now() - start);
    }
    w->teardown(ctx);
    return windows;
}

/* Measures in a fresh child process and appends its values to `values`
 * (through a pipe). Returns how many it added. Each process gets its own
 * kernel objects and memory placement, which shift a run by a few percent;
 * several processes per run average that out. */
static int measure_in_child(const struct workload *w, int windows, long ops, double *values)
{
    int fds[2], status;
    ssize_t got = 0, n;
    pid_t pid;

    if (pipe(fds) != 0)
        die("pipe");
    fflush(stdout);
    if ((pid = fork()) < 0)
        die("fork");
    if (pid == 0) {
        double mine[MAX_WINDOWS];
        int count;

        alarm(WATCHDOG_S);
        close(fds[0]);
        count = measure_windows(w, windows, ops, mine);
        if (write(fds[1], mine, (size_t)count * sizeof mine[0]) != (ssize_t)((size_t)count * sizeof mine[0]))
            die("write (results)");
        fflush(stdout);
        _exit(EXIT_SUCCESS);
    }
    close(fds[1]);
    while ((n = read(fds[0], (char *)values + got, (size_t)windows * sizeof values[0] - (size_t)got)) > 0)
        got += n;
    close(fds[0]);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("measuring process failed");
    return (int)(got / (ssize_t)sizeof values[0]);
}

/* The value of a run: each process's median window, averaged over the
 * processes (the median keeps a disturbed window out; the mean smooths
 * the process-to-process shifts). */
static int run_workload(const struct workload *w, int windows, double scale, int procs)
{
    long ops = (long)((double)w->ops_per_window * scale);
    double values[MAX_WINDOWS], sum = 0;

    if (ops < 1)
        ops = 1;
    printf("windows %s", w->name);
    for (int p = 0; p < procs; p++) {
        if (measure_in_child(w, windows, ops, values) != windows) {
            printf("\n");
            return 0; /* skipped: the child printed why */
        }
        for (int i = 0; i < windows; i++)
            printf(" %.4g", values[i]);
        printf(p + 1 < procs ? " |" : "\n");
        sum += median(values, windows);
    }
    printf("result %s %.6g %s %s\n", w->name, sum / procs, unit_of(w), w->measure == MB_PER_S ? "higher" : "lower");
    return 0;
}

static void list_workloads(void)
{
    for (size_t i = 0; i < WORKLOAD_COUNT; i++) {
        const struct workload *w = &WORKLOADS[i];

        printf("%s %s %s %s\n", w->name, unit_of(w), w->measure == MB_PER_S ? "higher" : "lower", w->what);
    }
}

/* ---- Descriptor memory -------------------------------------------------- */

/* Anonymous resident memory of this process in KiB (RssAnon in
 * /proc/self/status): heap, stacks, data written; not the pages of the
 * program and libraries, which differ between the builds anyway. */
static long rss_anon_kib(void)
{
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");

    if (f == NULL)
        die("fopen(/proc/self/status)");
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "RssAnon: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Bytes the process has allocated with malloc and friends. */
static long heap_bytes(void)
{
    struct mallinfo2 mi = mallinfo2();

    return (long)(mi.uordblks + mi.hblkhd);
}

#define FDMEM_MAX 100000
static int fdmem_fds[FDMEM_MAX];

static void report_memory(const char *when, long rss0, long heap0)
{
    printf("fdmem %s rss_kib %ld heap_bytes %ld\n", when, rss_anon_kib() - rss0, heap_bytes() - heap0);
}

/* Opens `n` sockets with API(socket), then closes them with API(close),
 * printing the growth of resident memory and heap at each step. Everything
 * the measurement itself needs is in place before the baseline. */
static int fdmem(long n)
{
    long rss0, heap0;

    if (n < 1 || n > FDMEM_MAX)
        usage();
    if (raise_nofile(n + 64) != 0) {
        printf("skipped: fdmem needs %ld descriptors: %s\n", n + 64, strerror(errno));
        return 0;
    }
    memset(fdmem_fds, 0xff, sizeof fdmem_fds);
    report_memory("warmup", rss_anon_kib(), heap_bytes()); /* loads stdio, /proc reading */
    rss0 = rss_anon_kib();
    heap0 = heap_bytes();
    for (long i = 0; i < n; i++)
        if ((fdmem_fds[i] = API(socket)(AF_UNIX, SOCK_DGRAM, 0)) < 0)
            die("socket (fdmem)");
    report_memory("open", rss0, heap0);
    for (long i = 0; i < n; i++)
        if (API(close)(fdmem_fds[i]) != 0)
            die("close (fdmem)");
    report_memory("closed", rss0, heap0);
    return 0;
}

/* ---- Command line ------------------------------------------------------- */

static long parse_long(const char *text)
{
    char *end;
    long v = strtol(text, &end, 10);

    if (*text == '\0' || *end != '\0')
        usage();
    return v;
}

static void parse_placement(const char *text)
{
    if (strcmp(text, "same") == 0)
        bench_placement = SAME_CPU;
    else if (strcmp(text, "split") == 0)
        bench_placement = SPLIT_CPU;
    else if (strcmp(text, "none") == 0)
        bench_placement = NO_PINNING;
    else
        usage();
}

/* --run NAME followed by options. */
static int run_command(int argc, char **argv)
{
    const struct workload *w = find_workload(argv[2]);
    int windows = 7, procs = 1;
    double scale = 1.0;

    if (w == NULL) {
        fprintf(stderr, "bench_%s: no workload %s (see --list)\n", BENCH_BUILD, argv[2]);
        return 2;
    }
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--windows") == 0)
            windows = (int)parse_long(argv[i + 1]);
        else if (strcmp(argv[i], "--scale") == 0)
            scale = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--placement") == 0)
            parse_placement(argv[i + 1]);
        else if (strcmp(argv[i], "--procs") == 0)
            procs = (int)parse_long(argv[i + 1]);
        else
            usage();
    }
    if ((argc - 3) % 2 != 0 || windows < 1 || windows > MAX_WINDOWS || procs < 1 || procs > MAX_PROCS ||
        !(scale > 0))
        usage();
    return run_workload(w, windows, scale, procs);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(WATCHDOG_S);
    if (argc == 2 && strcmp(argv[1], "--build") == 0)
        return puts(BENCH_BUILD) < 0;
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        list_workloads();
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--count-list") == 0) {
        count_list();
        return 0;
    }
    if (argc >= 3 && strcmp(argv[1], "--run") == 0)
        return run_command(argc, argv);
    if (argc == 4 && strcmp(argv[1], "--count") == 0)
        return count_main(argv[2], parse_long(argv[3]));
    if (argc == 3 && strcmp(argv[1], "--fdmem") == 0)
        return fdmem(parse_long(argv[2]));
    usage();
    return 2;
}
