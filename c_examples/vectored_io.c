/*
 * vectored_io.c: scatter/gather I/O and a length-prefixed message protocol.
 *
 * ss_writev and ss_sendmsg "gather": they send several buffers, in order, in
 * one call, as if they were one. ss_readv and ss_recvmsg "scatter": they fill
 * several buffers in order, the next one when the previous one is full. A
 * protocol header and its payload can so be sent without copying them into
 * one buffer first, and without two calls (which could also make two small
 * packets).
 *
 *   part 1  ss_writev of 3 buffers, ss_readv into 2 buffers of other sizes,
 *           over TCP: a stream has no boundaries, the bytes just fill the
 *           buffers in order
 *   part 2  ss_sendmsg/ss_recvmsg on a datagram socketpair: a message keeps
 *           its boundary, and one too big for the buffers is cut
 *           (MSG_TRUNC)
 *   part 3  a length-prefixed protocol over TCP: each message is a 4-byte
 *           big-endian length followed by that many bytes, gathered in one
 *           ss_writev; the reader takes the header, then exactly the
 *           payload, with ss_recv_exact
 *
 * Like read and write, readv and writev may move fewer bytes than asked;
 * the loops below handle that. Every byte received is compared with what
 * was sent; the program exits 0 only if all matched.
 */

#include <safesock.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static int failures;

static void die(const char *what)
{
    fprintf(stderr, "[vectored_io] %s failed: %s\n", what, ss_last_error());
    exit(EXIT_FAILURE);
}

static void expect(int ok, const char *claim)
{
    if (!ok) {
        printf("  UNEXPECTED: %s did not hold\n", claim);
        failures++;
    }
}

/* Moves the array of buffers past `n` bytes that were transferred: drops
 * the buffers that were used up and shortens the first one left. */
static void advance(struct iovec **iov, int *count, size_t n)
{
    while (*count > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        (*count)--;
    }
    if (*count > 0) {
        (*iov)->iov_base = (char *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
}

/* Writes every byte of every buffer, calling ss_writev again after a short
 * write. Changes the iovec array (pass a copy if it is needed again). */
static void writev_all(int fd, struct iovec *iov, int count)
{
    while (count > 0) {
        ssize_t n = ss_writev(fd, iov, count);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("ss_writev");
        }
        advance(&iov, &count, (size_t)n);
    }
}

/* Fills every buffer, calling ss_readv again after a short read. Returns
 * the bytes read: less than asked only if the stream ended. */
static size_t readv_all(int fd, struct iovec *iov, int count)
{
    size_t total = 0;

    while (count > 0) {
        ssize_t n = ss_readv(fd, iov, count);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("ss_readv");
        }
        if (n == 0)
            break;
        printf("    ss_readv(fd %d, %d buffers) -> %zd bytes\n", fd, count, n);
        total += (size_t)n;
        advance(&iov, &count, (size_t)n);
    }
    return total;
}

/* A connected TCP pair over 127.0.0.1. Returns the listening descriptor. */
static int tcp_pair(int *client, int *server)
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

/* Part 1: gather three buffers, scatter into two of other sizes. */
static void stream_scatter_gather(int client, int server)
{
    char method[] = "GET ", path[] = "/index.html", version[] = " HTTP/1.0\r\n";
    char first[8], second[32];
    struct iovec out[3] = {
        {.iov_base = method, .iov_len = strlen(method)},
        {.iov_base = path, .iov_len = strlen(path)},
        {.iov_base = version, .iov_len = strlen(version)},
    };
    size_t total = out[0].iov_len + out[1].iov_len + out[2].iov_len;
    struct iovec in[2] = {
        {.iov_base = first, .iov_len = sizeof first},
        {.iov_base = second, .iov_len = total - sizeof first},
    };
    char joined[64];
    size_t got;

    printf("part 1: ss_writev gathers 3 buffers, ss_readv scatters into 2 (TCP)\n");
    printf("  [client] ss_writev: \"%s\" + \"%s\" + \" HTTP/1.0\\r\\n\" = %zu bytes, one call\n",
           method, path, total);
    writev_all(client, out, 3);

    got = readv_all(server, in, 2);
    printf("  [server] buffer 1 (%zu bytes): \"%.*s\"\n", sizeof first, (int)sizeof first,
           first);
    printf("  [server] buffer 2 (%zu bytes): \"%.*s\\r\\n\"\n", total - sizeof first,
           (int)(total - sizeof first - 2), second);
    printf("  the buffers split the bytes where they are full, not where the writes were\n");
    snprintf(joined, sizeof joined, "%s%s%s", method, path, version);
    expect(got == total, "all bytes arrived");
    expect(memcmp(first, joined, sizeof first) == 0 &&
               memcmp(second, joined + sizeof first, total - sizeof first) == 0,
           "the scattered bytes are the gathered bytes in order");
}

/* Part 2: messages keep their boundaries on a datagram socket. */
static void datagram_messages(void)
{
    char head[] = "msg:", body[] = "one datagram from two buffers";
    char big[100], a[10], b[20];
    struct iovec out[2] = {
        {.iov_base = head, .iov_len = strlen(head)},
        {.iov_base = body, .iov_len = strlen(body)},
    };
    struct iovec in[2];
    struct msghdr msg;
    int sv[2];
    ssize_t n;

    printf("part 2: ss_sendmsg/ss_recvmsg on an AF_UNIX datagram socketpair\n");
    if (ss_socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0)
        die("ss_socketpair");

    memset(&msg, 0, sizeof msg);
    msg.msg_iov = out;
    msg.msg_iovlen = 2;
    n = ss_sendmsg(sv[0], &msg, 0);
    if (n < 0)
        die("ss_sendmsg");
    printf("  ss_sendmsg(fd %d, 2 buffers) -> %zd: one datagram\n", sv[0], n);

    /* Two receive buffers, 10 + 20 = 30 bytes of room for a 33-byte message:
     * the buffers are filled in order and the rest of the datagram is
     * discarded; MSG_TRUNC in msg_flags says so. A datagram is read whole
     * or cut, never split over two reads. */
    in[0].iov_base = a;
    in[0].iov_len = sizeof a;
    in[1].iov_base = b;
    in[1].iov_len = sizeof b;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = in;
    msg.msg_iovlen = 2;
    n = ss_recvmsg(sv[1], &msg, 0);
    if (n < 0)
        die("ss_recvmsg");
    printf("  ss_recvmsg(fd %d, 10 + 20 bytes of room) -> %zd, \"%.*s\" + \"%.*s\"%s\n", sv[1],
           n, (int)sizeof a, a, (int)sizeof b, b,
           (msg.msg_flags & MSG_TRUNC) ? ", MSG_TRUNC: the rest was discarded" : "");
    expect(n == 30 && (msg.msg_flags & MSG_TRUNC), "a datagram too big for the buffers is cut");
    expect(memcmp(a, "msg:one da", 10) == 0 && memcmp(b, "tagram from two buff", 20) == 0,
           "the buffers hold the start of the datagram");

    /* The same message with room enough: no MSG_TRUNC, exact length. */
    n = ss_sendmsg(sv[0], &(struct msghdr){.msg_iov = out, .msg_iovlen = 2}, 0);
    if (n < 0)
        die("ss_sendmsg");
    in[0].iov_base = big;
    in[0].iov_len = sizeof big;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = in;
    msg.msg_iovlen = 1;
    n = ss_recvmsg(sv[1], &msg, 0);
    if (n < 0)
        die("ss_recvmsg");
    printf("  ss_recvmsg(fd %d, 100 bytes of room) -> %zd, \"%.*s\"%s\n", sv[1], n, (int)n, big,
           (msg.msg_flags & MSG_TRUNC) ? " MSG_TRUNC" : "");
    expect(n == (ssize_t)(strlen(head) + strlen(body)) && !(msg.msg_flags & MSG_TRUNC) &&
               memcmp(big, "msg:one datagram from two buffers", (size_t)n) == 0,
           "a datagram that fits arrives whole");

    if (ss_close(sv[0]) < 0 || ss_close(sv[1]) < 0)
        die("ss_close");
}

/* Part 3, sender: one message = 4-byte big-endian length + payload, both
 * gathered into one ss_writev. */
static void send_message(int fd, const char *payload, uint32_t len)
{
    uint32_t header = htonl(len); /* network byte order: big-endian */
    struct iovec iov[2] = {
        {.iov_base = &header, .iov_len = sizeof header},
        {.iov_base = (void *)payload, .iov_len = len},
    };

    writev_all(fd, iov, len > 0 ? 2 : 1);
}

/* Part 3, receiver: reads one message into `buf` (room for `room` bytes).
 * Returns its length, or -1 at a clean end of stream before a header. */
static long recv_message(int fd, char *buf, size_t room)
{
    uint32_t header;
    ssize_t n = ss_recv_exact(fd, &header, sizeof header);
    uint32_t len;

    if (n < 0)
        die("ss_recv_exact(header)");
    if (n == 0)
        return -1;
    if (n != (ssize_t)sizeof header) {
        printf("  UNEXPECTED: the stream ended inside a header\n");
        failures++;
        return -1;
    }
    len = ntohl(header);
    if (len > room) {
        /* Never trust a length from the wire with a buffer's size. */
        printf("  UNEXPECTED: message of %u bytes is larger than the %zu-byte buffer\n", len,
               room);
        failures++;
        return -1;
    }
    n = ss_recv_exact(fd, buf, len);
    if (n < 0)
        die("ss_recv_exact(payload)");
    if (n != (ssize_t)len) {
        printf("  UNEXPECTED: the stream ended inside a payload\n");
        failures++;
        return -1;
    }
    return (long)len;
}

static void length_prefixed(int client, int server)
{
    static char big[3000];
    static char buf[4096];
    const char *messages[4];
    uint32_t lengths[4];
    size_t total = 0, i;
    ssize_t waiting;
    long len;

    printf("part 3: a length-prefixed protocol over TCP\n");
    for (i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    messages[0] = "hello";
    messages[1] = ""; /* an empty message is a valid message */
    messages[2] = big;
    messages[3] = "bye";
    for (i = 0; i < 4; i++) {
        lengths[i] = i == 2 ? (uint32_t)sizeof big : (uint32_t)strlen(messages[i]);
        send_message(client, messages[i], lengths[i]);
        printf("  [client] message %zu: ss_writev([length %u][%u bytes]), one call\n", i + 1,
               lengths[i], lengths[i]);
        total += 4 + lengths[i];
    }
    if (ss_shutdown(client, SHUT_WR) < 0)
        die("ss_shutdown");

    /* A look at the stream without taking anything (MSG_PEEK): the messages
     * have run together. Only the length prefixes can split them again. */
    waiting = ss_recv(server, buf, sizeof buf, MSG_PEEK);
    if (waiting < 0)
        die("ss_recv(MSG_PEEK)");
    printf("  [server] ss_recv(MSG_PEEK) -> %zd bytes in one piece (%zu were sent in %d "
           "writes): a stream keeps no message boundaries\n",
           waiting, total, 4);

    for (i = 0; (len = recv_message(server, buf, sizeof buf)) >= 0; i++) {
        int same = i < 4 && (uint32_t)len == lengths[i] &&
                   memcmp(buf, messages[i], (size_t)len) == 0;

        printf("  [server] message %zu: %ld bytes \"%.*s%s\" %s\n", i + 1, len,
               len > 20 ? 20 : (int)len, buf, len > 20 ? "..." : "",
               same ? "(matches)" : "(DIFFERS)");
        expect(same, "the message arrives as sent");
    }
    printf("  [server] end of stream after %zu messages\n", i);
    expect(i == 4, "four messages arrived");
}

int main(void)
{
    int listen_fd, client, server;

    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(20);
    printf("vectored_io: scatter/gather and length-prefixed messages (safesock %s)\n",
           ss_version());

    listen_fd = tcp_pair(&client, &server);
    stream_scatter_gather(client, server);
    datagram_messages();
    length_prefixed(client, server);
    if (ss_close(client) < 0 || ss_close(server) < 0 || ss_close(listen_fd) < 0)
        die("ss_close");

    if (failures != 0) {
        printf("vectored_io: FAILED: %d check(s) did not hold\n", failures);
        return EXIT_FAILURE;
    }
    printf("vectored_io: OK: every gathered byte was scattered back in order\n");
    return EXIT_SUCCESS;
}
