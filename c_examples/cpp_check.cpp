// cpp_check.cpp: safesock from C++.
//
// <safesock.h> is a C header with `extern "C"` guards, so a C++ program
// includes it as it is and links the same library. This translation unit is
// compiled with `g++ -std=c++17 -Wall -Wextra -Werror -pedantic`: the header
// must compile cleanly there too. It then makes a connected pair of AF_UNIX
// sockets, sends a line through it, reads it back, provokes one error to read
// ss_last_error(), and checks the header's macros and the library agree.
//
// Exits 0 if all of that worked.

#include <safesock.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int failures = 0;

void expect(bool ok, const char *claim)
{
    if (!ok) {
        std::printf("  UNEXPECTED: %s did not hold\n", claim);
        failures++;
    }
}

// Closes a descriptor with ss_close when it goes out of scope: RAII, the
// usual C++ way to make sure every descriptor is closed exactly once.
class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd()
    {
        if (fd_ >= 0)
            ss_close(fd_);
    }
    Fd(const Fd &) = delete;
    Fd &operator=(const Fd &) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

} // namespace

int main()
{
    std::printf("cpp_check: safesock %s from C++ (header for %d.%d.%d)\n", ss_version(),
                SS_VERSION_MAJOR, SS_VERSION_MINOR, SS_VERSION_PATCH);
    const std::string header_version = std::to_string(SS_VERSION_MAJOR) + "." +
                                       std::to_string(SS_VERSION_MINOR) + "." +
                                       std::to_string(SS_VERSION_PATCH);
    expect(header_version == ss_version(), "the header's version macros match ss_version()");

    int sv[2];
    if (ss_socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
        std::fprintf(stderr, "ss_socketpair failed: %s\n", ss_last_error());
        return EXIT_FAILURE;
    }
    Fd a(sv[0]), b(sv[1]);

    const std::string line = "hello from C++\n";
    ssize_t n = ss_write(a.get(), line.data(), line.size());
    std::printf("  ss_write(fd %d, %zu bytes) -> %zd\n", a.get(), line.size(), n);
    expect(n == static_cast<ssize_t>(line.size()), "ss_write wrote the line");

    char buf[64] = {};
    n = ss_recv_exact(b.get(), buf, line.size());
    std::printf("  ss_recv_exact(fd %d) -> %zd bytes \"%.*s\"\n", b.get(), n,
                n > 0 ? static_cast<int>(n) - 1 : 0, buf);
    expect(n == static_cast<ssize_t>(line.size()) && line == std::string(buf, line.size()),
           "ss_recv_exact read the same line");

    // An error: a read from a descriptor number that is not open.
    n = ss_read(-1, buf, sizeof buf);
    const int err = errno;
    const std::string message = ss_last_error();
    std::printf("  ss_read(-1) -> %zd (%s)\n  ss_last_error(): %s\n", n, ss_errno_name(err),
                message.c_str());
    expect(n == -1 && err == EBADF, "ss_read(-1) fails with EBADF");
    expect(message.find("ss_read") != std::string::npos &&
               message.find("EBADF") != std::string::npos,
           "ss_last_error() names the call and the errno");

    ss_clear_error();
    expect(std::strcmp(ss_last_error(), "") == 0, "ss_clear_error() empties the message");
    expect(std::strcmp(ss_tcp_state_name(SS_TCP_TIME_WAIT), "TIME_WAIT") == 0,
           "the SS_TCP_* constants match ss_tcp_state_name");

    if (failures != 0) {
        std::printf("cpp_check: FAILED: %d check(s)\n", failures);
        return EXIT_FAILURE;
    }
    std::printf("cpp_check: OK: the header compiles as C++17 and the calls work\n");
    return EXIT_SUCCESS;
}
