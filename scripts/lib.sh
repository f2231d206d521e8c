# Helpers the measurement scripts share; sourced, not run. Needs $loragen.

# lora_adapter SNAPSHOT: the path of a plain LoRA snapshot's GGUF adapter,
# exported once when the snapshot exists (a missing snapshot gives the
# path anyway, for the caller's "waits for" check).
lora_adapter() {
    [ -d "$1" ] && [ ! -f "$1/lora.gguf" ] &&
        "$loragen" adapter export --checkpoint "$1" --out "$1/lora.gguf" >&2
    echo "$1/lora.gguf"
}

# row_ready NAME DONE NEEDS...: whether row NAME is to run now: not when
# ROWS (a space-separated list of names) is set and leaves it out, nor when
# DONE (its finished output) exists, nor while a learner it NEEDS is
# missing (the first and the last set MISSING=1). Says which, or that it
# starts.
row_ready() {
    local name=$1 done=$2
    shift 2
    if [ -n "${ROWS:-}" ] && [[ " $ROWS " != *" $name "* ]]; then
        echo "== $name: not in ROWS"
        MISSING=1
        return 1
    fi
    if [ -e "$done" ]; then
        echo "== $name: done"
        return 1
    fi
    for need in "$@"; do
        if [ ! -e "$need" ]; then
            echo "== $name: waits for $need"
            MISSING=1
            return 1
        fi
    done
    echo "== $name ($(date -u '+%F %R UTC'))"
}

# validate OUT ARGS...: `bench gpt4tools ARGS...` on the first 200 val_seen
# items, constrained (the validation every training run's curve uses),
# into OUT; skipped once OUT has its report.
validate() {
    local out=$1
    shift
    row_ready "$out" "$out/report.json" || return 0
    "$loragen" bench gpt4tools --data data/gpt4tools/val_seen.json --limit 200 \
        --constrained --out "$out" "$@"
}
