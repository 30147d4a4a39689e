/*
 * common.h: what the benchmark's source files share: the workload table
 * entry, failure reporting, clocks, thread placement and the loopback
 * plumbing (listeners, connected pairs, exact transfers).
 */

#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include "bench_api.h"

#include <netinet/in.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* ---- Workloads ---------------------------------------------------------- */

/* How a workload's measurement becomes the value it reports. */
enum measure {
    PER_OP_NS,  /* nanoseconds per operation (lower is better) */
    PER_OP_US,  /* microseconds per operation (lower is better) */
    MB_PER_S,   /* per_op bytes * ops / seconds / 1e6 (higher is better) */
};

/* One timed workload. setup() prepares sockets and threads once per
 * process; run() performs `ops` operations and is what the clock times;
 * teardown() joins threads and closes everything. setup() returns NULL
 * after printing "skipped: ..." when the workload cannot run here. */
struct workload {
    const char *name;
    const char *what;          /* one line for --list */
    enum measure measure;
    double per_op;             /* MB_PER_S: bytes per operation; otherwise
                                  items per operation (the value is per item) */
    long ops_per_window;       /* at --scale 1 */
    void *(*setup)(void);
    void (*run)(void *ctx, long ops);
    void (*teardown)(void *ctx);
};

/* The table of workloads, in the order the driver reports them. */
extern const struct workload WORKLOADS[];
extern const size_t WORKLOAD_COUNT;

/* The C10K workload lives in its own file (c10k.c). */
void *c10k_setup(void);
void c10k_run(void *ctx, long rounds);
void c10k_teardown(void *ctx);
#define C10K_CONNECTIONS 10000

/* ---- Instruction-count mode (count.c) ----------------------------------- */

/* Prints the count cases, one "name minus" line each. */
void count_list(void);
/* Runs `n` successful calls of the case's function, inside the one
 * function callgrind collects (bench_count_region). Returns the exit status. */
int count_main(const char *name, long n);

/* ---- Failure ------------------------------------------------------------ */

/* Prints "bench_<build>: <what>: <strerror>" (plus ss_last_error() in the
 * safesock build) and exits with status 1. */
void die(const char *what);
/* Prints a message and exits with status 1, for failures without errno. */
void fail(const char *what);

/* ---- Time and placement ------------------------------------------------- */

/* Seconds on the monotonic clock. */
double now(void);

/* How threads that talk to each other are placed on the CPUs. */
enum placement {
    SAME_CPU,   /* both ends of a conversation on one CPU (default) */
    SPLIT_CPU,  /* the two ends on different CPUs */
    NO_PINNING, /* leave it to the scheduler */
};
extern enum placement bench_placement;

/* Pins the calling thread to the `slot`-th CPU this process may use
 * (modulo their number); does nothing under NO_PINNING. */
void pin_to_slot(int slot);
/* The CPU slot for the peer of a thread that runs in `slot`. */
int peer_slot(int slot);

/* Raises RLIMIT_NOFILE to at least `want` descriptors. Returns 0, or -1
 * with errno when the system does not allow that many. */
int raise_nofile(long want);

/* ---- Loopback plumbing (all socket calls through API) ------------------- */

/* A TCP listener on 127.0.0.1 with a port the system picks; its address
 * goes to `*addr`. */
int tcp_listener(struct sockaddr_in *addr, int backlog);

/* A connected TCP pair over 127.0.0.1, with TCP_NODELAY on both ends. */
void tcp_pair(int *client, int *server);

/* A UDP socket bound to 127.0.0.1 with a port the system picks. */
int udp_socket(struct sockaddr_in *addr);

/* Writes / reads exactly `len` bytes with API(send) / API(recv). Reading
 * returns 0 when the stream ends before `len` bytes, else 1. */
void send_exact(int fd, const void *buf, size_t len);
int recv_exact(int fd, void *buf, size_t len);

/* The same with API(write) / API(read). */
void write_exact(int fd, const void *buf, size_t len);
int read_exact(int fd, void *buf, size_t len);

#endif /* BENCH_COMMON_H */
