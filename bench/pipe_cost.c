/*
 * pipe_cost.c: what the kernel charges for the system call safesock uses
 * to write to a pipe, measured with libc alone (no safesock).
 *
 * ss_write on a descriptor that is not a stream socket uses
 * pwritev2(fd, iov, 1, -1, RWF_NOSIGNAL) instead of write(fd, buf, n): the
 * one call that cannot raise SIGPIPE even if the number now holds a socket
 * (reused behind safesock's back), and the reason floor_pipe_write_read
 * cannot reach its target. This program times a 1-byte write + read on a
 * pipe with each call, in alternating rounds, and prints the median of
 * each and of the per-round ratio.
 *
 *   make -C bench pipe-cost
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifndef RWF_NOSIGNAL
#define RWF_NOSIGNAL 0x00000100
#endif

enum { ROUNDS = 15, OPS = 400000 };

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* Nanoseconds per write + read of one byte, with pwritev2 or write. */
static double time_pairs(const int p[2], int use_pwritev2)
{
    char byte = 'x', back;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    double start = now_ns();
    for (long i = 0; i < OPS; i++) {
        ssize_t n = use_pwritev2 ? pwritev2(p[1], &iov, 1, -1, RWF_NOSIGNAL) : write(p[1], &byte, 1);
        if (n != 1 || read(p[0], &back, 1) != 1) {
            perror(use_pwritev2 ? "pwritev2" : "write");
            exit(1);
        }
    }
    return (now_ns() - start) / OPS;
}

int main(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("pipe2");
        return 1;
    }
    double plain[ROUNDS], flagged[ROUNDS], ratio[ROUNDS];
    time_pairs(p, 0); /* warm up */
    time_pairs(p, 1);
    for (int r = 0; r < ROUNDS; r++) {
        int first = r % 2; /* alternate which call goes first */
        double a = time_pairs(p, first);
        double b = time_pairs(p, !first);
        plain[r] = first ? b : a;
        flagged[r] = first ? a : b;
        ratio[r] = flagged[r] / plain[r];
    }
    printf("libc write + read:                  %7.1f ns\n", median(plain, ROUNDS));
    printf("libc pwritev2(RWF_NOSIGNAL) + read: %7.1f ns\n", median(flagged, ROUNDS));
    printf("ratio pwritev2/write (median of %d rounds): %.3f\n", ROUNDS, median(ratio, ROUNDS));
    close(p[0]);
    close(p[1]);
    return 0;
}
