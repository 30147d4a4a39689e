/*
 * teardown.c: the TCP four-way close, state by state.
 *
 * A TCP connection carries two independent byte streams, one each way, and
 * each is ended on its own with a FIN. That makes four packets:
 *
 *   1. A -> B   FIN   A has no more to send       A: FIN_WAIT1
 *   2. B -> A   ACK   B's kernel got it           A: FIN_WAIT2  B: CLOSE_WAIT
 *      ... B's program reads end of file (ss_read returns 0), may still
 *          send, and closes when it is done ...
 *   3. B -> A   FIN   B has no more to send       B: LAST_ACK
 *   4. A -> B   ACK                               B: CLOSED     A: TIME_WAIT
 *
 * The side that closes first (A, here the server) ends in TIME_WAIT for
 * 2*MSL (60 s on Linux), so that a late packet of this connection cannot be
 * taken for part of a new one on the same ports, and so that A can resend
 * the last ACK if it was lost.
 *
 * To watch A's states, A ends its stream with ss_shutdown(SHUT_WR) rather
 * than ss_close: the FIN goes out all the same, but the descriptor stays
 * open, so ss_tcp_state can still be asked. (Once both FINs are exchanged,
 * Linux moves the connection to a small TIME_WAIT record and the socket
 * itself reads CLOSE; safesock finds that record in the kernel's socket
 * table and reports TIME_WAIT.)
 *
 * The same shutdown is the "half-close": after A's FIN, B reads end of file
 * but can still send, and A can still read what B sends. Only A's direction
 * is closed.
 *
 * The program plays both sides in one process, prints every state change it
 * sees, and exits 0 only if the connection went through the states above.
 * Loopback only, ports the kernel picks, bounded waits, alarm() watchdog.
 */

#include <safesock.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void die(const char *what)
{
    fprintf(stderr, "[teardown] %s failed: %s\n", what, ss_last_error());
    exit(EXIT_FAILURE);
}

static void expect(int ok, const char *claim)
{
    if (!ok) {
        printf("  UNEXPECTED: %s did not hold\n", claim);
        failures++;
    }
}

static const char *name(int state)
{
    return state < 0 ? ss_errno_name(errno) : ss_tcp_state_name(state);
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Samples the state of `fd` every millisecond for up to `ms` and prints
 * each change as "who: STATE (+N ms)". Stops early when `until` is reached.
 * Returns the last state seen and adds every state seen to the bit set
 * `*seen` (bit 1 << state). This is how the short-lived states (FIN_WAIT1,
 * LAST_ACK) can be caught, if they last long enough at all. */
static int watch(const char *who, int fd, int until, long ms, unsigned *seen)
{
    long start = now_ms();
    int last = -2;

    for (;;) {
        int s = ss_tcp_state(fd);

        if (s != last) {
            printf("    %s: %s (+%ld ms)\n", who, name(s), now_ms() - start);
            last = s;
            if (s >= 0 && s < 32)
                *seen |= 1u << s;
        }
        if (s == until || now_ms() - start >= ms)
            return s;
        sleep_ms(1);
    }
}

int main(void)
{
    const char reply[] = "B still sends after reading end of file";
    /* Buffers that ss_addr_parse and ss_addr_format fill are zeroed first,
     * the usual habit with socket addresses. (valgrind's memcheck needs it
     * too: those helpers write through the kernel, which it cannot see.) */
    char server_text[64], buf[128];
    struct sockaddr_storage again = {0}; /* ss_addr_parse fills all of it */
    socklen_t again_len = 0;
    int listen_fd, client, server, fd, s, on = 1;
    unsigned seen_a = 0, seen_b = 0; /* the states each side was seen in */
    ssize_t n;

    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(20);
    printf("teardown: the four-way close (safesock %s)\n", ss_version());

    /* A connection to take apart. The server's end is A (it closes first),
     * the client's end is B. */
    listen_fd = ss_tcp_listen("127.0.0.1:0", 4);
    if (listen_fd < 0)
        die("ss_tcp_listen");
    snprintf(server_text, sizeof server_text, "127.0.0.1:%d", ss_local_port(listen_fd));
    client = ss_tcp_connect(server_text, 2000);
    if (client < 0)
        die("ss_tcp_connect");
    server = ss_accept(listen_fd, NULL, NULL);
    if (server < 0)
        die("ss_accept");
    printf("connected on %s: A = server fd %d (%s), B = client fd %d (%s)\n", server_text,
           server, name(ss_tcp_state(server)), client, name(ss_tcp_state(client)));

    /* 1. A sends FIN. Its state is FIN_WAIT1 until B's kernel acknowledges
     * the FIN, then FIN_WAIT2. B's kernel may delay that ACK a little
     * (delayed ACK, tens of milliseconds), so FIN_WAIT1 is often visible. */
    printf("1. A: ss_shutdown(fd %d, SHUT_WR): FIN sent; A's descriptor stays open\n", server);
    if (ss_shutdown(server, SHUT_WR) < 0)
        die("ss_shutdown");
    s = watch("A", server, SS_TCP_FIN_WAIT2, 2000, &seen_a);
    expect(s == SS_TCP_FIN_WAIT2, "A reaches FIN_WAIT2 once its FIN is acknowledged");
    if (!(seen_a & (1u << SS_TCP_FIN_WAIT1)))
        printf("   (FIN_WAIT1 was over before the first look: B's kernel acknowledged at once)\n");

    /* 2. B got the FIN: its kernel is in CLOSE_WAIT, and B's program reads
     * end of file. B stays in CLOSE_WAIT for as long as the program does
     * not close: the kernel cannot close B's direction for it. A server
     * that forgets to close piles up CLOSE_WAIT sockets. */
    printf("2. B: state %s\n", name(ss_tcp_state(client)));
    expect(ss_tcp_state(client) == SS_TCP_CLOSE_WAIT, "B is in CLOSE_WAIT after A's FIN");
    n = ss_read(client, buf, sizeof buf);
    printf("2. B: ss_read(fd %d) -> %zd: end of file, A will send nothing more\n", client, n);
    expect(n == 0, "B reads end of file");
    sleep_ms(100);
    printf("2. B: 100 ms later, still %s: it waits for B's program to close\n",
           name(ss_tcp_state(client)));
    expect(ss_tcp_state(client) == SS_TCP_CLOSE_WAIT, "B stays in CLOSE_WAIT until it closes");

    /* The half-close: only A's direction is closed. B can still send, and
     * A, in FIN_WAIT2, still reads. A itself can no longer send: its write
     * fails with EPIPE (and, with safesock, raises no SIGPIPE). */
    if (ss_send_all(client, reply, sizeof reply) < 0)
        die("ss_send_all");
    printf("2. B: ss_send_all(%zu bytes) -> ok: B's direction is still open\n", sizeof reply);
    n = ss_recv_exact(server, buf, sizeof reply);
    if (n < 0)
        die("ss_recv_exact");
    printf("2. A: ss_recv_exact -> %zd bytes \"%s\": the half-closed side still reads\n", n,
           buf);
    expect(n == (ssize_t)sizeof reply && memcmp(buf, reply, sizeof reply) == 0,
           "A reads what B sent after the FIN");
    n = ss_write(server, "x", 1);
    printf("2. A: ss_write(fd %d, 1 byte) -> %zd (%s): A shut its sending side down\n", server,
           n, n < 0 ? ss_errno_name(errno) : "sent");
    expect(n < 0 && errno == EPIPE, "A cannot send after SHUT_WR");

    /* 3. B closes: its FIN goes out and B is in LAST_ACK until A's ACK
     * arrives. On loopback that ACK comes back while ss_shutdown is still
     * running, so LAST_ACK is usually over before anyone can look: the
     * first state seen is then CLOSE. (Over a real network LAST_ACK lasts
     * one round trip.) B uses ss_shutdown too so that its state can still
     * be read; ss_close would send the same FIN. */
    printf("3. B: ss_shutdown(fd %d, SHUT_WR): B's FIN sent\n", client);
    if (ss_shutdown(client, SHUT_WR) < 0)
        die("ss_shutdown");
    s = watch("B", client, SS_TCP_CLOSE, 500, &seen_b);
    if (seen_b & (1u << SS_TCP_LAST_ACK))
        printf("   (LAST_ACK was caught: the last ACK took a moment to arrive)\n");
    else
        printf("   (LAST_ACK was over before the first look: on loopback A's ACK arrived "
               "while B's ss_shutdown ran)\n");
    /* Whether LAST_ACK is seen depends on timing, so it is only printed.
     * What does not depend on timing: B, which closed second, never enters
     * TIME_WAIT. That state belongs to the side that closed first. */
    expect(s != SS_TCP_TIME_WAIT, "B, which closed second, never enters TIME_WAIT");

    /* 4. A got B's FIN and acknowledged it: A is in TIME_WAIT, and A's
     * program reads end of file in turn. */
    s = watch("A", server, SS_TCP_TIME_WAIT, 1000, &seen_a);
    expect(s == SS_TCP_TIME_WAIT, "A, which closed first, is in TIME_WAIT");
    n = ss_read(server, buf, sizeof buf);
    printf("4. A: ss_read(fd %d) -> %zd: end of file from B too; A is %s\n", server, n,
           name(ss_tcp_state(server)));
    expect(n == 0, "A reads end of file");

    /* Both programs close their descriptors. A's TIME_WAIT record outlives
     * its descriptor: the kernel keeps it for 60 s. */
    if (ss_close(server) < 0 || ss_close(client) < 0 || ss_close(listen_fd) < 0)
        die("ss_close");
    printf("all descriptors closed; A's TIME_WAIT record stays in the kernel for 60 s\n");

    /* Why servers set SO_REUSEADDR: A's TIME_WAIT holds the server's port.
     * A restarted server that binds that port without SO_REUSEADDR gets
     * EADDRINUSE; with it (both sockets had it: ss_tcp_listen sets it), the
     * bind succeeds although TIME_WAIT is still there. */
    if (ss_addr_parse(server_text, &again, &again_len) < 0)
        die("ss_addr_parse");
    fd = ss_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("ss_socket");
    if (ss_bind(fd, (struct sockaddr *)&again, again_len) == 0) {
        printf("restart: ss_bind(%s) without SO_REUSEADDR -> 0\n", server_text);
        expect(0, "TIME_WAIT keeps the port busy for a bind without SO_REUSEADDR");
    } else {
        printf("restart: ss_bind(%s) without SO_REUSEADDR -> -1 (%s)\n", server_text,
               ss_errno_name(errno));
        printf("         ss_last_error(): %s\n", ss_last_error());
        expect(errno == EADDRINUSE, "TIME_WAIT keeps the port busy (EADDRINUSE)");
    }
    if (ss_close(fd) < 0)
        die("ss_close");
    fd = ss_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("ss_socket");
    if (ss_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die("ss_setsockopt");
    n = ss_bind(fd, (struct sockaddr *)&again, again_len);
    printf("restart: ss_bind(%s) with SO_REUSEADDR -> %zd%s\n", server_text, n,
           n == 0 ? ": the port can be used again at once" : "");
    if (n < 0)
        printf("         ss_last_error(): %s\n", ss_last_error());
    expect(n == 0, "SO_REUSEADDR lets a server bind its port during TIME_WAIT");
    if (ss_close(fd) < 0)
        die("ss_close");

    if (failures != 0) {
        printf("teardown: FAILED: %d step(s) did not behave as described\n", failures);
        return EXIT_FAILURE;
    }
    printf("teardown: OK: FIN_WAIT1/2 -> TIME_WAIT on the side that closed first, "
           "CLOSE_WAIT -> (LAST_ACK) -> CLOSE on the other\n");
    return EXIT_SUCCESS;
}
