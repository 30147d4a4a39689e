/*
 * handshake.c: the TCP three-way handshake, seen through the calls.
 *
 * The handshake is three packets:
 *
 *   1. client -> server   SYN        "I want to talk; my sequence starts at J"
 *   2. server -> client   SYN+ACK    "fine; mine starts at K, I got J"
 *   3. client -> server   ACK        "I got K"
 *
 * Textbooks often tie the calls to those packets: "connect returns at the
 * 2nd step, accept returns at the 3rd". The first half is right: the
 * client's kernel returns from connect as soon as the SYN+ACK arrives (it
 * sends the ACK on the way out), so the client is ESTABLISHED at once. The
 * second half is not quite: the server PROGRAM takes no part in the
 * handshake. Its kernel answers the SYN by itself, and when the final ACK
 * arrives it puts the finished connection on the listening socket's accept
 * queue (the "backlog"). ss_accept only takes a connection off that queue;
 * it may be called long after the handshake, and then returns at once.
 *
 * This program plays both sides in one process and prints the TCP state
 * (ss_tcp_state + ss_tcp_state_name) of every socket at every step:
 *
 *   step 1  the server listens; the client's socket has no port yet
 *   step 2  ss_accept blocks while nothing is pending (bounded waits show it)
 *   step 3  ss_connect returns: the client is ESTABLISHED, the server has
 *           not called accept, and the client can even send already
 *   step 4  ss_accept returns at once, with a NEW descriptor
 *   step 5  a full backlog: the kernel drops new SYNs, connects time out
 *
 * It exits 0 only if every step behaved as described. Everything runs on
 * 127.0.0.1 with ports the kernel picks; no wait is longer than a few
 * seconds, and alarm() ends the program if anything hangs anyway.
 *
 * Run with SAFESOCK_TRACE=1 to see every ss_ call with the state after it.
 */

#include <safesock.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The largest number of connections step 5 makes to fill the backlog. */
#define MAX_FILL 16

static int failures;

/* Prints why an ss_ call failed and stops: ss_last_error() names the call,
 * its arguments, the system's text and the errno name. */
static void die(const char *what)
{
    fprintf(stderr, "[handshake] %s failed: %s\n", what, ss_last_error());
    exit(EXIT_FAILURE);
}

/* Records a step that did not behave as this program says it does. */
static void expect(int ok, const char *claim)
{
    if (!ok) {
        printf("  UNEXPECTED: %s did not hold\n", claim);
        failures++;
    }
}

/* The TCP state of `fd` as a name: "ESTABLISHED", "LISTEN" ... */
static const char *state(int fd)
{
    int s = ss_tcp_state(fd);

    return s < 0 ? ss_errno_name(errno) : ss_tcp_state_name(s);
}

/* Milliseconds on a clock that never jumps, to time the waits. */
static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to `ms` for `events` on `fd`; returns poll's result (0: time out). */
static int wait_for(int fd, short events, int ms)
{
    struct pollfd p = {.fd = fd, .events = events, .revents = 0};
    int n;

    while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR)
        ;
    return n;
}

/* The local address of `fd` as text, such as "127.0.0.1:40312". */
static const char *local_text(int fd, char *buf, size_t len)
{
    struct sockaddr_storage a;
    socklen_t alen = sizeof a;

    if (ss_getsockname(fd, (struct sockaddr *)&a, &alen) < 0 ||
        ss_addr_format((struct sockaddr *)&a, alen, buf, len) < 0)
        die("ss_getsockname/ss_addr_format");
    return buf;
}

/* Steps 1 to 4: one connection, from listen to accept. */
static void one_connection(void)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200 * 1000};
    /* Buffers that ss_addr_parse and ss_addr_format fill are zeroed first,
     * the usual habit with socket addresses. (valgrind's memcheck needs it
     * too: those helpers write through the kernel, which it cannot see.) */
    struct sockaddr_storage server = {0}, peer;
    socklen_t server_len = 0, peer_len = sizeof peer;
    char server_text[64] = "", local[64] = "", peer_text[64] = "", buf[64];
    const char hello[] = "sent before the server accepted";
    long start, waited;
    int listen_fd, client_fd, conn_fd, port;
    ssize_t n;

    /* Step 1: the server listens. ss_tcp_listen is ss_socket + ss_bind to
     * 127.0.0.1:0 (the kernel picks the port) + ss_listen. From now on the
     * kernel answers SYNs for this port by itself. */
    listen_fd = ss_tcp_listen("127.0.0.1:0", 8);
    if (listen_fd < 0)
        die("ss_tcp_listen");
    local_text(listen_fd, server_text, sizeof server_text);
    if (ss_addr_parse(server_text, &server, &server_len) < 0)
        die("ss_addr_parse");
    printf("step 1 [server] ss_tcp_listen(\"127.0.0.1:0\", 8) -> fd %d, listening on %s  "
           "state %s\n",
           listen_fd, server_text, state(listen_fd));
    expect(ss_tcp_state(listen_fd) == SS_TCP_LISTEN, "the listener is in LISTEN");

    /* The client's socket: made, never bound. It has no port yet (a socket
     * without an address reports port 0); connect will give it one. Its TCP
     * state is CLOSE, which for a new socket just means "no connection". */
    client_fd = ss_socket(AF_INET, SOCK_STREAM, 0);
    if (client_fd < 0)
        die("ss_socket");
    port = ss_local_port(client_fd);
    printf("step 1 [client] ss_socket -> fd %d, local port %d (not bound: no port yet)  "
           "state %s\n",
           client_fd, port, state(client_fd));
    expect(port == 0, "an unbound socket has port 0");

    /* Step 2: nothing is pending, so accept would block. Two bounded ways
     * to see that without hanging: poll on the listener says "not readable"
     * (a listener is readable when a connection waits), and an ss_accept
     * with a receive timeout (SO_RCVTIMEO) waits that long, then fails with
     * EAGAIN. A plain blocking ss_accept would wait here forever. */
    start = now_ms();
    n = wait_for(listen_fd, POLLIN, 200);
    printf("step 2 [server] poll(listener, POLLIN, 200 ms) -> %zd after %ld ms: no "
           "connection is pending\n",
           n, now_ms() - start);
    expect(n == 0, "poll on an idle listener times out");

    if (ss_setsockopt(listen_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        die("ss_setsockopt(SO_RCVTIMEO)");
    start = now_ms();
    conn_fd = ss_accept(listen_fd, NULL, NULL);
    waited = now_ms() - start;
    printf("step 2 [server] ss_accept(fd %d) with a 200 ms SO_RCVTIMEO -> %d (%s) after "
           "%ld ms: it blocked, nobody came\n",
           listen_fd, conn_fd, ss_errno_name(errno), waited);
    expect(conn_fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
           "ss_accept on an idle listener times out with EAGAIN");
    expect(waited >= 150, "ss_accept waited (blocked) about 200 ms");

    /* Step 3: the client connects. The kernels exchange SYN, SYN+ACK, ACK;
     * ss_connect returns 0 as soon as the client has the SYN+ACK. The
     * server program is not involved: it is not in ss_accept right now. */
    if (ss_connect(client_fd, (struct sockaddr *)&server, server_len) < 0)
        die("ss_connect");
    printf("step 3 [client] ss_connect(fd %d, %s) -> 0  state %s\n", client_fd, server_text,
           state(client_fd));
    expect(ss_tcp_state(client_fd) == SS_TCP_ESTABLISHED,
           "the client is ESTABLISHED before the server accepts");

    /* Connecting gave the client an address: the loopback address and a
     * free port the kernel chose (an "ephemeral" port). No bind needed. */
    port = ss_local_port(client_fd);
    printf("step 3 [client] it never called bind; the system gave it %s (port %d)\n",
           local_text(client_fd, local, sizeof local), port);
    expect(port > 0, "connect gave the client a port");

    /* The finished connection waits in the listener's accept queue: the
     * listener is now readable. */
    n = wait_for(listen_fd, POLLIN, 1000);
    printf("step 3 [server] has not called accept; poll(listener, POLLIN) -> %zd: one "
           "connection waits in the backlog; listener state %s\n",
           n, state(listen_fd));
    expect(n == 1, "the listener is readable: a connection waits");

    /* The connection is fully open, so the client may send already. The
     * bytes wait in the server kernel's buffer for that connection. */
    if (ss_send_all(client_fd, hello, sizeof hello) < 0)
        die("ss_send_all");
    printf("step 3 [client] ss_send_all(%zu bytes) -> ok, still before any accept\n",
           sizeof hello);

    /* Step 4: accept. The connection is already there, so ss_accept returns
     * at once. It returns a NEW descriptor for this one connection; the
     * listening descriptor stays as it was, ready for the next client. */
    start = now_ms();
    conn_fd = ss_accept(listen_fd, (struct sockaddr *)&peer, &peer_len);
    if (conn_fd < 0)
        die("ss_accept");
    waited = now_ms() - start;
    if (ss_addr_format((struct sockaddr *)&peer, peer_len, peer_text, sizeof peer_text) < 0)
        die("ss_addr_format");
    printf("step 4 [server] ss_accept(fd %d) -> NEW fd %d after %ld ms, peer %s  state %s\n",
           listen_fd, conn_fd, waited, peer_text, state(conn_fd));
    printf("step 4 [server] fd %d still listens (state %s); fd %d is the connection\n",
           listen_fd, state(listen_fd), conn_fd);
    expect(conn_fd != listen_fd, "ss_accept returns a new descriptor");
    expect(ss_tcp_state(conn_fd) == SS_TCP_ESTABLISHED, "the accepted socket is ESTABLISHED");
    expect(ss_tcp_state(listen_fd) == SS_TCP_LISTEN, "the listener still listens");
    expect(strcmp(peer_text, local) == 0, "the peer address is the client's address");

    /* The bytes sent before the accept were kept for it. */
    n = ss_recv_exact(conn_fd, buf, sizeof hello);
    if (n < 0)
        die("ss_recv_exact");
    printf("step 4 [server] ss_recv_exact -> %zd bytes: \"%s\"\n", n, buf);
    expect(n == (ssize_t)sizeof hello && memcmp(buf, hello, sizeof hello) == 0,
           "the bytes sent before accept arrive");

    if (ss_close(conn_fd) < 0 || ss_close(client_fd) < 0 || ss_close(listen_fd) < 0)
        die("ss_close");
}

/* Step 5: what happens when nobody accepts and the backlog fills up. */
static void full_backlog(void)
{
    int fill[MAX_FILL];
    char server_text[64] = ""; /* zeroed, as in one_connection */
    struct sockaddr_storage server = {0};
    socklen_t server_len = 0;
    int listen_fd, queued = 0, made = 0, stuck = -1, late, conn_fd, i;
    long start, waited;

    /* A backlog of 1: the kernel keeps at most that many finished
     * connections waiting for accept (Linux allows one more than asked). */
    listen_fd = ss_tcp_listen("127.0.0.1:0", 1);
    if (listen_fd < 0)
        die("ss_tcp_listen");
    local_text(listen_fd, server_text, sizeof server_text);
    if (ss_addr_parse(server_text, &server, &server_len) < 0)
        die("ss_addr_parse");
    printf("step 5 [server] ss_tcp_listen(\"127.0.0.1:0\", 1) -> fd %d on %s; it never "
           "accepts\n",
           listen_fd, server_text);

    /* Connect again and again without accepting. Each connect is
     * non-blocking: ss_connect starts the handshake and returns EINPROGRESS;
     * poll for writability tells when (whether) it completed. Once the
     * queue is full, the server's kernel drops the SYN: no answer at all,
     * and the client stays in SYN_SENT, resending the SYN later (after 1 s,
     * 3 s, 7 s ...). */
    for (i = 0; i < MAX_FILL && stuck < 0; i++) {
        int rc, err = 0;
        socklen_t err_len = sizeof err;

        fill[i] = ss_socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (fill[i] < 0)
            die("ss_socket");
        made++;
        rc = ss_connect(fill[i], (struct sockaddr *)&server, server_len);
        if (rc < 0 && errno != EINPROGRESS)
            die("ss_connect");
        if (wait_for(fill[i], POLLOUT, 300) == 1) {
            if (ss_getsockopt(fill[i], SOL_SOCKET, SO_ERROR, &err, &err_len) < 0)
                die("ss_getsockopt(SO_ERROR)");
        } else {
            stuck = i;
        }
        printf("step 5 [client %d] ss_connect -> %s; 300 ms later: state %s%s\n", i + 1,
               rc == 0 ? "0" : ss_errno_name(EINPROGRESS), state(fill[i]),
               stuck == i ? "  <- no answer: the accept queue is full, the SYN was dropped"
                          : "  (queued, waiting for accept)");
        if (err != 0) {
            printf("  UNEXPECTED: the connect failed with %s\n", ss_errno_name(err));
            failures++;
            stuck = i; /* stop filling */
        } else if (stuck != i) {
            queued++;
        }
    }
    printf("step 5 [server] the accept queue held %d connection(s) for backlog 1\n", queued);
    expect(queued >= 1, "the backlog queued at least one connection");
    expect(stuck >= 0 && ss_tcp_state(fill[stuck]) == SS_TCP_SYN_SENT,
           "a connect beyond the backlog stays in SYN_SENT");

    /* A blocking connect with a deadline: ss_tcp_connect gives up after
     * 500 ms with ETIMEDOUT, because its SYN is dropped too. (A real client
     * without a deadline would wait for the retransmissions, over a minute.) */
    start = now_ms();
    late = ss_tcp_connect(server_text, 500);
    waited = now_ms() - start;
    printf("step 5 [client] ss_tcp_connect(\"%s\", 500 ms) -> %d (%s) after %ld ms\n", server_text,
           late, late < 0 ? ss_errno_name(errno) : "connected", waited);
    if (late < 0)
        printf("step 5 [client] ss_last_error(): %s\n", ss_last_error());
    expect(late < 0 && errno == ETIMEDOUT, "a connect to a full backlog times out");
    if (late >= 0)
        ss_close(late);

    /* Accepting one frees a place. The stuck client's next SYN (resent about
     * 1 s after the first) is answered and its connect completes. */
    if (stuck >= 0) {
        conn_fd = ss_accept(listen_fd, NULL, NULL);
        if (conn_fd < 0)
            die("ss_accept");
        printf("step 5 [server] ss_accept -> fd %d: one place is free again\n", conn_fd);
        start = now_ms();
        i = wait_for(fill[stuck], POLLOUT, 4000);
        printf("step 5 [client %d] completed %ld ms later, when its SYN was resent: "
               "state %s\n",
               stuck + 1, now_ms() - start, state(fill[stuck]));
        expect(i == 1 && ss_tcp_state(fill[stuck]) == SS_TCP_ESTABLISHED,
               "the waiting client gets in once a place is free");
        if (ss_close(conn_fd) < 0)
            die("ss_close");
    }

    for (i = 0; i < made; i++)
        if (ss_close(fill[i]) < 0)
            die("ss_close");
    if (ss_close(listen_fd) < 0)
        die("ss_close");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(30); /* a watchdog: no step may hang the program */
    printf("handshake: the three-way handshake, step by step (safesock %s)\n", ss_version());

    one_connection();
    full_backlog();

    if (failures != 0) {
        printf("handshake: FAILED: %d step(s) did not behave as described\n", failures);
        return EXIT_FAILURE;
    }
    printf("handshake: OK: connect returned before accept; accept returned a new fd; a full "
           "backlog drops SYNs\n");
    return EXIT_SUCCESS;
}
