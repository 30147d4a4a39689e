/*
 * fd_passing.c: sending an open descriptor to another process (SCM_RIGHTS).
 *
 * A descriptor number means something only inside its own process: "fd 5"
 * in one process and "fd 5" in another are unrelated. An AF_UNIX socket can
 * carry the open file ITSELF: the sender puts the number in a control
 * message of type SCM_RIGHTS (ss_sendmsg), and the kernel installs a new
 * descriptor for the same open file in the receiver (ss_recvmsg), under
 * whatever number is free there. Both then share one open file, as after
 * dup or fork.
 *
 * Here the parent forks first, so that the child inherits nothing of what
 * follows. The parent then makes a pipe and sends the pipe's WRITE end to
 * the child over a socketpair. The child writes a line through the
 * descriptor it received; the parent reads that line from the pipe's READ
 * end, which it kept. The line really went from one process to the other
 * through a descriptor that crossed the socket.
 *
 * The safety default: safesock's ss_recvmsg asks for MSG_CMSG_CLOEXEC, so a
 * received descriptor has FD_CLOEXEC set and does not leak into a program
 * the receiver might exec. The child checks that flag.
 *
 * Exits 0 only if the line arrived intact and the flag was set.
 */

#include <safesock.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINE "written by the child through the descriptor it received\n"

static void die(const char *who, const char *what)
{
    fprintf(stderr, "[%s] %s failed: %s\n", who, what, ss_last_error());
    exit(EXIT_FAILURE);
}

/* Sends descriptor `fd` over the AF_UNIX socket `sock`. A stream socket must
 * carry at least one byte of ordinary data with the control message; here
 * it is a short text naming the sender's number, for the printout. */
static void send_fd(int sock, int fd)
{
    char text[32];
    struct iovec iov;
    struct msghdr msg;
    /* The control buffer: room for one header and one int, aligned for a
     * struct cmsghdr (hence the union). */
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct cmsghdr *cmsg;
    int len = snprintf(text, sizeof text, "parent's fd %d", fd);

    iov.iov_base = text;
    iov.iov_len = (size_t)len + 1; /* with the NUL */
    memset(&msg, 0, sizeof msg);
    memset(&control, 0, sizeof control);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &fd, sizeof fd);

    if (ss_sendmsg(sock, &msg, 0) < 0)
        die("parent", "ss_sendmsg");
}

/* Receives one descriptor from `sock` and returns it; the data that came
 * with it goes to `text`. */
static int recv_fd(int sock, char *text, size_t len)
{
    struct iovec iov = {.iov_base = text, .iov_len = len};
    struct msghdr msg;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct cmsghdr *cmsg;
    ssize_t n;
    int fd = -1;

    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    n = ss_recvmsg(sock, &msg, 0);
    if (n < 0)
        die("child", "ss_recvmsg");
    if (n == 0 || text[n - 1] != '\0') {
        fprintf(stderr, "[child] unexpected data from the parent\n");
        exit(EXIT_FAILURE);
    }
    /* MSG_CTRUNC: the control buffer was too small and descriptors were
     * dropped (and closed) by the kernel. */
    if (msg.msg_flags & MSG_CTRUNC) {
        fprintf(stderr, "[child] the control data was cut (MSG_CTRUNC)\n");
        exit(EXIT_FAILURE);
    }
    for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS &&
            cmsg->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&fd, CMSG_DATA(cmsg), sizeof fd);
    }
    if (fd < 0) {
        fprintf(stderr, "[child] no descriptor came with the message\n");
        exit(EXIT_FAILURE);
    }
    return fd;
}

/* The child: receives the pipe's write end and writes a line through it. */
static int child(int sock)
{
    char text[64];
    struct stat st;
    int fd, flags, ok;

    alarm(10);
    /* The number the kernel picks is the lowest free one in the child, often
     * one the child just closed with ss_close. That is fine: ss_recvmsg
     * handed it out, so ss_close will close it again when asked. */
    fd = recv_fd(sock, text, sizeof text);
    flags = fcntl(fd, F_GETFD);
    ok = fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
    printf("[child ] ss_recvmsg -> fd %d for the %s: a %s, FD_CLOEXEC %s\n", fd, text,
           ok ? "pipe" : "NOT a pipe", (flags >= 0 && (flags & FD_CLOEXEC)) ? "set" : "NOT set");
    if (!ok || flags < 0 || !(flags & FD_CLOEXEC))
        return EXIT_FAILURE;

    printf("[child ] ss_send_all(fd %d, \"%.*s\")\n", fd, (int)strlen(LINE) - 1, LINE);
    if (ss_send_all(fd, LINE, strlen(LINE)) < 0)
        die("child", "ss_send_all");
    /* Closing the received copy: with the parent's copy already closed,
     * this was the last write end, so the parent's read sees end of file. */
    if (ss_close(fd) < 0 || ss_close(sock) < 0)
        die("child", "ss_close");
    return EXIT_SUCCESS;
}

int main(void)
{
    char buf[256];
    size_t got = 0;
    int sv[2], pipe_fds[2], status;
    ssize_t n;
    pid_t pid;

    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(20);
    printf("fd_passing: an open descriptor sent to another process (safesock %s)\n",
           ss_version());

    /* A connected pair of AF_UNIX sockets: one end for each process. */
    if (ss_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        die("parent", "ss_socketpair");
    pid = fork();
    if (pid < 0) {
        perror("fork");
        return EXIT_FAILURE;
    }
    if (pid == 0) {
        if (ss_close(sv[0]) < 0)
            die("child", "ss_close");
        exit(child(sv[1]));
    }
    if (ss_close(sv[1]) < 0)
        die("parent", "ss_close");

    /* Made after the fork: the child has no copy of this pipe. */
    if (pipe(pipe_fds) < 0) {
        perror("pipe");
        return EXIT_FAILURE;
    }
    printf("[parent] pipe: read end fd %d, write end fd %d; sending fd %d to child %ld\n",
           pipe_fds[0], pipe_fds[1], pipe_fds[1], (long)pid);
    send_fd(sv[0], pipe_fds[1]);

    /* The parent no longer needs the write end: the child has its own copy
     * now. (pipe is a plain libc call, so plain close.) */
    close(pipe_fds[1]);

    /* Everything the child writes, until it closes its copy. */
    while ((n = read(pipe_fds[0], buf + got, sizeof buf - 1 - got)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("read");
            return EXIT_FAILURE;
        }
        got += (size_t)n;
        if (got == sizeof buf - 1)
            break;
    }
    buf[got] = '\0';
    printf("[parent] read(fd %d) -> \"%.*s\", then end of file\n", pipe_fds[0],
           got > 0 ? (int)got - 1 : 0, buf);
    close(pipe_fds[0]);
    if (ss_close(sv[0]) < 0)
        die("parent", "ss_close");

    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            perror("waitpid");
            return EXIT_FAILURE;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        printf("fd_passing: FAILED: the child failed (status %d)\n", status);
        return EXIT_FAILURE;
    }
    if (strcmp(buf, LINE) != 0) {
        printf("fd_passing: FAILED: the pipe carried something else\n");
        return EXIT_FAILURE;
    }
    printf("fd_passing: OK: the child wrote through the received descriptor; it had "
           "FD_CLOEXEC\n");
    return EXIT_SUCCESS;
}
