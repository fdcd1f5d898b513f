# tmux helpers for the real-terminal tests. Sourced after lib.sh; the
# caller's pane is named "ui" on a private server.
SOCK="mneme-$(basename "$0" .sh)-$$"
T() { tmux -L "$SOCK" -f /dev/null "$@"; }
trap 'T kill-server >/dev/null 2>&1; rm -rf "$TMP"' EXIT INT TERM
export LC_ALL=C.UTF-8

# ui_session WIDTH HEIGHT SCRIPT: (re)starts the "ui" pane running
# "sh SCRIPT". A second session holds the server up: killing its last
# session makes tmux exit, and a client started in that moment fails with
# "server exited unexpectedly".
ui_session() {
    T has-session -t hold 2>/dev/null || T new-session -d -s hold "exec sleep 3600"
    T kill-session -t ui 2>/dev/null
    T new-session -d -s ui -x "$1" -y "$2" "sh $3"
}
# wait_until SECONDS COMMAND...: polls the pane until COMMAND (run on the
# capture, left in $TMP/pane) succeeds or the deadline passes
wait_until() {
    end=$(( $(date +%s) + $1 )); shift
    while :; do
        T capture-pane -p -t ui >"$TMP/pane" 2>/dev/null
        "$@" && return 0
        [ "$(date +%s)" -ge "$end" ] && return 1
        sleep 0.2
    done
}
# wait_for SECONDS TEXT: until the pane shows TEXT
wait_for() { wait_until "$1" grep -qF -- "$2" "$TMP/pane"; }
# the step in the header of the last capture
header_step() { head -1 "$TMP/pane" | sed -n 's/.*step \([0-9]*\)\/.*/\1/p'; }
# show the pane in the TAP output when the last test failed
show_pane_if() { [ "$1" = 0 ] || { diag "pane:"; sed 's/^/#   /' "$TMP/pane"; }; }
# quit_ui TEXT: q, y, then waits until the pane shows TEXT (the shell's
# "mneme-exit=N" line); the caller's ok reads the status
quit_ui() {
    T send-keys -t ui q
    wait_for 15 "quit? checkpoint and quit: y / n"
    T send-keys -t ui y
    wait_for 30 "$1"
}
