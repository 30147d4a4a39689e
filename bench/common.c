/*
 * common.c: failure reporting, clocks, thread placement and loopback
 * plumbing shared by the workloads (see common.h).
 */

#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* ---- Failure ------------------------------------------------------------ */

void die(const char *what)
{
    int err = errno;

#ifdef USE_SS
    fprintf(stderr, "bench_%s: %s: %s [%s]\n", BENCH_BUILD, what, strerror(err), ss_last_error());
#else
    fprintf(stderr, "bench_%s: %s: %s\n", BENCH_BUILD, what, strerror(err));
#endif
    exit(EXIT_FAILURE);
}

void fail(const char *what)
{
    fprintf(stderr, "bench_%s: %s\n", BENCH_BUILD, what);
    exit(EXIT_FAILURE);
}

/* ---- Time and placement ------------------------------------------------- */

double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum placement bench_placement = SAME_CPU;

/* The CPUs this process may run on, in order, read once (before any
 * thread pins itself, which would narrow the answer). */
static int cpus[CPU_SETSIZE];
static int cpu_count;
static pthread_once_t cpus_once = PTHREAD_ONCE_INIT;

static void read_cpus(void)
{
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof set, &set) != 0)
        die("sched_getaffinity");
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set))
            cpus[cpu_count++] = cpu;
}

void pin_to_slot(int slot)
{
    cpu_set_t set;

    pthread_once(&cpus_once, read_cpus);
    if (bench_placement == NO_PINNING || cpu_count == 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpus[slot % cpu_count], &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        fail("pthread_setaffinity_np failed");
}

int peer_slot(int slot)
{
    return bench_placement == SPLIT_CPU ? slot + 1 : slot;
}

int raise_nofile(long want)
{
    struct rlimit lim;

    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return -1;
    if (lim.rlim_cur >= (rlim_t)want)
        return 0;
    if (lim.rlim_max < (rlim_t)want) {
        /* Raising the hard limit needs CAP_SYS_RESOURCE; try. */
        struct rlimit both = {.rlim_cur = (rlim_t)want, .rlim_max = (rlim_t)want};

        return setrlimit(RLIMIT_NOFILE, &both);
    }
    lim.rlim_cur = (rlim_t)want;
    return setrlimit(RLIMIT_NOFILE, &lim);
}

/* ---- Loopback plumbing -------------------------------------------------- */

/* 127.0.0.1 with port 0: the system picks an ephemeral port. */
static struct sockaddr_in loopback_any_port(void)
{
    struct sockaddr_in addr;

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    return addr;
}

/* Binds `fd` to 127.0.0.1:0 and stores the address it got in `*addr`. */
static void bind_loopback(int fd, struct sockaddr_in *addr)
{
    socklen_t len = sizeof *addr;

    *addr = loopback_any_port();
    if (API(bind)(fd, (struct sockaddr *)addr, sizeof *addr) != 0)
        die("bind 127.0.0.1:0");
    if (API(getsockname)(fd, (struct sockaddr *)addr, &len) != 0)
        die("getsockname");
}

int tcp_listener(struct sockaddr_in *addr, int backlog)
{
    int fd = API(socket)(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        die("socket(AF_INET, SOCK_STREAM)");
    bind_loopback(fd, addr);
    if (API(listen)(fd, backlog) != 0)
        die("listen");
    return fd;
}

static void set_nodelay(int fd)
{
    int one = 1;

    if (API(setsockopt)(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        die("setsockopt(TCP_NODELAY)");
}

void tcp_pair(int *client, int *server)
{
    struct sockaddr_in addr;
    int listener = tcp_listener(&addr, 1);

    *client = API(socket)(AF_INET, SOCK_STREAM, 0);
    if (*client < 0)
        die("socket(AF_INET, SOCK_STREAM)");
    if (API(connect)(*client, (struct sockaddr *)&addr, sizeof addr) != 0)
        die("connect");
    *server = API(accept)(listener, NULL, NULL);
    if (*server < 0)
        die("accept");
    if (API(close)(listener) != 0)
        die("close(listener)");
    set_nodelay(*client);
    set_nodelay(*server);
}

int udp_socket(struct sockaddr_in *addr)
{
    int fd = API(socket)(AF_INET, SOCK_DGRAM, 0);

    if (fd < 0)
        die("socket(AF_INET, SOCK_DGRAM)");
    bind_loopback(fd, addr);
    return fd;
}

void send_exact(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = API(send)(fd, p, len, 0);

        if (n <= 0)
            die("send");
        p += n;
        len -= (size_t)n;
    }
}

int recv_exact(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = API(recv)(fd, p, len, 0);

        if (n == 0)
            return 0;
        if (n < 0)
            die("recv");
        p += n;
        len -= (size_t)n;
    }
    return 1;
}

void write_exact(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = API(write)(fd, p, len);

        if (n <= 0)
            die("write");
        p += n;
        len -= (size_t)n;
    }
}

int read_exact(int fd, void *buf, size_t len)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n = API(read)(fd, p, len);

        if (n == 0)
            return 0;
        if (n < 0)
            die("read");
        p += n;
        len -= (size_t)n;
    }
    return 1;
}
