/*
 * c10k.c: 10,000 loopback TCP connections served by one epoll loop.
 *
 * The server is a child process (fork) so that each side needs only about
 * 10,000 descriptors: it accepts every connection (non-blocking) and then
 * echoes with one read and one write per readiness event, level-triggered.
 * The client (this process) holds all 10,000 connections; one operation is
 * a round: a 16-byte write on every connection, then epoll until every
 * echo is back. The value is the time per echoed message.
 *
 * Both sides make their socket calls through API(), like every workload;
 * epoll itself is plain libc in every build.
 */

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#define MESSAGE 16
#define MAX_EVENTS 1024
#define EPOLL_TIMEOUT_MS 20000
#define SERVER_WATCHDOG_S 600
/* Descriptors each process needs beyond the connections (stdio, listener, epoll ...). */
#define SPARE_FDS 64

struct c10k {
    pid_t server;
    int epoll;
    int fds[C10K_CONNECTIONS];
};

static int epoll_new(void)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);

    if (ep < 0)
        die("epoll_create1");
    return ep;
}

static void epoll_watch(int ep, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl(ADD)");
}

/* Waits for events; a long silence means the other side is gone. */
static int epoll_wait_some(int ep, struct epoll_event *events)
{
    int n;

    do {
        n = epoll_wait(ep, events, MAX_EVENTS, EPOLL_TIMEOUT_MS);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        die("epoll_wait");
    if (n == 0)
        fail("c10k: no event for 20 s");
    return n;
}

/* ---- The server (child process) ----------------------------------------- */

/* Accepts every pending connection, non-blocking, into the epoll set.
 * Returns how many it accepted. */
static int server_accept(int ep, int listener)
{
    int accepted = 0;

    for (;;) {
        int fd = API(accept4)(listener, NULL, NULL, SOCK_NONBLOCK);

        if (fd < 0) {
            if (errno == EAGAIN)
                return accepted;
            die("accept4");
        }
        epoll_watch(ep, fd);
        accepted++;
    }
}

/* Echoes what one read returns. Returns 0 when the connection ended (end
 * of stream or reset by the client's abortive close) and was closed. */
static int server_echo(int fd)
{
    char buf[4096];
    ssize_t n = API(read)(fd, buf, sizeof buf);

    if (n > 0) {
        write_exact(fd, buf, (size_t)n);
        return 1;
    }
    if (n < 0 && errno == EAGAIN)
        return 1;
    if (n < 0 && errno != ECONNRESET)
        die("read (c10k server)");
    if (API(close)(fd) != 0)
        die("close (c10k server)");
    return 0;
}

/* The epoll loop: runs until all connections have come and gone. */
static void server_loop(int listener)
{
    struct epoll_event events[MAX_EVENTS];
    int ep = epoll_new();
    int accepted = 0, closed = 0;

    epoll_watch(ep, listener);
    while (closed < C10K_CONNECTIONS) {
        int n = epoll_wait_some(ep, events);

        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;

            if (fd == listener)
                accepted += server_accept(ep, listener);
            else if (!server_echo(fd))
                closed++;
        }
    }
    if (accepted != C10K_CONNECTIONS)
        fail("c10k server: accepted a different number of connections");
    close(ep);
    if (API(close)(listener) != 0)
        die("close (listener)");
}

/* Starts the server process on a listener that the client then connects to. */
static pid_t server_start(struct sockaddr_in *addr)
{
    int listener = tcp_listener(addr, 4096);
    pid_t pid = fork();

    if (pid < 0)
        die("fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the client */
        alarm(SERVER_WATCHDOG_S);
        pin_to_slot(peer_slot(0));
        if (fcntl(listener, F_SETFL, O_NONBLOCK) != 0)
            die("fcntl(O_NONBLOCK)");
        server_loop(listener);
        exit(EXIT_SUCCESS);
    }
    if (API(close)(listener) != 0)
        die("close (listener, client side)");
    return pid;
}

/* ---- The client (this process) ------------------------------------------ */

static void client_connect_all(struct c10k *c, const struct sockaddr_in *addr)
{
    for (int i = 0; i < C10K_CONNECTIONS; i++) {
        int fd = API(socket)(AF_INET, SOCK_STREAM, 0);

        if (fd < 0)
            die("socket (c10k)");
        if (API(connect)(fd, (const struct sockaddr *)addr, sizeof *addr) != 0)
            die("connect (c10k)");
        c->fds[i] = fd;
        epoll_watch(c->epoll, fd);
    }
}

void *c10k_setup(void)
{
    struct c10k *c;
    struct sockaddr_in addr;

    if (raise_nofile(C10K_CONNECTIONS + SPARE_FDS) != 0) {
        printf("skipped: c10k needs %d descriptors per process and setrlimit(RLIMIT_NOFILE) refused: %s\n",
               C10K_CONNECTIONS + SPARE_FDS, strerror(errno));
        return NULL;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL)
        fail("out of memory");
    pin_to_slot(0);
    c->epoll = epoll_new();
    c->server = server_start(&addr);
    client_connect_all(c, &addr);
    return c;
}

/* One round: a message on every connection, then every echo back. */
static void client_round(struct c10k *c)
{
    static const char message[MESSAGE] = "c10k echo round";
    struct epoll_event events[MAX_EVENTS];
    char buf[4096];
    long expected = (long)C10K_CONNECTIONS * MESSAGE;

    for (int i = 0; i < C10K_CONNECTIONS; i++)
        if (API(write)(c->fds[i], message, MESSAGE) != MESSAGE)
            die("write (c10k client)");
    while (expected > 0) {
        int n = epoll_wait_some(c->epoll, events);

        for (int i = 0; i < n; i++) {
            ssize_t got = API(read)(events[i].data.fd, buf, sizeof buf);

            if (got <= 0)
                die("read (c10k client)");
            expected -= got;
        }
    }
}

void c10k_run(void *ctx, long rounds)
{
    for (long r = 0; r < rounds; r++)
        client_round(ctx);
}

/* Closes every connection with a reset (SO_LINGER 0), so that the 10,000
 * ports do not sit in TIME_WAIT for the next run, and waits for the server. */
void c10k_teardown(void *ctx)
{
    struct c10k *c = ctx;
    struct linger abort_close = {.l_onoff = 1, .l_linger = 0};
    int status;

    for (int i = 0; i < C10K_CONNECTIONS; i++) {
        if (API(setsockopt)(c->fds[i], SOL_SOCKET, SO_LINGER, &abort_close, sizeof abort_close) != 0)
            die("setsockopt(SO_LINGER)");
        if (API(close)(c->fds[i]) != 0)
            die("close (c10k client)");
    }
    close(c->epoll);
    if (waitpid(c->server, &status, 0) != c->server)
        die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail("c10k server failed");
    free(c);
}
