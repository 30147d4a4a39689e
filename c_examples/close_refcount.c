/*
 * close_refcount.c: close drops one reference; the LAST close sends FIN.
 *
 * A descriptor is a number that refers to an open socket in the kernel.
 * Several descriptors can refer to the same socket: dup() makes a second
 * number in the same process, and fork() gives the child a copy of every
 * descriptor of the parent. The kernel counts those references. ss_close,
 * like close, removes one of them; only when the count reaches zero does
 * the kernel end the connection and send FIN. Until then the peer notices
 * nothing: no end of file, and data still flows through the other copies.
 *
 * (To end a connection while other copies exist, use ss_shutdown: it acts
 * on the socket itself, whatever the number of descriptors.)
 *
 * Part 1 shows it with dup in one process. Part 2 shows it the way a
 * classic forking server meets it: the parent accepts, forks a child to
 * serve the client, and closes ITS copy of the connection at once. That
 * close must not hang up on the client, and does not: the child's copy
 * keeps the connection open until the child closes it.
 *
 * How "no FIN" is checked: the peer polls for input for 300 ms. A FIN
 * would make the socket readable (ss_read would return 0); poll returning
 * 0 means nothing arrived, neither data nor end of file.
 *
 * Exits 0 only if both parts behave so. Loopback only, bounded waits,
 * alarm() watchdog in both processes.
 */

#include <safesock.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

static void die(const char *what)
{
    fprintf(stderr, "[close_refcount] %s failed: %s\n", what, ss_last_error());
    exit(EXIT_FAILURE);
}

static void expect(int ok, const char *claim)
{
    if (!ok) {
        printf("  UNEXPECTED: %s did not hold\n", claim);
        failures++;
    }
}

static const char *state(int fd)
{
    int s = ss_tcp_state(fd);

    return s < 0 ? ss_errno_name(errno) : ss_tcp_state_name(s);
}

/* Returns whether anything (data or end of file) arrives on `fd` within `ms`. */
static int something_arrives(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int n;

    while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR)
        ;
    return n == 1;
}

/* A connected pair over 127.0.0.1: *client from ss_tcp_connect, *server from
 * ss_accept. Returns the listening descriptor. */
static int connect_pair(int *client, int *server)
{
    char addr[64];
    int listen_fd = ss_tcp_listen("127.0.0.1:0", 4);

    if (listen_fd < 0)
        die("ss_tcp_listen");
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ss_local_port(listen_fd));
    *client = ss_tcp_connect(addr, 2000);
    if (*client < 0)
        die("ss_tcp_connect");
    *server = ss_accept(listen_fd, NULL, NULL);
    if (*server < 0)
        die("ss_accept");
    return listen_fd;
}

/* Reads one message of known length from `fd` and checks it. */
static void read_expected(const char *who, int fd, const char *want)
{
    char buf[64];
    size_t len = strlen(want);
    ssize_t n = ss_recv_exact(fd, buf, len);

    if (n < 0)
        die("ss_recv_exact");
    printf("%s ss_recv_exact(fd %d) -> %zd bytes \"%.*s\"\n", who, fd, n, (int)n, buf);
    expect(n == (ssize_t)len && memcmp(buf, want, len) == 0, "the data arrived");
}

/* Reads from `fd` and expects end of file (the peer's FIN). */
static void read_eof(const char *who, int fd)
{
    char c;
    ssize_t n;

    if (!something_arrives(fd, 2000)) {
        printf("%s nothing arrived within 2 s\n", who);
        expect(0, "the last close sends FIN");
        return;
    }
    n = ss_read(fd, &c, 1);
    printf("%s ss_read(fd %d) -> %zd: end of file, the FIN arrived; state %s\n", who, fd, n,
           state(fd));
    expect(n == 0, "the last close sends FIN (read returns 0)");
}

/* Part 1: two numbers for one socket in one process. */
static void with_dup(void)
{
    const char msg[] = "written through the copy";
    int client, server, listen_fd, copy;

    printf("part 1: dup\n");
    listen_fd = connect_pair(&client, &server);

    /* dup is a plain libc call: safesock needs no part in it. ss_close
     * can close the copy later all the same; it only refuses numbers that
     * ss_close itself already closed. */
    copy = dup(client);
    if (copy < 0) {
        perror("dup");
        exit(EXIT_FAILURE);
    }
    printf("  [client] fd %d and its dup fd %d: one socket, state %s / %s\n", client, copy,
           state(client), state(copy));

    if (ss_close(client) < 0)
        die("ss_close");
    printf("  [client] ss_close(fd %d) -> 0: one of two references dropped\n", client);
    expect(!something_arrives(server, 300), "closing one copy sends no FIN");
    printf("  [server] poll 300 ms: nothing arrived, no end of file; state %s\n",
           state(server));
    expect(ss_tcp_state(server) == SS_TCP_ESTABLISHED, "the peer is still ESTABLISHED");

    if (ss_send_all(copy, msg, strlen(msg)) < 0)
        die("ss_send_all");
    printf("  [client] ss_send_all(fd %d, ...): the connection still works\n", copy);
    read_expected("  [server]", server, msg);

    if (ss_close(copy) < 0)
        die("ss_close");
    printf("  [client] ss_close(fd %d) -> 0: the last reference, so the kernel sends FIN\n",
           copy);
    read_eof("  [server]", server);
    expect(ss_tcp_state(server) == SS_TCP_CLOSE_WAIT, "the peer is in CLOSE_WAIT");

    if (ss_close(server) < 0 || ss_close(listen_fd) < 0)
        die("ss_close");
}

/* The child of part 2: serves the client on `conn` once the parent says go. */
static void child_serves(int listen_fd, int client, int conn, int go)
{
    const char msg[] = "hello from the child";
    char c;
    ssize_t n;

    alarm(10);
    /* The child got copies of all the parent's descriptors (close-on-exec
     * does not matter here: there is no exec). A forking server's child
     * closes what it does not use: the listener, and here the client's end.
     * Neither close affects the parent's copies. */
    if (ss_close(listen_fd) < 0 || ss_close(client) < 0)
        die("ss_close");
    printf("  [child ] ss_close(fd %d), ss_close(fd %d): copies the child does not need\n",
           listen_fd, client);

    while ((n = read(go, &c, 1)) < 0 && errno == EINTR)
        ;
    close(go);
    if (n != 1)
        exit(EXIT_FAILURE);

    /* Each line is printed before the call, so that it comes before what
     * the parent prints about the effect. */
    printf("  [child ] ss_send_all(fd %d, \"%s\")\n", conn, msg);
    if (ss_send_all(conn, msg, strlen(msg)) < 0)
        die("ss_send_all");
    printf("  [child ] ss_close(fd %d): the last reference, so the kernel sends FIN\n", conn);
    if (ss_close(conn) < 0)
        die("ss_close");
    exit(EXIT_SUCCESS);
}

/* Part 2: the forking server. */
static void with_fork(void)
{
    int client, conn, listen_fd, go[2], status;
    pid_t pid;

    printf("part 2: fork\n");
    listen_fd = connect_pair(&client, &conn);
    printf("  [parent] accepted fd %d; forking a child to serve it\n", conn);

    /* A pipe to tell the child when to answer. */
    if (pipe(go) < 0) {
        perror("pipe");
        exit(EXIT_FAILURE);
    }
    pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(EXIT_FAILURE);
    }
    if (pid == 0) {
        close(go[1]);
        child_serves(listen_fd, client, conn, go[0]);
    }
    close(go[0]);

    /* The parent closes its copy of the connection, as a forking server
     * does after handing it to a child. The child still holds it. */
    if (ss_close(conn) < 0)
        die("ss_close");
    printf("  [parent] ss_close(fd %d) -> 0: the parent's copy is gone, the child's remains\n",
           conn);
    expect(!something_arrives(client, 300), "the parent's close sends no FIN");
    printf("  [client] poll 300 ms: nothing arrived, no end of file; state %s\n",
           state(client));

    if (write(go[1], "g", 1) != 1) {
        perror("write");
        exit(EXIT_FAILURE);
    }
    close(go[1]);
    read_expected("  [client]", client, "hello from the child");
    read_eof("  [client]", client);

    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            exit(EXIT_FAILURE);
        }
    }
    expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child succeeded");
    if (ss_close(client) < 0 || ss_close(listen_fd) < 0)
        die("ss_close");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(20);
    printf("close_refcount: only the last close of a socket sends FIN (safesock %s)\n",
           ss_version());

    with_dup();
    with_fork();

    if (failures != 0) {
        printf("close_refcount: FAILED: %d step(s) did not behave as described\n", failures);
        return EXIT_FAILURE;
    }
    printf("close_refcount: OK: closing one copy kept the connection; the last close sent "
           "FIN\n");
    return EXIT_SUCCESS;
}
