/*
 * echo_client.c: a TCP echo client written against safesock.
 *
 * The client side of the four steps of a socket program:
 *
 *   1. Create the socket: ss_socket. A client needs no ss_bind; the kernel
 *      gives it an address and a free port when it connects.
 *   2. Open the connection: ss_connect.
 *   3. Read and write as the protocol says: send a line, read the same
 *      bytes back, compare.
 *   4. Close: ss_shutdown to say "no more data", then ss_close.
 *
 * The ss_ functions behave exactly like the libc calls of the same names;
 * when one fails, ss_last_error() says which call, with which arguments,
 * and why. Run with SAFESOCK_TRACE=1 to see every call and the TCP state.
 *
 * Usage: echo_client HOST PORT [COUNT]
 *
 *   HOST   a numeric IPv4 address, such as 127.0.0.1
 *   PORT   the port echo_server printed
 *   COUNT  how many lines to send (default 3)
 *
 * Exits 0 if every line came back byte for byte, 1 if anything failed.
 */

#include <safesock.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* Seconds any one wait (for the echo, or for room to send) may take. */
#define TIMEOUT_S 10

/* The client's socket, so that die() can close it. */
static int sock_fd = -1;

/* Prints why an ss_ call failed and stops the program. Read errno and
 * ss_last_error() before anything else: the next ss_ call replaces the
 * text, and printing may change errno. The socket is closed on the way out:
 * the kernel would close it at exit anyway, but a program that closes all
 * it opens is one that valgrind --track-fds reports clean. */
static void die(const char *what)
{
    int err = errno;

    fprintf(stderr, "[client] %s failed: %s\n", what, ss_last_error());
    if (err == EAGAIN || err == EWOULDBLOCK)
        fprintf(stderr, "[client] %s here means the server did not answer within %d s\n",
                ss_errno_name(err), TIMEOUT_S);
    if (sock_fd >= 0)
        ss_close(sock_fd);
    exit(EXIT_FAILURE);
}

/* Sends all `len` bytes; ss_write, like write(2), may send fewer. (The
 * helper ss_send_all does this loop; it is written out here to show it.) */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = ss_write(fd, buf, len);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("ss_write");
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Reads exactly `len` bytes unless the stream ends first; returns how many
 * were read. TCP keeps the order of the bytes but not the boundaries of the
 * writes: the echo of one line can arrive in several pieces, so one ss_read
 * is not enough. A return of 0 from ss_read means the server closed.
 * (The helper ss_recv_exact does the same.) */
static size_t read_exact(int fd, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = ss_read(fd, buf + got, len - got);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("ss_read");
        }
        if (n == 0)
            break; /* end of stream */
        got += (size_t)n;
    }
    return got;
}

/* Parses a whole number in [min, max], or exits with usage. */
static long number(const char *text, const char *name, long min, long max)
{
    char *end;
    long value;

    errno = 0;
    value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
        fprintf(stderr, "echo_client: %s must be a number from %ld to %ld, not '%s'\n",
                name, min, max, text);
        exit(2);
    }
    return value;
}

int main(int argc, char **argv)
{
    struct sockaddr_in server;
    struct sockaddr_in local;
    socklen_t local_len = sizeof local;
    struct timeval tv = {.tv_sec = TIMEOUT_S, .tv_usec = 0};
    char local_text[INET_ADDRSTRLEN] = "?";
    char line[128];
    char echo[128];
    long port;
    long count = 3;
    long i;
    int fd;

    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s HOST PORT [COUNT]\n", argv[0]);
        return 2;
    }
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) {
        fprintf(stderr, "echo_client: HOST must be a numeric IPv4 address, not '%s'\n",
                argv[1]);
        return 2;
    }
    port = number(argv[2], "PORT", 1, 65535);
    server.sin_port = htons((uint16_t)port);
    if (argc == 4)
        count = number(argv[3], "COUNT", 1, 1000);

    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Step 1: create the socket. Like the server's, it is close-on-exec. */
    fd = ss_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        die("ss_socket");
    sock_fd = fd;
    printf("[client] step 1: ss_socket(AF_INET, SOCK_STREAM, 0) -> fd %d\n", fd);

    /* Bound every wait: if the server stops answering, ss_read fails with
     * EAGAIN after TIMEOUT_S seconds instead of blocking forever. */
    if (ss_setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0)
        die("ss_setsockopt(SO_RCVTIMEO)");
    if (ss_setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
        die("ss_setsockopt(SO_SNDTIMEO)");

    /* Step 2: connect.
     *
     * The kernel sends SYN, the server's kernel answers SYN-ACK, ours sends
     * ACK; ss_connect returns 0 once this three-way handshake is done. The
     * server program does not take part: its kernel completes the handshake
     * and queues the connection until the server calls ss_accept. If nothing
     * listens on the port, the answer is a reset and ss_connect fails with
     * ECONNREFUSED. */
    if (ss_connect(fd, (struct sockaddr *)&server, sizeof server) < 0)
        die("ss_connect");

    /* The socket was not bound, so the kernel chose its local address and
     * port during connect; ss_getsockname shows them. */
    if (ss_getsockname(fd, (struct sockaddr *)&local, &local_len) < 0)
        die("ss_getsockname");
    inet_ntop(AF_INET, &local.sin_addr, local_text, sizeof local_text);
    printf("[client] step 2: ss_connect(fd %d, %s:%ld) -> 0, connected from %s:%u\n", fd,
           argv[1], port, local_text, (unsigned)ntohs(local.sin_port));

    /* Step 3: the echo protocol. Send one line, read back exactly as many
     * bytes, and compare them byte for byte. */
    for (i = 1; i <= count; i++) {
        int len = snprintf(line, sizeof line, "line %ld of %ld: hello through safesock\n", i,
                           count);
        size_t got;

        write_all(fd, line, (size_t)len);
        got = read_exact(fd, echo, (size_t)len);
        if (got != (size_t)len) {
            fprintf(stderr, "[client] the server closed the connection after %zu of %d bytes\n",
                    got, len);
            return EXIT_FAILURE;
        }
        if (memcmp(line, echo, (size_t)len) != 0) {
            fprintf(stderr, "[client] MISMATCH in line %ld:\n  sent: %.*s  got:  %.*s", i, len,
                    line, len, echo);
            return EXIT_FAILURE;
        }
        printf("[client] step 3: sent %d bytes, read the same %d bytes back: \"%.*s\\n\"\n",
               len, len, len - 1, line);
    }

    /* Step 4: close.
     *
     * ss_shutdown(SHUT_WR) sends our FIN now while the socket stays open for
     * reading: the server's ss_read returns 0, it closes its side, and then
     * our ss_read returns 0 too. Reading that 0 proves the server sent
     * nothing beyond the echoes. */
    printf("[client] step 4: ss_shutdown(fd %d, SHUT_WR): no more data, send FIN\n", fd);
    if (ss_shutdown(fd, SHUT_WR) < 0)
        die("ss_shutdown");
    if (read_exact(fd, echo, 1) != 0) {
        fprintf(stderr, "[client] the server sent bytes nobody asked for\n");
        return EXIT_FAILURE;
    }
    printf("[client] step 4: ss_read(fd %d) -> 0: the server closed its side too\n", fd);

    /* ss_close releases the descriptor. It is the last one for this
     * connection, so the kernel finishes the TCP close. Closing the same
     * number again would be refused with EBADF instead of closing some
     * other file that reused the number. */
    if (ss_close(fd) < 0)
        die("ss_close");
    printf("[client] step 4: ss_close(fd %d) -> 0; %ld line(s) echoed correctly\n", fd, count);
    return EXIT_SUCCESS;
}
