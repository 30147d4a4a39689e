#!/bin/sh
# valgrind.sh: runs one example program under valgrind's memcheck.
#
# Usage: sh valgrind.sh PROGRAM [ARGS...]
#
# `make valgrind` runs every check with EXAMPLES_WRAPPER set to this script,
# so each program (and every child it forks) runs under
#
#   valgrind --error-exitcode=1 --leak-check=full --track-fds=yes
#
# and this script fails (exit 1) when memcheck reports an error, when memory
# is definitely or indirectly lost, or when a process leaves a descriptor
# open at exit that it did not inherit. Valgrind 3.19 prints open
# descriptors only as information, so the script reads the report itself:
# every example closes everything it opens. Two things are allowed:
#   - memory "still reachable" at exit, which is not an error: libsafesock's
#     descriptor table is allocated once and kept for the life of the
#     process, by design;
#   - the file named by SAFESOCK_TRACE, when it is a path: libsafesock opens
#     it on the first call and writes to it until the process ends.
# Otherwise the exit status is the program's own (77 "skipped" included).
# Valgrind's reports go to a temporary directory, printed only on failure.
set -u

if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind.sh: valgrind is not installed (apt-get install valgrind)" >&2
    exit 1
fi
[ $# -ge 1 ] || {
    echo "usage: valgrind.sh PROGRAM [ARGS...]" >&2
    exit 2
}

logs=$(mktemp -d "${TMPDIR:-/tmp}/safesock-valgrind.XXXXXX")
name=$(basename "$1")

# %p: one report per process, so forked children get their own.
valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --track-fds=yes --log-file="$logs/%p.log" "$@" &
pid=$!
# A script that stops this one (run_echo.sh kills a server it no longer
# needs) stops the program under valgrind too.
trap 'kill -TERM "$pid" 2>/dev/null' HUP INT TERM

status=0
wait "$pid" || status=$?
while kill -0 "$pid" 2>/dev/null; do # the wait was cut short by a signal
    status=0
    wait "$pid" || status=$?
done

trace_file=
case ${SAFESOCK_TRACE:-} in
    '' | 0 | 1) ;;
    *) trace_file=$SAFESOCK_TRACE ;;
esac

# "Open file descriptor N: PATH" or "Open AF_INET socket N: ..." starts a
# block; the next line says "<inherited from parent>" or where it was opened.
open_fds=$(awk -v trace="$trace_file" '
    /Open (file descriptor|AF_[A-Z0-9]+ socket) [0-9]+/ {
        pending = $0
        sub(/^==[0-9]+== /, "", pending)
        next
    }
    pending != "" {
        path = pending
        sub(/^[^:]*: /, "", path)
        if ($0 !~ /<inherited from parent>/ && !(trace != "" && path == trace))
            print FILENAME ": " pending
        pending = ""
    }
' "$logs"/*.log)
errors=$(grep -h 'ERROR SUMMARY: [1-9]' "$logs"/*.log || true)

failed=0
if [ -n "$errors" ]; then
    echo "valgrind.sh: $name: memcheck found errors" >&2
    failed=1
fi
if [ -n "$open_fds" ]; then
    echo "valgrind.sh: $name: descriptors left open at exit:" >&2
    echo "$open_fds" >&2
    failed=1
fi
if [ "$failed" -ne 0 ]; then
    cat "$logs"/*.log >&2
    rm -rf "$logs"
    exit 1
fi
processes=$(ls "$logs" | wc -l | tr -d ' ')
echo "valgrind.sh: $name: clean ($processes process(es): no errors, no leaks, no open descriptors)" >&2
rm -rf "$logs"
exit "$status"
