# server_lib.sh: what run_echo.sh and run_udp_echo.sh share; sourced, not run.
#
# Sets build, wrapper and tmp (a temporary directory removed on exit);
# kills the server in $server_pid if the script exits early; defines fail,
# require_programs, wait_for_port and wait_server. The sourcing script
# sets `script` (its name, for messages) first.
#
# Environment:
#   EXAMPLES_BUILD    directory holding the built programs (default: ./build
#                     next to the scripts)
#   EXAMPLES_WRAPPER  a command to run each program under (make valgrind
#                     sets it to valgrind.sh); empty: run them directly

build=${EXAMPLES_BUILD:-$here/build}
wrapper=${EXAMPLES_WRAPPER:-}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/safesock-$script.XXXXXX")
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
    echo "$script: $*" >&2
    exit 1
}

# require_programs NAME...: each must be built.
require_programs() {
    for program in "$@"; do
        [ -x "$build/$program" ] || fail "$build/$program is missing; run 'make' first"
    done
}

# wait_for_port: waits for the server started in the background as
# $server_pid to write its port to $tmp/port (it does so once it is ready),
# polling at most 100 times 0.1 s. Returns 0 with the port in $port; if the
# server exits first, returns 1 with its status in $server_status. Fails
# the script after 10 s.
wait_for_port() {
    tries=0
    while [ ! -s "$tmp/port" ]; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            server_status=0
            wait "$server_pid" || server_status=$?
            server_pid=
            return 1
        fi
        tries=$((tries + 1))
        [ "$tries" -le 100 ] || fail "the server was not ready within 10 s"
        sleep 0.1 2>/dev/null || sleep 1 # fractional sleep is not POSIX
    done
    port=$(cat "$tmp/port")
}

# wait_server: waits for the server to finish (its own timeouts bound the
# wait) and fails the script unless it exited 0.
wait_server() {
    server_status=0
    wait "$server_pid" || server_status=$?
    server_pid=
    [ "$server_status" -eq 0 ] || fail "$1: the server failed (status $server_status)"
}
