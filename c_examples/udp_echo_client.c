/*
 * udp_echo_client.c: a UDP echo client written against safesock.
 *
 * The client makes a UDP socket for the server's address family and sends
 * datagrams with ss_sendto, naming the server's address in every call. It
 * never binds: the first ss_sendto gives the socket a free port (and the
 * right source address), which is where the server's answers come back.
 *
 * ss_recvfrom returns the next datagram from ANYONE, with the sender's
 * address; a careful client checks that the answer came from the server.
 * (Calling ss_connect on a UDP socket would make the kernel do that filter,
 * and allow ss_send/ss_recv without addresses. Nothing is sent by it.)
 *
 * UDP may lose datagrams, so a client waits for an answer with a timeout
 * and sends again when none comes.
 *
 * Usage: udp_echo_client ADDRESS [COUNT]
 *
 *   ADDRESS  the server, "127.0.0.1:PORT" or "[::1]:PORT"
 *   COUNT    how many datagrams to echo (default 3), each of another size;
 *            then one empty datagram, which ends the server
 *
 * Exits 0 if every datagram came back whole, from the server, byte for byte.
 */

#include <safesock.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* How long to wait for one answer, and how often to send before giving up. */
#define WAIT_MS 1000
#define TRIES 3

static void die(const char *what)
{
    fprintf(stderr, "[udp client] %s failed: %s\n", what, ss_last_error());
    exit(EXIT_FAILURE);
}

/* Sends `len` bytes to the server and waits for the same bytes back from
 * it. Returns 0 if they came back, -1 if not. */
static int echo_once(int fd, const struct sockaddr_storage *server, socklen_t server_len,
                     const char *server_text, const char *msg, size_t len)
{
    char buf[2048];
    int try;

    for (try = 1; try <= TRIES; try++) {
        struct sockaddr_storage from;
        socklen_t from_len = sizeof from;
        char from_text[80] = ""; /* zeroed, as in main */
        ssize_t n;

        n = ss_sendto(fd, msg, len, 0, (const struct sockaddr *)server, server_len);
        if (n < 0)
            die("ss_sendto");
        printf("[udp client] ss_sendto(%s, %zu bytes) -> %zd\n", server_text, len, n);

        n = ss_recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &from_len);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                printf("[udp client] no answer within %d ms; sending again\n", WAIT_MS);
                continue;
            }
            die("ss_recvfrom");
        }
        if (ss_addr_format((struct sockaddr *)&from, from_len, from_text, sizeof from_text) < 0)
            die("ss_addr_format");
        if (strcmp(from_text, server_text) != 0) {
            printf("[udp client] ignored %zd bytes from %s: not the server\n", n, from_text);
            continue;
        }
        if ((size_t)n != len || memcmp(buf, msg, len) != 0) {
            fprintf(stderr, "[udp client] MISMATCH: sent %zu bytes, got %zd back\n", len, n);
            return -1;
        }
        printf("[udp client] ss_recvfrom -> %zd bytes from %s: the same datagram%s\n", n,
               from_text, n == 0 ? " (empty: 0 is a datagram here, not end of file)" : "");
        return 0;
    }
    fprintf(stderr, "[udp client] no answer after %d tries\n", TRIES);
    return -1;
}

int main(int argc, char **argv)
{
    /* Buffers that ss_addr_parse and ss_addr_format fill are zeroed first,
     * the usual habit with socket addresses. (valgrind's memcheck needs it
     * too: those helpers write through the kernel, which it cannot see.) */
    struct sockaddr_storage server = {0};
    socklen_t server_len = 0;
    struct timeval tv = {.tv_sec = WAIT_MS / 1000, .tv_usec = (WAIT_MS % 1000) * 1000};
    char server_text[80] = "", msg[1024];
    long count = 3, i;
    int fd;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s ADDRESS [COUNT]\n", argv[0]);
        return 2;
    }
    if (argc == 3) {
        count = strtol(argv[2], NULL, 10);
        if (count < 1 || count > 100) {
            fprintf(stderr, "udp_echo_client: COUNT must be from 1 to 100\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(20);

    /* "127.0.0.1:PORT" or "[::1]:PORT" into a socket address, without DNS.
     * The family of the address decides the family of the socket. */
    if (ss_addr_parse(argv[1], &server, &server_len) < 0)
        die("ss_addr_parse");
    if (ss_addr_format((struct sockaddr *)&server, server_len, server_text,
                       sizeof server_text) < 0)
        die("ss_addr_format");

    fd = ss_socket(server.ss_family, SOCK_DGRAM, 0);
    if (fd < 0)
        die("ss_socket");
    if (ss_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        die("ss_setsockopt(SO_RCVTIMEO)");
    printf("[udp client] ss_socket(%s, SOCK_DGRAM, 0) -> fd %d, local port %d (not bound)\n",
           server.ss_family == AF_INET6 ? "AF_INET6" : "AF_INET", fd, ss_local_port(fd));

    /* Datagrams of different sizes: each comes back as one piece of exactly
     * its own size. */
    for (i = 1; i <= count; i++) {
        int len = snprintf(msg, sizeof msg, "datagram %ld of %ld", i, count);

        while (len < (int)sizeof msg - 1 && len < 20 * (int)i)
            msg[len++] = '.';
        if (echo_once(fd, &server, server_len, server_text, msg, (size_t)len) < 0)
            return EXIT_FAILURE;
        if (i == 1)
            printf("[udp client] the first ss_sendto gave the socket port %d\n",
                   ss_local_port(fd));
    }

    /* The empty datagram: the server echoes it and stops. */
    if (echo_once(fd, &server, server_len, server_text, "", 0) < 0)
        return EXIT_FAILURE;

    if (ss_close(fd) < 0)
        die("ss_close");
    printf("[udp client] ss_close(fd %d) -> 0; %ld datagram(s) echoed correctly\n", fd, count);
    return EXIT_SUCCESS;
}
