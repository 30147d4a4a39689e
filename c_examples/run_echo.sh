#!/bin/sh
# run_echo.sh: runs echo_server and echo_client against each other.
#
# Usage: sh run_echo.sh [COUNT]
#
# Starts the server in the background on 127.0.0.1 with a port the kernel
# picks, waits (at most 10 s) for the server to write that port to a file,
# runs the client with COUNT lines (default 3), then waits for the server to
# finish. Exits 0 only if the client got every line back and both programs
# exited 0. The server is killed whenever this script exits early, and the
# temporary directory is removed.
#
# Environment:
#   EXAMPLES_BUILD   directory holding the built programs (default: ./build
#                    next to this script)
#   EXAMPLES_WRAPPER a command to run each program under (make valgrind sets
#                    it to valgrind.sh); empty: run them directly
#   ECHO_PORT_OUT    if set, the server's port is also copied to this file
#                    (check_refused.sh uses it)
#   SAFESOCK_TRACE   passed on to both programs (1: trace to stderr)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
build=${EXAMPLES_BUILD:-$here/build}
wrapper=${EXAMPLES_WRAPPER:-}
count=${1:-3}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/safesock-echo.XXXXXX")
server_pid=

# On any exit: stop the server if it still runs, remove the temporary files.
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
# A signal ends the script through `exit`, which runs the EXIT trap above.
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "run_echo: $*" >&2
    exit 1
}

for program in echo_server echo_client; do
    [ -x "$build/$program" ] || fail "$build/$program is missing; run 'make' first"
done

# Serve one client; give up if anything waits longer than 10 s.
${wrapper:+"$wrapper"} "$build/echo_server" -n 1 -t 10 -p "$tmp/port" &
server_pid=$!

# The server writes its port file only once it is listening. Poll for it,
# at most 100 times 0.1 s, and stop early if the server has already died.
tries=0
while [ ! -s "$tmp/port" ]; do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        status=0
        wait "$server_pid" || status=$?
        server_pid=
        fail "the server exited (status $status) before it listened"
    fi
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || fail "the server did not listen within 10 s"
    sleep 0.1 2>/dev/null || sleep 1 # fractional sleep is not POSIX
done
port=$(cat "$tmp/port")
if [ -n "${ECHO_PORT_OUT:-}" ]; then
    echo "$port" >"$ECHO_PORT_OUT"
fi

client_status=0
${wrapper:+"$wrapper"} "$build/echo_client" 127.0.0.1 "$port" "$count" || client_status=$?
if [ "$client_status" -ne 0 ]; then
    # The EXIT trap kills the server, which may still wait for a client.
    fail "the client failed (status $client_status)"
fi

# The client has closed, so the server finishes on its own; its timeouts
# bound this wait.
server_status=0
wait "$server_pid" || server_status=$?
server_pid=
[ "$server_status" -eq 0 ] || fail "the server failed (status $server_status)"

echo "run_echo: OK: $count line(s) echoed; client and server both exited 0"
