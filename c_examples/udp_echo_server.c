/*
 * udp_echo_server.c: a UDP echo server written against safesock.
 *
 * UDP has no connections. There is no listen and no accept: the server
 * binds one socket to an address, and every datagram from any client
 * arrives on that same socket. ss_recvfrom returns one whole datagram and
 * tells who sent it; ss_sendto sends the answer back to that address. Each
 * datagram keeps its boundary: one ss_sendto on the client is one
 * ss_recvfrom here, never half of one or two glued together. (But a
 * datagram may be lost, duplicated or reordered on a real network; UDP
 * does not repair that. On loopback none of it happens in practice.)
 *
 * Protocol: echo every datagram back to its sender. An EMPTY datagram is
 * echoed too and then ends the server: for UDP, receiving 0 bytes means "a
 * datagram with no data", not end of file as it does for TCP.
 *
 * Usage: udp_echo_server [-t SECONDS] [-p PORTFILE] [ADDRESS]
 *
 *   ADDRESS      where to bind (default 127.0.0.1:0): "127.0.0.1:0" or
 *                "[::1]:0"; port 0 lets the kernel pick a free port
 *   -t SECONDS   give up when no datagram arrives for this long (default 10)
 *   -p PORTFILE  write the port to PORTFILE once bound, for a script
 *
 * Prints "bound to ADDRESS:PORT". Exits 0 after the empty datagram, 1 on
 * failure, and 77 ("skipped") if the address family is not available
 * here, for example IPv6 on a machine without ::1.
 */

#include <safesock.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* The exit status for "this machine cannot run the example". */
#define EXIT_SKIPPED 77

static void die(const char *what)
{
    fprintf(stderr, "[udp server] %s failed: %s\n", what, ss_last_error());
    exit(EXIT_FAILURE);
}

/* Writes the port to `path` through a temporary file and a rename, so that
 * a script polling for the file never reads half a number. */
static void write_port_file(const char *path, int port)
{
    char tmp[4096];
    FILE *f;

    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        fprintf(stderr, "[udp server] port file name too long: %s\n", path);
        exit(EXIT_FAILURE);
    }
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        perror("[udp server] writing the port file");
        exit(EXIT_FAILURE);
    }
}

int main(int argc, char **argv)
{
    const char *address = "127.0.0.1:0";
    const char *port_file = NULL;
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    /* Buffers that ss_addr_parse and ss_addr_format fill are zeroed first,
     * the usual habit with socket addresses. (valgrind's memcheck needs it
     * too: those helpers write through the kernel, which it cannot see.) */
    struct sockaddr_storage me;
    socklen_t me_len = sizeof me;
    char me_text[80] = "";
    long datagrams = 0;
    int fd, opt;

    while ((opt = getopt(argc, argv, "t:p:")) != -1) {
        switch (opt) {
        case 't': tv.tv_sec = strtol(optarg, NULL, 10); break;
        case 'p': port_file = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-t SECONDS] [-p PORTFILE] [ADDRESS]\n", argv[0]);
            return 2;
        }
    }
    if (optind < argc)
        address = argv[optind++];
    if (optind != argc || tv.tv_sec < 1) {
        fprintf(stderr, "usage: %s [-t SECONDS] [-p PORTFILE] [ADDRESS]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm((unsigned)tv.tv_sec + 5); /* a watchdog beyond the receive timeout */

    /* ss_udp_bind is ss_socket(family, SOCK_DGRAM, 0) + ss_bind. A machine
     * without the address (no ::1) answers EADDRNOTAVAIL; one without IPv6
     * at all, EAFNOSUPPORT. That is not this program's failure. */
    fd = ss_udp_bind(address);
    if (fd < 0) {
        if (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT) {
            printf("[udp server] skipped: %s is not available here: %s\n", address,
                   ss_last_error());
            return EXIT_SKIPPED;
        }
        die("ss_udp_bind");
    }
    if (ss_getsockname(fd, (struct sockaddr *)&me, &me_len) < 0)
        die("ss_getsockname");
    if (ss_addr_format((struct sockaddr *)&me, me_len, me_text, sizeof me_text) < 0)
        die("ss_addr_format");
    printf("[udp server] ss_udp_bind(\"%s\") -> fd %d, bound to %s\n", address, fd, me_text);

    /* Bound every wait: ss_recvfrom fails with EAGAIN after tv seconds. */
    if (ss_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        die("ss_setsockopt(SO_RCVTIMEO)");
    if (port_file != NULL)
        write_port_file(port_file, ss_local_port(fd));

    for (;;) {
        char buf[65536]; /* the largest possible UDP datagram fits */
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        char peer_text[80] = ""; /* zeroed, as me_text above */
        ssize_t n, sent;

        /* One call, one whole datagram, and the sender's address. */
        n = ss_recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &peer_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                fprintf(stderr, "[udp server] no datagram for %ld s\n", (long)tv.tv_sec);
            die("ss_recvfrom");
        }
        datagrams++;
        if (ss_addr_format((struct sockaddr *)&peer, peer_len, peer_text, sizeof peer_text) < 0)
            die("ss_addr_format");
        printf("[udp server] ss_recvfrom -> %zd bytes from %s\n", n, peer_text);

        /* The answer goes to the address the datagram came from. */
        sent = ss_sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, peer_len);
        if (sent < 0)
            die("ss_sendto");
        printf("[udp server] ss_sendto(%s) -> %zd bytes echoed\n", peer_text, sent);
        if (n == 0) {
            printf("[udp server] that was an empty datagram: the client is done\n");
            break;
        }
    }

    if (ss_close(fd) < 0)
        die("ss_close");
    printf("[udp server] ss_close(fd %d) -> 0; %ld datagram(s) echoed\n", fd, datagrams);
    return EXIT_SUCCESS;
}
