#!/bin/sh
# check_trace.sh: runs the echo pair with SAFESOCK_TRACE=1 and checks the trace.
#
# With SAFESOCK_TRACE=1 safesock writes one line per ss_ call to standard
# error, with the result and, for TCP sockets, the connection state after
# the call, for example:
#
#   safesock: ss_connect(fd 3, 127.0.0.1:40000) = 0 [ESTABLISHED]
#
# This check wants to see the client's connect succeed into ESTABLISHED, the
# server's accept return a descriptor, and that descriptor differ from the
# listening one (accept hands over a NEW descriptor).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
log=$(mktemp "${TMPDIR:-/tmp}/safesock-trace.XXXXXX")
trap 'rm -f "$log"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "check_trace: $*" >&2
    exit 1
}

if ! SAFESOCK_TRACE=1 sh "$here/run_echo.sh" 2 >"$log" 2>&1; then
    cat "$log"
    fail "the echo pair failed with tracing on"
fi

echo "check_trace: the trace lines:"
grep '^safesock: ' "$log" || fail "no trace lines at all; is SAFESOCK_TRACE read?"

connect_re='^safesock: ss_connect\(fd [0-9]+, 127\.0\.0\.1:[0-9]+\) = 0 \[ESTABLISHED\]$'
accept_re='^safesock: ss_accept\(fd [0-9]+\) = [0-9]+'
grep -Eq "$connect_re" "$log" || fail "no 'ss_connect(...) = 0 [ESTABLISHED]' line"
grep -Eq "$accept_re" "$log" || fail "no successful 'ss_accept(' line"

# ss_accept(fd L) = C: L is the listener, C the new connection.
listen_fd=$(sed -n 's/^safesock: ss_accept(fd \([0-9]*\)) = \([0-9]*\).*/\1/p' "$log" | head -n 1)
conn_fd=$(sed -n 's/^safesock: ss_accept(fd \([0-9]*\)) = \([0-9]*\).*/\2/p' "$log" | head -n 1)
[ "$listen_fd" != "$conn_fd" ] || fail "ss_accept returned the listening descriptor $listen_fd"

echo "check_trace: OK: connect reached ESTABLISHED; accept turned fd $listen_fd into new fd $conn_fd"
