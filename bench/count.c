/*
 * count.c: loops for counting instructions and allocations per call.
 *
 * `--count CASE N` makes N successful calls of one mirror function. Only
 * that call goes through API(); everything around it (the write that gives
 * a read something to read, the close after a socket ...) is plain libc in
 * every build, so the libc and safesock programs differ in that one call.
 *
 * The loop runs inside bench_count_region(), the one function the driver
 * tells callgrind to collect (--toggle-collect). The driver runs each case
 * with two values of N and divides the difference by the difference of N,
 * which cancels everything that happens once (lazy symbol binding, the
 * first use of thread-local state, the descriptor table's first chunk).
 *
 * A case with a "minus" cannot call its function alone: ss_close needs a
 * number that an ss_ call handed out (a plain socket on a number ss_close
 * closed before is refused, by design), so the "close" loop is
 * socket + close and the driver subtracts the "socket" case.
 */

#include "common.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

/* The descriptors and buffers every loop may use, set up with plain libc. */
struct count_ctx {
    int stream[2];      /* AF_UNIX stream pair */
    int dgram[2];       /* AF_UNIX datagram pair */
    int nonblock[2];    /* AF_UNIX stream pair, non-blocking, always empty */
    int pipe[2];        /* a pipe: a descriptor safesock did not create */
    int udp_a, udp_b;   /* UDP sockets on 127.0.0.1 */
    struct sockaddr_in udp_b_addr;
    int listener;       /* AF_UNIX stream listener, abstract address */
    struct sockaddr_un listen_addr;
    socklen_t listen_len;
    char buf[64];
    struct iovec out_iov[2], in_iov[2];
    struct msghdr out_msg, in_msg;
    _Alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))];
    struct sockaddr_in loopback_any; /* 127.0.0.1:0, for bind */
};

/* Stops the program if a call that must succeed did not. */
#define CHECK(cond)                                                                                                    \
    do {                                                                                                               \
        if (!(cond))                                                                                                   \
            die(#cond);                                                                                                \
    } while (0)

/* Defines loop_NAME, which runs the body n times (with `x` at hand). */
#define LOOP(name, ...)                                                                                                \
    static void loop_##name(struct count_ctx *x, long n)                                                               \
    {                                                                                                                  \
        (void)x;                                                                                                       \
        for (long i = 0; i < n; i++) {                                                                                 \
            __VA_ARGS__;                                                                                               \
        }                                                                                                              \
    }

/* Casts for the address arguments. */
#define SA(p) ((struct sockaddr *)(p))
#define CSA(p) ((const struct sockaddr *)(p))

/* ---- Setup -------------------------------------------------------------- */

static void unix_listener(struct count_ctx *x)
{
    memset(&x->listen_addr, 0, sizeof x->listen_addr);
    x->listen_addr.sun_family = AF_UNIX;
    /* Abstract name (leading NUL): nothing on disk, gone with the socket. */
    int len = snprintf(x->listen_addr.sun_path + 1, sizeof x->listen_addr.sun_path - 1, "safesock-bench-%ld",
                       (long)getpid());
    x->listen_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)len);
    CHECK((x->listener = socket(AF_UNIX, SOCK_STREAM, 0)) >= 0);
    CHECK(bind(x->listener, CSA(&x->listen_addr), x->listen_len) == 0);
    CHECK(listen(x->listener, 16) == 0);
}

static void udp_pair(struct count_ctx *x)
{
    socklen_t len = sizeof x->udp_b_addr;

    x->loopback_any = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK((x->udp_a = socket(AF_INET, SOCK_DGRAM, 0)) >= 0);
    CHECK((x->udp_b = socket(AF_INET, SOCK_DGRAM, 0)) >= 0);
    CHECK(bind(x->udp_a, CSA(&x->loopback_any), sizeof x->loopback_any) == 0);
    CHECK(bind(x->udp_b, CSA(&x->loopback_any), sizeof x->loopback_any) == 0);
    CHECK(getsockname(x->udp_b, SA(&x->udp_b_addr), &len) == 0);
}

/* Two 1-byte buffers per direction, and message headers over them. */
static void buffers(struct count_ctx *x)
{
    for (int i = 0; i < 2; i++) {
        x->out_iov[i] = (struct iovec){.iov_base = x->buf + i, .iov_len = 1};
        x->in_iov[i] = (struct iovec){.iov_base = x->buf + 32 + i, .iov_len = 1};
    }
    x->out_msg = (struct msghdr){.msg_iov = x->out_iov, .msg_iovlen = 2};
    x->in_msg = (struct msghdr){.msg_iov = x->in_iov, .msg_iovlen = 2, .msg_control = x->control};
}

static void count_setup(struct count_ctx *x)
{
    memset(x, 0, sizeof *x);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, x->stream) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, x->dgram) == 0);
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, x->nonblock) == 0);
    CHECK(pipe(x->pipe) == 0);
    udp_pair(x);
    unix_listener(x);
    buffers(x);
}

static void count_teardown(struct count_ctx *x)
{
    int fds[] = {x->stream[0], x->stream[1], x->dgram[0], x->dgram[1], x->nonblock[0],
                 x->nonblock[1], x->pipe[0], x->pipe[1], x->udp_a, x->udp_b, x->listener};

    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
}

/* ---- The loops: one API() call each ------------------------------------- */

/* A connected AF_UNIX stream client of the listener. */
static int unix_client(const struct count_ctx *x)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    CHECK(fd >= 0);
    CHECK(connect(fd, CSA(&x->listen_addr), x->listen_len) == 0);
    return fd;
}

LOOP(socket, int fd = API(socket)(AF_UNIX, SOCK_DGRAM, 0); CHECK(fd >= 0); close(fd))
LOOP(socket_close, int fd = API(socket)(AF_UNIX, SOCK_DGRAM, 0); CHECK(fd >= 0); CHECK(API(close)(fd) == 0))
LOOP(socketpair, int sv[2]; CHECK(API(socketpair)(AF_UNIX, SOCK_STREAM, 0, sv) == 0); close(sv[0]); close(sv[1]))
LOOP(bind, int fd = socket(AF_INET, SOCK_DGRAM, 0); CHECK(fd >= 0);
     CHECK(API(bind)(fd, CSA(&x->loopback_any), sizeof x->loopback_any) == 0); close(fd))
LOOP(listen, int fd = socket(AF_INET, SOCK_STREAM, 0); CHECK(fd >= 0); CHECK(API(listen)(fd, 1) == 0); close(fd))
LOOP(connect, int fd = socket(AF_INET, SOCK_DGRAM, 0); CHECK(fd >= 0);
     CHECK(API(connect)(fd, CSA(&x->udp_b_addr), sizeof x->udp_b_addr) == 0); close(fd))
LOOP(accept, int c = unix_client(x); int a = API(accept)(x->listener, NULL, NULL); CHECK(a >= 0); close(a); close(c))
LOOP(accept4, int c = unix_client(x); int a = API(accept4)(x->listener, NULL, NULL, SOCK_CLOEXEC); CHECK(a >= 0);
     close(a); close(c))
LOOP(read, CHECK(write(x->stream[0], x->buf, 1) == 1); CHECK(API(read)(x->stream[1], x->buf, 1) == 1))
LOOP(write, CHECK(API(write)(x->stream[0], x->buf, 1) == 1); CHECK(read(x->stream[1], x->buf, 1) == 1))
LOOP(recv, CHECK(send(x->stream[0], x->buf, 1, 0) == 1); CHECK(API(recv)(x->stream[1], x->buf, 1, 0) == 1))
LOOP(send, CHECK(API(send)(x->stream[0], x->buf, 1, 0) == 1); CHECK(recv(x->stream[1], x->buf, 1, 0) == 1))
LOOP(readv, CHECK(writev(x->stream[0], x->out_iov, 2) == 2); CHECK(API(readv)(x->stream[1], x->in_iov, 2) == 2))
LOOP(writev, CHECK(API(writev)(x->stream[0], x->out_iov, 2) == 2); CHECK(readv(x->stream[1], x->in_iov, 2) == 2))
LOOP(recvmsg, x->in_msg.msg_controllen = sizeof x->control; CHECK(sendmsg(x->dgram[0], &x->out_msg, 0) == 2);
     CHECK(API(recvmsg)(x->dgram[1], &x->in_msg, 0) == 2))
LOOP(sendmsg, x->in_msg.msg_controllen = sizeof x->control;
     CHECK(API(sendmsg)(x->dgram[0], &x->out_msg, 0) == 2); CHECK(recvmsg(x->dgram[1], &x->in_msg, 0) == 2))
LOOP(recvfrom, struct sockaddr_in from; socklen_t len = sizeof from;
     CHECK(sendto(x->udp_a, x->buf, 1, 0, CSA(&x->udp_b_addr), sizeof x->udp_b_addr) == 1);
     CHECK(API(recvfrom)(x->udp_b, x->buf, 1, 0, SA(&from), &len) == 1))
LOOP(sendto, struct sockaddr_in from; socklen_t len = sizeof from;
     CHECK(API(sendto)(x->udp_a, x->buf, 1, 0, CSA(&x->udp_b_addr), sizeof x->udp_b_addr) == 1);
     CHECK(recvfrom(x->udp_b, x->buf, 1, 0, SA(&from), &len) == 1))
LOOP(shutdown, int sv[2]; CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
     CHECK(API(shutdown)(sv[0], SHUT_WR) == 0); close(sv[0]); close(sv[1]))
LOOP(getsockname, struct sockaddr_in a; socklen_t len = sizeof a;
     CHECK(API(getsockname)(x->udp_b, SA(&a), &len) == 0))
LOOP(getpeername, struct sockaddr_un a; socklen_t len = sizeof a;
     CHECK(API(getpeername)(x->stream[0], SA(&a), &len) == 0))
LOOP(getsockopt, int v; socklen_t len = sizeof v;
     CHECK(API(getsockopt)(x->stream[0], SOL_SOCKET, SO_RCVBUF, &v, &len) == 0))
LOOP(setsockopt, int one = 1; CHECK(API(setsockopt)(x->stream[0], SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) == 0))
LOOP(write_pipe, CHECK(API(write)(x->pipe[1], x->buf, 1) == 1); CHECK(read(x->pipe[0], x->buf, 1) == 1))
LOOP(recv_eagain, CHECK(API(recv)(x->nonblock[0], x->buf, 1, 0) == -1 && errno == EAGAIN))

struct count_case {
    const char *name;
    void (*loop)(struct count_ctx *x, long n);
    const char *minus; /* the case to subtract, or "-" */
};

/* The 23 mirror functions in the header's order, then two more paths:
 * write on a pipe (not a socket) and a failing call (EAGAIN). */
static const struct count_case CASES[] = {
    {"socket", loop_socket, "-"},
    {"socketpair", loop_socketpair, "-"},
    {"bind", loop_bind, "-"},
    {"listen", loop_listen, "-"},
    {"connect", loop_connect, "-"},
    {"accept", loop_accept, "-"},
    {"accept4", loop_accept4, "-"},
    {"shutdown", loop_shutdown, "-"},
    {"close", loop_socket_close, "socket"},
    {"read", loop_read, "-"},
    {"write", loop_write, "-"},
    {"recv", loop_recv, "-"},
    {"send", loop_send, "-"},
    {"readv", loop_readv, "-"},
    {"writev", loop_writev, "-"},
    {"recvmsg", loop_recvmsg, "-"},
    {"sendmsg", loop_sendmsg, "-"},
    {"recvfrom", loop_recvfrom, "-"},
    {"sendto", loop_sendto, "-"},
    {"getsockname", loop_getsockname, "-"},
    {"getpeername", loop_getpeername, "-"},
    {"getsockopt", loop_getsockopt, "-"},
    {"setsockopt", loop_setsockopt, "-"},
    {"write_pipe", loop_write_pipe, "-"},
    {"recv_eagain", loop_recv_eagain, "-"},
};

void count_list(void)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        printf("%s %s\n", CASES[i].name, CASES[i].minus);
}

/* The region callgrind collects. noipa keeps GCC from inlining, cloning or
 * renaming it, so --toggle-collect=bench_count_region always matches. */
__attribute__((noipa)) void bench_count_region(const struct count_case *c, struct count_ctx *x, long n);
__attribute__((noipa)) void bench_count_region(const struct count_case *c, struct count_ctx *x, long n)
{
    c->loop(x, n);
}

int count_main(const char *name, long n)
{
    static struct count_ctx ctx;

    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        if (strcmp(CASES[i].name, name) != 0)
            continue;
        count_setup(&ctx);
        bench_count_region(&CASES[i], &ctx, n);
        count_teardown(&ctx);
        printf("count %s %ld done\n", name, n);
        return 0;
    }
    fprintf(stderr, "bench_%s: no count case %s (see --count-list)\n", BENCH_BUILD, name);
    return 2;
}
