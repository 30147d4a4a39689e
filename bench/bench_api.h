/*
 * bench_api.h: one source, three programs.
 *
 * Every socket call the benchmark makes is written API(name)(...). The
 * Makefile compiles the same sources three times:
 *
 *   build/bench_libc   API(socket) is socket      (plain libc)
 *   build/bench_ss     API(socket) is ss_socket   (-DUSE_SS, linked with libsafesock)
 *   build/bench_noise  API(socket) is socket      (a second libc program)
 *
 * bench_noise is the same code as bench_libc in a different binary. The
 * driver times it in the "safesock" slot, so its ratio against bench_libc
 * is the noise band of the method itself: what a ratio looks like when
 * nothing differs.
 *
 * Calls that safesock does not mirror (pipe, epoll, fcntl, ...) and the
 * scaffolding of the instruction-count loops use plain libc in all three.
 */

#ifndef BENCH_API_H
#define BENCH_API_H

#ifdef USE_SS
#include <safesock.h>
#define API(name) ss_##name
#else
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#define API(name) name
#endif

/* The build's name, reported by --build; set by the Makefile. */
#ifndef BENCH_BUILD
#define BENCH_BUILD "unnamed"
#endif

#endif /* BENCH_API_H */
