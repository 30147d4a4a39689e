#!/bin/sh
# run_udp_echo.sh: runs udp_echo_server and udp_echo_client against each
# other, over IPv4 (127.0.0.1) and over IPv6 (::1).
#
# Usage: sh run_udp_echo.sh [COUNT]
#
# For each address: starts the server in the background on a port the
# kernel picks, waits (at most 10 s) for its port file, runs the client
# with COUNT datagrams (default 3), then waits for the server, which ends
# after the client's final empty datagram. If the machine has no IPv6
# loopback, the server exits 77 and that part prints "skipped" and counts
# as passed. Exits 0 only if every part that ran passed.
#
# Environment: EXAMPLES_BUILD, EXAMPLES_WRAPPER (see server_lib.sh).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
script=run_udp_echo
. "$here/server_lib.sh"
count=${1:-3}

require_programs udp_echo_server udp_echo_client

# run_pair NAME BIND_ADDRESS CONNECT_HOST: one server and one client.
# Returns 0 when both passed, 77 when the server skipped.
run_pair() {
    name=$1 bind=$2 host=$3
    rm -f "$tmp/port"
    ${wrapper:+"$wrapper"} "$build/udp_echo_server" -t 10 -p "$tmp/port" "$bind" &
    server_pid=$!
    if ! wait_for_port; then
        [ "$server_status" -eq 77 ] && return 77
        fail "$name: the server exited (status $server_status) before it was bound"
    fi

    status=0
    ${wrapper:+"$wrapper"} "$build/udp_echo_client" "$host:$port" "$count" || status=$?
    [ "$status" -eq 0 ] || fail "$name: the client failed (status $status)"

    wait_server "$name"
    return 0
}

run_pair IPv4 127.0.0.1:0 127.0.0.1
echo "run_udp_echo: IPv4 (127.0.0.1): OK, $count datagram(s) echoed"

status=0
run_pair IPv6 '[::1]:0' '[::1]' || status=$?
case $status in
    0) echo "run_udp_echo: IPv6 (::1): OK, $count datagram(s) echoed" ;;
    77) echo "run_udp_echo: IPv6 (::1): skipped, no IPv6 loopback on this machine" ;;
    *) fail "IPv6: status $status" ;;
esac
