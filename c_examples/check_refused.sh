#!/bin/sh
# check_refused.sh: a failing call explains itself.
#
# Runs the echo pair once, so that the server has listened on a port and then
# closed it, and connects to that port again. Nothing listens there any more,
# so ss_connect fails with ECONNREFUSED, and the client must print the line
# from ss_last_error() that names the call, the address and the errno:
#
#   [client] ss_connect failed: ss_connect(fd 3, 127.0.0.1:PORT): Connection refused (ECONNREFUSED)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${EXAMPLES_BUILD:-$here/build}
wrapper=${EXAMPLES_WRAPPER:-} # e.g. valgrind.sh, for make valgrind
tmp=$(mktemp -d "${TMPDIR:-/tmp}/safesock-refused.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "check_refused: $*" >&2
    exit 1
}

ECHO_PORT_OUT="$tmp/port" sh "$here/run_echo.sh" 1 >"$tmp/pair.log" 2>&1 || {
    cat "$tmp/pair.log"
    fail "the echo pair failed"
}
port=$(cat "$tmp/port")

status=0
${wrapper:+"$wrapper"} "$build/echo_client" 127.0.0.1 "$port" 1 >"$tmp/out" 2>"$tmp/err" || status=$?
cat "$tmp/out" "$tmp/err"
[ "$status" -eq 1 ] || fail "the client exited with status $status, expected 1"
grep -q "ss_connect(fd [0-9]*, 127\.0\.0\.1:$port): Connection refused (ECONNREFUSED)" "$tmp/err" ||
    fail "the client did not print ss_last_error() for the refused connect"

echo "check_refused: OK: the refused ss_connect was explained by ss_last_error()"
