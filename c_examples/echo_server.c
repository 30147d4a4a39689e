/*
 * echo_server.c: a TCP echo server written against safesock.
 *
 * Every socket program goes through the same four steps. For a server:
 *
 *   1. Create the socket and make it a listener: ss_socket, ss_bind, ss_listen.
 *   2. Take a connection: ss_accept, which hands over a NEW descriptor for
 *      that one client while the listening descriptor keeps listening.
 *   3. Read and write as the protocol says. Here the protocol is "echo":
 *      send back every byte that arrives, until the client closes.
 *   4. Close: ss_close, once for every descriptor.
 *
 * Each ss_ function takes the same arguments and returns the same result as
 * the libc function without the prefix, so this is an ordinary socket
 * program. What safesock adds: descriptors are close-on-exec, a write to a
 * vanished client fails with EPIPE instead of killing the server with
 * SIGPIPE, a descriptor is never closed twice, and when a call fails,
 * ss_last_error() says which call, with which arguments, and why.
 *
 * Usage: echo_server [-n CLIENTS] [-t SECONDS] [-p PORTFILE]
 *
 *   -n CLIENTS   serve this many clients, one after the other, then exit
 *                (default 1)
 *   -t SECONDS   give up when a client takes longer than this to connect,
 *                to send or to receive (default 10); the server never hangs
 *   -p PORTFILE  also write the port number to PORTFILE once the server is
 *                listening, so that a script knows where to connect
 *
 * The server listens on 127.0.0.1 (loopback only) on a port the kernel
 * picks, and prints "listening on 127.0.0.1:PORT". Run it with
 * SAFESOCK_TRACE=1 to see one line per ss_ call with the TCP state.
 */

#include <safesock.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* Prints why an ss_ call failed and stops the program.
 *
 * ss_last_error() is the reason safesock exists: one line naming the call,
 * its decoded arguments, the system's text and the errno name, for example
 * "ss_bind(fd 3, 127.0.0.1:80): Permission denied (EACCES): ...". The text
 * stays valid until the next ss_ call on this thread, so print it first. */
static void die(const char *what)
{
    fprintf(stderr, "[server] %s failed: %s\n", what, ss_last_error());
    exit(EXIT_FAILURE);
}

/* Bounds every blocking wait on `fd` to `seconds`: a read or accept that
 * waits longer fails with EAGAIN, a write that cannot proceed for that long
 * (the client stopped reading) fails too. */
static void set_timeouts(int fd, long seconds)
{
    struct timeval tv = {.tv_sec = seconds, .tv_usec = 0};

    if (ss_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        die("ss_setsockopt(SO_RCVTIMEO)");
    if (ss_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        die("ss_setsockopt(SO_SNDTIMEO)");
}

/* Writes the port to `path` so that another program can find the server.
 * The number goes to a temporary file that is then renamed: whoever polls
 * for `path` sees either no file or the whole number, never half of it. */
static void write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    FILE *f;

    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        fprintf(stderr, "[server] port file name too long: %s\n", path);
        exit(EXIT_FAILURE);
    }
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%u\n", port) < 0 || fclose(f) != 0 ||
        rename(tmp, path) != 0) {
        perror("[server] writing the port file");
        exit(EXIT_FAILURE);
    }
}

/* Sends all `len` bytes. ss_write, like write(2), may send fewer bytes than
 * asked; the loop sends the rest. If the client has gone, ss_write returns
 * -1 with errno EPIPE (plain write would raise SIGPIPE and end the server).
 * The helper ss_send_all does the same loop. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = ss_write(fd, buf, len);

        if (n < 0) {
            if (errno == EINTR)
                continue; /* a signal interrupted the wait: try again */
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Steps 2 to 4 for one client. Returns 0 if the client was served to the
 * end, -1 if the connection failed (the reason is printed). */
static int serve_one(int listen_fd, long timeout_s)
{
    struct sockaddr_in peer;
    socklen_t peer_len = sizeof peer;
    char peer_text[INET_ADDRSTRLEN] = "?";
    char buf[4096];
    size_t echoed = 0;
    int conn_fd;
    int result = 0;

    /* Step 2: take a connection.
     *
     * The kernel has already done the three-way handshake with the client
     * and queued the connection; ss_accept takes it off the queue, waiting
     * if none is there yet (at most timeout_s seconds, set by SO_RCVTIMEO on
     * the listener). It returns a NEW descriptor for this one connection.
     * The listening descriptor is untouched and can accept the next client. */
    conn_fd = ss_accept(listen_fd, (struct sockaddr *)&peer, &peer_len);
    if (conn_fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            fprintf(stderr, "[server] no client connected within %ld s (%s)\n",
                    timeout_s, ss_errno_name(errno));
        die("ss_accept");
    }
    inet_ntop(AF_INET, &peer.sin_addr, peer_text, sizeof peer_text);
    printf("[server] step 2: ss_accept(fd %d) -> fd %d, client %s:%u\n",
           listen_fd, conn_fd, peer_text, (unsigned)ntohs(peer.sin_port));
    printf("[server]         fd %d talks to this client; fd %d keeps listening\n",
           conn_fd, listen_fd);
    set_timeouts(conn_fd, timeout_s);

    /* Step 3: the protocol. Read whatever has arrived and send it back.
     *
     * TCP carries a stream of bytes, not messages: one ss_read may return
     * part of what the client wrote, or several of its writes at once. An
     * echo server does not care, it returns the bytes in the same order.
     * ss_read returning 0 is not an error: it means the client closed its
     * side (its FIN arrived) and no more bytes will come. */
    for (;;) {
        ssize_t n = ss_read(conn_fd, buf, sizeof buf);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "[server] ss_read failed: %s\n", ss_last_error());
            result = -1;
            break;
        }
        if (n == 0) {
            printf("[server] step 3: ss_read(fd %d) -> 0: the client closed its "
                   "side; %zu bytes echoed\n",
                   conn_fd, echoed);
            break;
        }
        printf("[server] step 3: ss_read(fd %d) -> %zd bytes, writing them back\n",
               conn_fd, n);
        if (write_all(conn_fd, buf, (size_t)n) < 0) {
            fprintf(stderr, "[server] ss_write failed: %s\n", ss_last_error());
            result = -1;
            break;
        }
        echoed += (size_t)n;
    }

    /* Step 4: close the connection. This was the last descriptor for it, so
     * the kernel sends our FIN and the client's next read returns 0. */
    if (ss_close(conn_fd) < 0)
        die("ss_close");
    printf("[server] step 4: ss_close(fd %d) -> 0 (connection closed)\n", conn_fd);
    return result;
}

/* Parses a positive number for option -`opt`, or exits with usage. */
static long positive(const char *text, char opt)
{
    char *end;
    long value;

    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < 1 || value > 100000) {
        fprintf(stderr, "echo_server: -%c wants a number from 1 to 100000, not '%s'\n",
                opt, text);
        exit(2);
    }
    return value;
}

int main(int argc, char **argv)
{
    long clients = 1;
    long timeout_s = 10;
    const char *port_file = NULL;
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof addr;
    int listen_fd;
    int on = 1;
    int failures = 0;
    int opt;
    long served;

    while ((opt = getopt(argc, argv, "n:t:p:")) != -1) {
        switch (opt) {
        case 'n': clients = positive(optarg, 'n'); break;
        case 't': timeout_s = positive(optarg, 't'); break;
        case 'p': port_file = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-n CLIENTS] [-t SECONDS] [-p PORTFILE]\n",
                    argv[0]);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "usage: %s [-n CLIENTS] [-t SECONDS] [-p PORTFILE]\n", argv[0]);
        return 2;
    }

    /* One line at a time even into a pipe, so that the server's and the
     * client's lines interleave in the order they happen. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("[server] safesock %s\n", ss_version());

    /* Step 1: create the listening socket.
     *
     * ss_socket makes a TCP socket (AF_INET + SOCK_STREAM) that has no
     * address yet. safesock creates it close-on-exec, so a program this
     * server might exec never inherits it. */
    listen_fd = ss_socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0)
        die("ss_socket");
    printf("[server] step 1: ss_socket(AF_INET, SOCK_STREAM, 0) -> fd %d\n", listen_fd);

    /* SO_REUSEADDR lets a restarted server bind its port again at once,
     * while connections of the previous run still sit in TIME_WAIT.
     * Options that affect bind must be set before bind. */
    if (ss_setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die("ss_setsockopt(SO_REUSEADDR)");
    printf("[server] step 1: ss_setsockopt(fd %d, SO_REUSEADDR, 1) -> 0\n", listen_fd);
    set_timeouts(listen_fd, timeout_s); /* bounds the wait in ss_accept */

    /* ss_bind gives the socket its address: 127.0.0.1, so only programs on
     * this machine can connect, and port 0, which asks the kernel for any
     * free port. A fixed port could be taken already (EADDRINUSE). Note the
     * byte order: struct sockaddr_in holds the port and the address in
     * network byte order, hence htons and htonl. */
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(0);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ss_bind(listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("ss_bind");
    printf("[server] step 1: ss_bind(fd %d, 127.0.0.1:0) -> 0 (port 0: the kernel "
           "picks a free port)\n",
           listen_fd);

    /* ss_listen turns the socket from one that would connect out into one
     * that waits for clients. From now on the kernel answers connection
     * requests by itself and queues up to `backlog` finished handshakes
     * until the program accepts them. */
    if (ss_listen(listen_fd, 16) < 0)
        die("ss_listen");
    printf("[server] step 1: ss_listen(fd %d, 16) -> 0\n", listen_fd);

    /* Which port did the kernel pick? ss_getsockname reads the socket's
     * address back, port included. */
    if (ss_getsockname(listen_fd, (struct sockaddr *)&addr, &addr_len) < 0)
        die("ss_getsockname");
    printf("[server] listening on 127.0.0.1:%u\n", (unsigned)ntohs(addr.sin_port));
    if (port_file != NULL)
        write_port_file(port_file, ntohs(addr.sin_port));

    for (served = 0; served < clients; served++) {
        if (serve_one(listen_fd, timeout_s) < 0)
            failures++;
    }

    /* Step 4 for the listener: no more clients are accepted; connection
     * requests that arrive from now on are refused (ECONNREFUSED). */
    if (ss_close(listen_fd) < 0)
        die("ss_close");
    printf("[server] step 4: ss_close(fd %d) -> 0; served %ld client(s), %d failed\n",
           listen_fd, served, failures);
    return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
