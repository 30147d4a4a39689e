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
# Environment (and EXAMPLES_BUILD, EXAMPLES_WRAPPER: see server_lib.sh):
#   ECHO_PORT_OUT    if set, the server's port is also copied to this file
#                    (check_refused.sh uses it)
#   SAFESOCK_TRACE   passed on to both programs (1: trace to stderr)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
script=run_echo
. "$here/server_lib.sh"
count=${1:-3}

require_programs echo_server echo_client

# Serve one client; give up if anything waits longer than 10 s.
${wrapper:+"$wrapper"} "$build/echo_server" -n 1 -t 10 -p "$tmp/port" &
server_pid=$!
wait_for_port || fail "the server exited (status $server_status) before it listened"
if [ -n "${ECHO_PORT_OUT:-}" ]; then
    echo "$port" >"$ECHO_PORT_OUT"
fi

client_status=0
${wrapper:+"$wrapper"} "$build/echo_client" 127.0.0.1 "$port" "$count" || client_status=$?
if [ "$client_status" -ne 0 ]; then
    # The EXIT trap kills the server, which may still wait for a client.
    fail "the client failed (status $client_status)"
fi

# The client has closed, so the server finishes on its own.
wait_server TCP

echo "run_echo: OK: $count line(s) echoed; client and server both exited 0"
