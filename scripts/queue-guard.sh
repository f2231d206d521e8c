#!/usr/bin/env bash
# Keeps measurements clean and llama.cpp single while the training queue
# runs: a queue `train` process (binary named $QUEUE_BIN) is held stopped
# (SIGSTOP) while a foreground eval, bench or suite runs (binary named
# $FG_BIN), and the queue's `train generator`, whose cloud pass uses
# llama.cpp, also while a foreground `train selector` runs. While the file
# $HOLD exists the queue is held regardless. It resumes (SIGCONT) when
# nothing holds it. Copy the release binary to those names before starting
# the queue and the foreground work. Log: stdout.
#
# Run with: QUEUE_BIN=loragen-queue FG_BIN=loragen-fg nohup scripts/queue-guard.sh >> runs/watch.log &
set -u
queue=${QUEUE_BIN:-loragen-queue}
fg=${FG_BIN:-loragen-fg}
hold_file=${HOLD:-/tmp/hold-queue}
while true; do
    bench=$(pgrep -f "$fg (eval|bench|suite)" || true)
    selector=$(pgrep -f "$fg train selector" || true)
    for pid in $(pgrep -f "$queue train" || true); do
        hold=""
        [ -n "$bench" ] && hold=1
        [ -e "$hold_file" ] && hold=1
        if [ -n "$selector" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "train generator"; then
            hold=1
        fi
        state=$(ps -o stat= -p "$pid" 2>/dev/null | head -c1)
        if [ -n "$hold" ] && [ "$state" != T ]; then
            echo "$(date -u +%T) hold $pid"
            kill -STOP "$pid"
        elif [ -z "$hold" ] && [ "$state" = T ]; then
            echo "$(date -u +%T) resume $pid"
            kill -CONT "$pid"
        fi
    done
    sleep 5
done
