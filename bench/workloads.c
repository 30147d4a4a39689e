/*
 * workloads.c: the timed workloads, all on loopback (127.0.0.1, AF_UNIX,
 * pipes), all with ports the system picks.
 *
 * Each workload is set up once per process; the harness (main.c) then
 * times run(ctx, ops) over several windows. Two kinds of design:
 *
 * - Conversations between two threads (ping-pongs, bulk, two threads at
 *   once) measure latency or throughput including the scheduler's
 *   wake-ups, as a real program sees them. Where the threads run is set by
 *   --placement (common.c), the same for every build.
 * - Single-thread loops (connect+accept+close, writev/readv, sendmsg/
 *   recvmsg, the per-call floor) keep both ends in one thread, so the time
 *   is the calls themselves and a library overhead shows at its largest.
 */

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KIB 1024
#define MAX_MESSAGE 1024
#define BULK_CHUNK (64 * KIB)
#define VEC_COUNT 8
#define VEC_SIZE 512
#define UNIX_MESSAGE 256

static void *xcalloc(size_t size)
{
    void *p = calloc(1, size);

    if (p == NULL)
        fail("out of memory");
    return p;
}

static void start_thread(pthread_t *thread, void *(*body)(void *), void *arg)
{
    if (pthread_create(thread, NULL, body, arg) != 0)
        fail("pthread_create failed");
}

static void join_thread(pthread_t thread)
{
    if (pthread_join(thread, NULL) != 0)
        fail("pthread_join failed");
}

static void close_fd(int fd)
{
    if (API(close)(fd) != 0)
        die("close");
}

/* ---- Ping-pong: TCP (send/recv) or UDP (sendto/recvfrom) ---------------- */

/* The client end belongs to the thread that calls pingpong_rounds (the main
 * thread, or a worker in two_threads); a peer thread echoes every message
 * back on the server end. */
struct pingpong {
    int udp;            /* 0: TCP with send/recv; 1: UDP with sendto/recvfrom */
    size_t size;        /* bytes per message, at most MAX_MESSAGE */
    int slot;           /* CPU slot of the client thread */
    int client, server;
    struct sockaddr_in server_addr; /* UDP: where the client sends */
    pthread_t peer;
    char buf[MAX_MESSAGE];
};

/* Receives one message into `buf`: `size` bytes over TCP, one datagram
 * over UDP (remembering the sender in `*from`). Returns 0 at the end: the
 * TCP stream closed, or an empty UDP datagram arrived. */
static int pingpong_receive(const struct pingpong *pp, int fd, char *buf, struct sockaddr_in *from)
{
    if (!pp->udp)
        return recv_exact(fd, buf, pp->size);

    socklen_t len = sizeof *from;
    ssize_t n = API(recvfrom)(fd, buf, pp->size, 0, (struct sockaddr *)from, &len);

    if (n < 0)
        die("recvfrom");
    return n > 0;
}

/* Sends one message of `len` bytes: over TCP all of it, over UDP one
 * datagram to `*to`. */
static void pingpong_send(const struct pingpong *pp, int fd, const char *buf, size_t len,
                          const struct sockaddr_in *to)
{
    if (!pp->udp) {
        send_exact(fd, buf, len);
        return;
    }
    if (API(sendto)(fd, buf, len, 0, (const struct sockaddr *)to, sizeof *to) != (ssize_t)len)
        die("sendto");
}

/* The peer thread: echoes messages until the client says it is done. */
static void *pingpong_peer(void *arg)
{
    struct pingpong *pp = arg;
    char buf[MAX_MESSAGE];
    struct sockaddr_in from;

    pin_to_slot(peer_slot(pp->slot));
    while (pingpong_receive(pp, pp->server, buf, &from))
        pingpong_send(pp, pp->server, buf, pp->size, &from);
    return NULL;
}

static struct pingpong *pingpong_open(int udp, size_t size, int slot)
{
    struct pingpong *pp = xcalloc(sizeof *pp);
    struct sockaddr_in client_addr;

    pp->udp = udp;
    pp->size = size;
    pp->slot = slot;
    memset(pp->buf, 'p', sizeof pp->buf);
    if (udp) {
        pp->client = udp_socket(&client_addr);
        pp->server = udp_socket(&pp->server_addr);
    } else {
        tcp_pair(&pp->client, &pp->server);
    }
    start_thread(&pp->peer, pingpong_peer, pp);
    return pp;
}

/* `rounds` round trips: send a message, wait for its echo. */
static void pingpong_rounds(struct pingpong *pp, long rounds)
{
    struct sockaddr_in from;

    for (long i = 0; i < rounds; i++) {
        pingpong_send(pp, pp->client, pp->buf, pp->size, &pp->server_addr);
        if (!pingpong_receive(pp, pp->client, pp->buf, &from))
            fail("ping-pong peer went away");
    }
}

static void pingpong_close(struct pingpong *pp)
{
    /* Tell the peer to stop: end of stream for TCP, an empty datagram for UDP. */
    if (pp->udp)
        pingpong_send(pp, pp->client, pp->buf, 0, &pp->server_addr);
    else if (API(shutdown)(pp->client, SHUT_WR) != 0)
        die("shutdown");
    join_thread(pp->peer);
    close_fd(pp->client);
    close_fd(pp->server);
    free(pp);
}

static void *tcp_1b_setup(void)
{
    pin_to_slot(0);
    return pingpong_open(0, 1, 0);
}

static void *tcp_1k_setup(void)
{
    pin_to_slot(0);
    return pingpong_open(0, KIB, 0);
}

static void *udp_setup(void)
{
    pin_to_slot(0);
    return pingpong_open(1, 32, 0);
}

static void pingpong_run(void *ctx, long ops)
{
    pingpong_rounds(ctx, ops);
}

static void pingpong_teardown(void *ctx)
{
    pingpong_close(ctx);
}

/* ---- Two threads at once: two TCP ping-pongs in parallel ---------------- */

/* Each worker owns one conversation (its own sockets, its own peer) and
 * runs on its own CPU slot; the main thread starts both with a barrier and
 * waits for both at a second one. Shared library state (the descriptor
 * table, per-thread error state) would show here as contention. */
#define WORKERS 2

struct two_threads;

struct worker {
    struct two_threads *tt;
    int index;                    /* also its CPU slot */
    struct pingpong *pp;
    pthread_t thread;
};

struct two_threads {
    pthread_barrier_t start, done;
    long ops;                     /* rounds for this window; < 0: exit */
    struct worker workers[WORKERS];
};

static void *two_threads_worker(void *arg)
{
    struct worker *w = arg;
    struct two_threads *tt = w->tt;

    pin_to_slot(w->index);
    for (;;) {
        pthread_barrier_wait(&tt->start);
        if (tt->ops < 0)
            return NULL;
        pingpong_rounds(w->pp, tt->ops);
        pthread_barrier_wait(&tt->done);
    }
}

static void *two_threads_setup(void)
{
    struct two_threads *tt = xcalloc(sizeof *tt);

    if (pthread_barrier_init(&tt->start, NULL, WORKERS + 1) != 0 ||
        pthread_barrier_init(&tt->done, NULL, WORKERS + 1) != 0)
        fail("pthread_barrier_init failed");
    for (int i = 0; i < WORKERS; i++) {
        struct worker *w = &tt->workers[i];

        *w = (struct worker){.tt = tt, .index = i, .pp = pingpong_open(0, 1, i)};
        start_thread(&w->thread, two_threads_worker, w);
    }
    return tt;
}

/* Every worker does `ops` round trips; the window ends when both are done,
 * so the value is the time per round trip with two conversations at once. */
static void two_threads_run(void *ctx, long ops)
{
    struct two_threads *tt = ctx;

    tt->ops = ops;
    pthread_barrier_wait(&tt->start);
    pthread_barrier_wait(&tt->done);
}

static void two_threads_teardown(void *ctx)
{
    struct two_threads *tt = ctx;

    tt->ops = -1;
    pthread_barrier_wait(&tt->start);
    for (int i = 0; i < WORKERS; i++) {
        join_thread(tt->workers[i].thread);
        pingpong_close(tt->workers[i].pp);
    }
    pthread_barrier_destroy(&tt->start);
    pthread_barrier_destroy(&tt->done);
    free(tt);
}

/* ---- TCP bulk transfer in 64 KiB chunks --------------------------------- */

/* The main thread writes; a peer thread reads. Each window starts with an
 * 8-byte count and ends with a 1-byte acknowledgement from the reader, so
 * the clock stops only when every byte has been read. */
struct bulk {
    int tx, rx;
    pthread_t reader;
    char chunk[BULK_CHUNK];
};

static void *bulk_reader(void *arg)
{
    struct bulk *b = arg;
    char *buf = xcalloc(BULK_CHUNK);
    uint64_t left;

    pin_to_slot(peer_slot(0));
    while (read_exact(b->rx, &left, sizeof left)) {
        while (left > 0) {
            ssize_t n = API(read)(b->rx, buf, left < BULK_CHUNK ? (size_t)left : BULK_CHUNK);

            if (n <= 0)
                die("read (bulk)");
            left -= (uint64_t)n;
        }
        write_exact(b->rx, "k", 1);
    }
    free(buf);
    return NULL;
}

static void *bulk_setup(void)
{
    struct bulk *b = xcalloc(sizeof *b);

    pin_to_slot(0);
    memset(b->chunk, 'b', sizeof b->chunk);
    tcp_pair(&b->tx, &b->rx);
    start_thread(&b->reader, bulk_reader, b);
    return b;
}

static void bulk_run(void *ctx, long ops)
{
    struct bulk *b = ctx;
    uint64_t total = (uint64_t)ops * BULK_CHUNK;
    char ack;

    write_exact(b->tx, &total, sizeof total);
    for (long i = 0; i < ops; i++)
        write_exact(b->tx, b->chunk, sizeof b->chunk);
    if (!read_exact(b->tx, &ack, 1))
        fail("bulk reader went away");
}

static void bulk_teardown(void *ctx)
{
    struct bulk *b = ctx;

    if (API(shutdown)(b->tx, SHUT_WR) != 0)
        die("shutdown");
    join_thread(b->reader);
    close_fd(b->tx);
    close_fd(b->rx);
    free(b);
}

/* ---- connect + accept + close, one thread ------------------------------- */

/* A loopback connect completes the handshake without waiting for accept,
 * so one thread plays both sides: socket, connect, accept, close both.
 * The server side closes first, as many servers do, so TIME_WAIT stays
 * with the listener's port: when the client closed first, its ephemeral
 * ports piled up in TIME_WAIT and after some 10,000 connections each
 * connect spent hundreds of microseconds searching for a free port. */
struct conn_rate {
    int listener;
    struct sockaddr_in addr;
};

static void *conn_setup(void)
{
    struct conn_rate *c = xcalloc(sizeof *c);

    pin_to_slot(0);
    c->listener = tcp_listener(&c->addr, 64);
    return c;
}

static void conn_run(void *ctx, long ops)
{
    struct conn_rate *c = ctx;

    for (long i = 0; i < ops; i++) {
        int client = API(socket)(AF_INET, SOCK_STREAM, 0);

        if (client < 0)
            die("socket");
        if (API(connect)(client, (struct sockaddr *)&c->addr, sizeof c->addr) != 0)
            die("connect");
        int server = API(accept)(c->listener, NULL, NULL);

        if (server < 0)
            die("accept");
        close_fd(server);
        close_fd(client);
    }
}

static void conn_teardown(void *ctx)
{
    struct conn_rate *c = ctx;

    close_fd(c->listener);
    free(c);
}

/* ---- Two ends in one thread: vectored, messages, the per-call floor ----- */

/* How many descriptor pairs a single-thread workload uses, round-robin.
 * Where the kernel places one socket's structures changes its speed by a
 * few percent from one process to the next (runs of one program came out
 * bimodal); spreading the calls over several pairs averages that out
 * inside each run. */
#define SPREAD 4

/* Opens one connected pair: `*a` is written, `*b` is read. */
typedef void open_pair_fn(int *a, int *b);

/* Descriptor pairs used by one thread, plus its buffers. */
struct local_pairs {
    int a[SPREAD], b[SPREAD];
    int plain_close; /* not from an ss_ call: close them the plain way */
    char out[VEC_COUNT * VEC_SIZE];
    char in[VEC_COUNT * VEC_SIZE];
    struct iovec out_iov[VEC_COUNT], in_iov[VEC_COUNT];
};

/* Splits `buf` into VEC_COUNT iovecs of VEC_SIZE bytes. */
static void split_iov(struct iovec *iov, char *buf)
{
    for (int i = 0; i < VEC_COUNT; i++)
        iov[i] = (struct iovec){.iov_base = buf + i * VEC_SIZE, .iov_len = VEC_SIZE};
}

static struct local_pairs *local_pairs_open(open_pair_fn *open_pair)
{
    struct local_pairs *lp = xcalloc(sizeof *lp);

    pin_to_slot(0);
    memset(lp->out, 'v', sizeof lp->out);
    split_iov(lp->out_iov, lp->out);
    split_iov(lp->in_iov, lp->in);
    for (int i = 0; i < SPREAD; i++)
        open_pair(&lp->a[i], &lp->b[i]);
    return lp;
}

static void local_pairs_teardown(void *ctx)
{
    struct local_pairs *lp = ctx;

    for (int i = 0; i < SPREAD; i++) {
        if (lp->plain_close) {
            close(lp->a[i]);
            close(lp->b[i]);
        } else {
            close_fd(lp->a[i]);
            close_fd(lp->b[i]);
        }
    }
    free(lp);
}

/* Opens an AF_UNIX socketpair of `type`; `what` names it in errors. */
static void unix_pair(int type, int *a, int *b, const char *what)
{
    int sv[2];

    if (API(socketpair)(AF_UNIX, type, 0, sv) != 0)
        die(what);
    *a = sv[0];
    *b = sv[1];
}

static void open_unix_dgram(int *a, int *b)
{
    unix_pair(SOCK_DGRAM, a, b, "socketpair(AF_UNIX, SOCK_DGRAM)");
}

static void open_unix_nonblock(int *a, int *b)
{
    unix_pair(SOCK_STREAM | SOCK_NONBLOCK, a, b, "socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK)");
}

/* A pipe from pipe2 (safesock has no ss_pipe), as in a program that mixes
 * its own descriptors with ss_ calls. */
static void open_pipe(int *a, int *b)
{
    int p[2];

    if (pipe2(p, O_CLOEXEC) != 0)
        die("pipe2");
    *a = p[1];
    *b = p[0];
}

static void *vectored_setup(void)
{
    return local_pairs_open(tcp_pair);
}

/* writev 8 x 512 B on one end of a TCP connection, readv them at the other. */
static void vectored_run(void *ctx, long ops)
{
    struct local_pairs *lp = ctx;
    const ssize_t total = VEC_COUNT * VEC_SIZE;

    for (long i = 0; i < ops; i++) {
        int k = (int)(i % SPREAD);

        if (API(writev)(lp->a[k], lp->out_iov, VEC_COUNT) != total)
            die("writev");
        /* Loopback delivers the 4 KiB at once; loop anyway in case it does not. */
        for (ssize_t got = 0; got < total;) {
            ssize_t n = API(readv)(lp->b[k], lp->in_iov, VEC_COUNT);

            if (n <= 0)
                die("readv");
            got += n;
        }
    }
}

static void *unix_msg_setup(void)
{
    return local_pairs_open(open_unix_dgram);
}

/* sendmsg a 256-byte datagram on one end of an AF_UNIX pair, recvmsg it at
 * the other with room for control data (as a program that may receive
 * descriptors would). */
static void unix_msg_run(void *ctx, long ops)
{
    struct local_pairs *lp = ctx;
    struct iovec out = {.iov_base = lp->out, .iov_len = UNIX_MESSAGE};
    struct iovec in = {.iov_base = lp->in, .iov_len = UNIX_MESSAGE};
    _Alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];

    for (long i = 0; i < ops; i++) {
        int k = (int)(i % SPREAD);
        struct msghdr send_hdr = {.msg_iov = &out, .msg_iovlen = 1};
        struct msghdr recv_hdr = {
            .msg_iov = &in, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};

        if (API(sendmsg)(lp->a[k], &send_hdr, 0) != UNIX_MESSAGE)
            die("sendmsg");
        if (API(recvmsg)(lp->b[k], &recv_hdr, 0) != UNIX_MESSAGE)
            die("recvmsg");
    }
}

/* recv on an empty non-blocking socket: the kernel answers EAGAIN at once,
 * so the time is the system call's floor plus what the library adds on a
 * failing call (it records the failure for ss_last_error). */
static void *eagain_setup(void)
{
    return local_pairs_open(open_unix_nonblock);
}

static void eagain_run(void *ctx, long ops)
{
    struct local_pairs *lp = ctx;

    for (long i = 0; i < ops; i++)
        if (API(recv)(lp->a[i % SPREAD], lp->in, sizeof lp->in, 0) != -1 || errno != EAGAIN)
            fail("recv on an empty non-blocking socket did not fail with EAGAIN");
}

/* One byte written to a pipe and read back: the cheapest successful
 * write and read. */
static void *pipe_setup(void)
{
    struct local_pairs *lp = local_pairs_open(open_pipe);

    lp->plain_close = 1;
    return lp;
}

static void pipe_run(void *ctx, long ops)
{
    struct local_pairs *lp = ctx;

    for (long i = 0; i < ops; i++) {
        int k = (int)(i % SPREAD);

        if (API(write)(lp->a[k], lp->out, 1) != 1)
            die("write (pipe)");
        if (API(read)(lp->b[k], lp->in, 1) != 1)
            die("read (pipe)");
    }
}

/* ---- The table ---------------------------------------------------------- */

const struct workload WORKLOADS[] = {
    {"tcp_pingpong_1b", "TCP ping-pong, 1-byte messages (us per round trip)", PER_OP_US, 1, 20000,
     tcp_1b_setup, pingpong_run, pingpong_teardown},
    {"tcp_pingpong_1k", "TCP ping-pong, 1 KiB messages (us per round trip)", PER_OP_US, 1, 20000,
     tcp_1k_setup, pingpong_run, pingpong_teardown},
    {"tcp_bulk_64k", "TCP bulk transfer, 64 KiB writes (MB/s)", MB_PER_S, BULK_CHUNK, 4000,
     bulk_setup, bulk_run, bulk_teardown},
    {"connect_accept_close", "TCP connect + accept + close both, one thread (us per connection)", PER_OP_US, 1, 3000,
     conn_setup, conn_run, conn_teardown},
    {"udp_pingpong", "UDP ping-pong with sendto/recvfrom, 32 B (us per round trip)", PER_OP_US, 1, 20000,
     udp_setup, pingpong_run, pingpong_teardown},
    {"writev_readv_8x512", "writev + readv of 8 x 512 B over TCP, one thread (ns per pair)", PER_OP_NS, 1, 20000,
     vectored_setup, vectored_run, local_pairs_teardown},
    {"unix_sendmsg_recvmsg", "AF_UNIX datagram sendmsg + recvmsg, 256 B, one thread (ns per pair)", PER_OP_NS, 1,
     50000, unix_msg_setup, unix_msg_run, local_pairs_teardown},
    {"floor_recv_eagain", "recv on an empty non-blocking socket, EAGAIN (ns per call)", PER_OP_NS, 1, 200000,
     eagain_setup, eagain_run, local_pairs_teardown},
    {"floor_pipe_write_read", "write 1 byte to a pipe + read it back (ns per pair)", PER_OP_NS, 1, 100000,
     pipe_setup, pipe_run, local_pairs_teardown},
    {"two_threads", "two TCP 1-byte ping-pongs at once, own connections (us per round trip)", PER_OP_US, 1, 20000,
     two_threads_setup, two_threads_run, two_threads_teardown},
    {"c10k", "10,000 connections, one epoll echo loop (ns per echoed message)", PER_OP_NS, C10K_CONNECTIONS, 2,
     c10k_setup, c10k_run, c10k_teardown},
};

const size_t WORKLOAD_COUNT = sizeof WORKLOADS / sizeof WORKLOADS[0];
