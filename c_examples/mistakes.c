/*
 * mistakes.c: the errors every socket learner makes, and what they say.
 *
 * Each mistake below is made on purpose. The call fails exactly as the libc
 * call would (-1 and the same errno), and ss_last_error() then says in one
 * line which call failed, with which arguments, why, and often what to do.
 * The program prints that line for each mistake and checks the errno:
 *
 *   1. connect to a port where nothing listens         ECONNREFUSED
 *   2. bind to a port another socket holds              EADDRINUSE
 *   3. accept on a socket that never called listen      EINVAL
 *   4. read from the listening descriptor               ENOTCONN
 *   5. write after the peer has gone                    EPIPE, no SIGPIPE
 *   6. close the same descriptor twice                  EBADF
 *      ... and after the number was reused by open()    EBADF, file kept
 *   7. pass the wrong address length                    EINVAL
 *
 * Run it with SAFESOCK_TRACE=1 to see one trace line per ss_ call on
 * standard error, failures included:
 *
 *   safesock: ss_accept(fd 3) = -1: Invalid argument (EINVAL) [CLOSE]
 *
 * Exits 0 only if every mistake failed with the expected errno (and the
 * program was not killed by SIGPIPE on the way).
 */

#include <safesock.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures;

static void die(const char *what)
{
    fprintf(stderr, "[mistakes] %s failed: %s\n", what, ss_last_error());
    exit(EXIT_FAILURE);
}

/* Prints the outcome of a call that should have failed with `want`, and
 * the line ss_last_error() has for it. Read errno and the message before
 * anything else: the next ss_ call replaces them. */
static void report(const char *call, long result, int want)
{
    int err = errno;

    printf("   %s -> %ld", call, result);
    if (result < 0)
        printf(" (%s)\n   ss_last_error(): %s\n", ss_errno_name(err), ss_last_error());
    else
        printf("\n");
    if (result >= 0 || err != want) {
        printf("   UNEXPECTED: wanted -1 with %s\n", ss_errno_name(want));
        failures++;
    }
}

/* A socket bound to 127.0.0.1 and a port the kernel picks; its address
 * goes to *addr. */
static int bound_socket(struct sockaddr_in *addr)
{
    socklen_t len = sizeof *addr;
    int fd = ss_socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        die("ss_socket");
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr->sin_port = htons(0);
    if (ss_bind(fd, (struct sockaddr *)addr, sizeof *addr) < 0)
        die("ss_bind");
    if (ss_getsockname(fd, (struct sockaddr *)addr, &len) < 0)
        die("ss_getsockname");
    return fd;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* 1. Nothing listens: the other side answers SYN with RST. The port is
 * held by a socket that is bound but not listening, so that no other
 * program can start listening there in the meantime. */
static void connect_refused(void)
{
    struct sockaddr_in addr;
    int holder = bound_socket(&addr);
    int fd = ss_socket(AF_INET, SOCK_STREAM, 0);

    printf("1. connect to a port where nothing listens (the server is not running)\n");
    if (fd < 0)
        die("ss_socket");
    report("ss_connect", ss_connect(fd, (struct sockaddr *)&addr, sizeof addr), ECONNREFUSED);
    if (ss_close(fd) < 0 || ss_close(holder) < 0)
        die("ss_close");
}

/* 2. Two sockets cannot both bind one address and port. SO_REUSEADDR
 * (which ss_tcp_listen sets) does not help against a LISTENING socket: it
 * only lets a server reuse a port whose old connections are in TIME_WAIT. */
static void bind_in_use(void)
{
    struct sockaddr_in addr;
    char text[64];
    int listener = bound_socket(&addr);
    int fd = ss_socket(AF_INET, SOCK_STREAM, 0);
    int second;

    printf("2. bind to a port another socket holds (a second server on the same port)\n");
    if (fd < 0)
        die("ss_socket");
    if (ss_listen(listener, 4) < 0)
        die("ss_listen");
    report("ss_bind", ss_bind(fd, (struct sockaddr *)&addr, sizeof addr), EADDRINUSE);
    snprintf(text, sizeof text, "127.0.0.1:%d", ss_local_port(listener));
    second = ss_tcp_listen(text, 4);
    report("ss_tcp_listen (with SO_REUSEADDR)", second, EADDRINUSE);
    if (second >= 0)
        ss_close(second);
    if (ss_close(fd) < 0 || ss_close(listener) < 0)
        die("ss_close");
}

/* 3 and 4. accept needs a listening socket; and data flows on the
 * descriptor accept returns, never on the listening one. */
static void accept_and_listener_mixups(void)
{
    struct sockaddr_in addr;
    char c;
    int fd = bound_socket(&addr);

    printf("3. accept on a socket that never called listen\n");
    report("ss_accept", ss_accept(fd, NULL, NULL), EINVAL);

    printf("4. read from the listening descriptor instead of the accepted one\n");
    if (ss_listen(fd, 4) < 0)
        die("ss_listen");
    report("ss_read(listener)", (long)ss_read(fd, &c, 1), ENOTCONN);
    if (ss_close(fd) < 0)
        die("ss_close");
}

/* 5. The peer closed; we keep writing. The first write is still accepted
 * by our kernel (it cannot know yet); the peer's kernel answers it with a
 * reset, and from then on writing fails with EPIPE. Plain write/send would
 * also raise SIGPIPE, whose default action kills the process silently;
 * safesock never raises it. SIGPIPE is left at its default here to prove
 * that: if it were raised, this program would die and fail the test. */
static void write_after_peer_left(void)
{
    char text[64];
    int listener = ss_tcp_listen("127.0.0.1:0", 4);
    int client, server, i;
    ssize_t n = 0;

    printf("5. write after the peer has closed (SIGPIPE left at its default action)\n");
    if (listener < 0)
        die("ss_tcp_listen");
    snprintf(text, sizeof text, "127.0.0.1:%d", ss_local_port(listener));
    client = ss_tcp_connect(text, 2000);
    if (client < 0)
        die("ss_tcp_connect");
    server = ss_accept(listener, NULL, NULL);
    if (server < 0 || ss_close(server) < 0 || ss_close(listener) < 0)
        die("ss_accept/ss_close");

    /* Bounded: the reset comes back at once on loopback. */
    for (i = 1; i <= 20; i++) {
        n = ss_write(client, "hello?", 6);
        if (n < 0)
            break;
        printf("   ss_write #%d -> %zd: accepted locally; the peer's kernel answers with a "
               "reset\n",
               i, n);
        sleep_ms(10);
    }
    report("ss_write", (long)n, EPIPE);
    report("ss_send", (long)ss_send(client, "again", 5, 0), EPIPE);
    printf("   still alive: no SIGPIPE was raised\n");
    if (ss_close(client) < 0)
        die("ss_close");
}

/* 6. Closing twice. With plain close, the second close of a number that
 * was reused in between closes SOMEONE ELSE's file: a classic bug in
 * threaded programs. ss_close refuses a number it already closed. */
static void double_close(void)
{
    int fd = ss_socket(AF_INET, SOCK_STREAM, 0);
    int other;

    printf("6. close the same descriptor twice\n");
    if (fd < 0)
        die("ss_socket");
    if (ss_close(fd) < 0)
        die("ss_close");
    printf("   ss_close(fd %d) -> 0\n", fd);
    report("ss_close (again)", ss_close(fd), EBADF);

    /* The dangerous case: the number is handed out again by open(), which
     * always returns the lowest free number, and a stale ss_close follows. */
    fd = ss_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || ss_close(fd) < 0)
        die("ss_socket/ss_close");
    other = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (other < 0) {
        perror("open /dev/null");
        exit(EXIT_FAILURE);
    }
    printf("   ss_close(fd %d) -> 0; open(\"/dev/null\") -> fd %d, the same number\n", fd,
           other);
    if (other != fd) {
        printf("   UNEXPECTED: open did not reuse the number\n");
        failures++;
    }
    report("ss_close (stale)", ss_close(fd), EBADF);
    printf("   fd %d is still open on /dev/null: fcntl(F_GETFD) -> %d\n", other,
           fcntl(other, F_GETFD));
    if (fcntl(other, F_GETFD) < 0) {
        printf("   UNEXPECTED: the stale ss_close closed /dev/null\n");
        failures++;
    }
    /* As the message says: a number from open() is closed with close(). */
    if (close(other) < 0) {
        perror("close");
        exit(EXIT_FAILURE);
    }
    printf("   close(fd %d) -> 0 (plain close, for what open returned)\n", other);
}

/* 7. The address length must be the size of the address structure. The
 * classic slip is sizeof of the POINTER (8 bytes) instead of the struct;
 * another is an IPv4 address given to an IPv6 socket. */
static void wrong_length(void)
{
    struct sockaddr_in addr;
    struct sockaddr_in *p = &addr;
    int fd = ss_socket(AF_INET, SOCK_STREAM, 0);
    int fd6 = ss_socket(AF_INET6, SOCK_STREAM, 0);

    printf("7. pass the wrong address length\n");
    if (fd < 0)
        die("ss_socket");
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    report("ss_bind(..., sizeof p) [the pointer's size]",
           ss_bind(fd, (struct sockaddr *)p, sizeof p), EINVAL);
    if (fd6 >= 0) {
        report("ss_bind(IPv6 socket, IPv4 address, sizeof addr)",
               ss_bind(fd6, (struct sockaddr *)&addr, sizeof addr), EINVAL);
        if (ss_close(fd6) < 0)
            die("ss_close");
    } else {
        printf("   (no IPv6 here: the IPv6 case is skipped)\n");
    }
    if (ss_close(fd) < 0)
        die("ss_close");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_DFL); /* the default: a SIGPIPE would kill us */
    alarm(20);
    printf("mistakes: common socket errors and how safesock explains them (safesock %s)\n",
           ss_version());

    connect_refused();
    bind_in_use();
    accept_and_listener_mixups();
    write_after_peer_left();
    double_close();
    wrong_length();

    if (failures != 0) {
        printf("mistakes: FAILED: %d mistake(s) did not fail as expected\n", failures);
        return EXIT_FAILURE;
    }
    printf("mistakes: OK: every mistake failed with the expected errno and explained "
           "itself\n");
    return EXIT_SUCCESS;
}
