#!/bin/sh
# check_mistakes_trace.sh: runs mistakes with SAFESOCK_TRACE and checks the trace.
#
# With SAFESOCK_TRACE=1 safesock writes one line per ss_ call to standard
# error, failed calls included, with the errno and, for TCP sockets, the
# state after the call:
#
#   safesock: ss_connect(fd 4, 127.0.0.1:40000) = -1: Connection refused (ECONNREFUSED) [CLOSE]
#   safesock: ss_accept(fd 3) = -1: Invalid argument (EINVAL) [CLOSE]
#   safesock: ss_close(fd 3) = -1: Bad file descriptor (EBADF)
#
# This check wants those lines for mistakes 1, 2, 3, 5 and 6, and the
# program's own output unchanged (it still passes with tracing on). Then it
# runs it again with SAFESOCK_TRACE set to a file path: the same lines must
# be appended to that file and none written to standard error.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${EXAMPLES_BUILD:-$here/build}
wrapper=${EXAMPLES_WRAPPER:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/safesock-mistakes.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "check_mistakes_trace: $*" >&2
    exit 1
}

[ -x "$build/mistakes" ] || fail "$build/mistakes is missing; run 'make' first"

# want FILE PATTERN WHAT: FILE has a line matching the extended regex PATTERN.
want() {
    grep -Eq "$2" "$1" || fail "no trace line for $3 (pattern: $2)"
}

# check_lines FILE: the trace lines every run must have.
check_lines() {
    want "$1" '^safesock: ss_connect\(fd [0-9]+, 127\.0\.0\.1:[0-9]+\) = -1: .*\(ECONNREFUSED\)' \
        "the refused connect"
    want "$1" '^safesock: ss_bind\(fd [0-9]+, 127\.0\.0\.1:[0-9]+\) = -1: .*\(EADDRINUSE\)' \
        "the bind to a port in use"
    want "$1" '^safesock: ss_accept\(fd [0-9]+\) = -1: .*\(EINVAL\)' "the accept without listen"
    want "$1" '^safesock: ss_write\(fd [0-9]+, 6 bytes\) = -1: .*\(EPIPE\)' \
        "the write after the peer left"
    want "$1" '^safesock: ss_close\(fd [0-9]+\) = -1: .*\(EBADF\)' "the double close"
    want "$1" '^safesock: ss_accept\(fd [0-9]+\) = [0-9]+ \[ESTABLISHED\]' "a successful accept"
}

status=0
SAFESOCK_TRACE=1 ${wrapper:+"$wrapper"} "$build/mistakes" >"$tmp/out" 2>"$tmp/err" || status=$?
cat "$tmp/out"
[ "$status" -eq 0 ] || {
    cat "$tmp/err"
    fail "mistakes failed with SAFESOCK_TRACE=1 (status $status)"
}
echo "check_mistakes_trace: some of the trace (standard error):"
grep -E '= -1: ' "$tmp/err" | head -n 8
check_lines "$tmp/err"

# The same, traced to a file.
status=0
SAFESOCK_TRACE="$tmp/trace.log" ${wrapper:+"$wrapper"} "$build/mistakes" >"$tmp/out2" \
    2>"$tmp/err2" || status=$?
[ "$status" -eq 0 ] || {
    cat "$tmp/out2" "$tmp/err2"
    fail "mistakes failed with SAFESOCK_TRACE=<file> (status $status)"
}
[ -s "$tmp/trace.log" ] || fail "SAFESOCK_TRACE=<file> wrote nothing to the file"
! grep -q '^safesock: ' "$tmp/err2" || fail "SAFESOCK_TRACE=<file> also wrote to standard error"
check_lines "$tmp/trace.log"

echo "check_mistakes_trace: OK: every mistake left its trace line, on standard error and in a file"
