#!/usr/bin/env bash
# The test_unseen table of docs/results.md (issue 26): each row's run on
# all 652 items, its records under docs/runs/test_unseen-table/NAME, then
# the page assembled from them by `bench report`. A row whose report exists
# is skipped, and a stopped row resumes its records, so running this again
# after a stop goes on. Rows need the runs of scripts/train-queue.sh and the
# shipped generator (scripts/ship-default-generator.sh); a row whose learner
# is not there yet is skipped and named, and the page waits for all of
# them. Benchmark only on an idle machine.
#
# Run with: scripts/test-unseen-table.sh   (about 2 h on 2 cores)
#      or: ROWS="lora lora-grammar" scripts/test-unseen-table.sh   (those rows only)
set -euo pipefail
cd "$(dirname "$0")/.."
loragen=${LORAGEN:-target/release/loragen}
data=data/gpt4tools/test_unseen.json
rows=docs/runs/test_unseen-table

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
MISSING=0

# row NAME NEEDS ARGS...: `bench gpt4tools` on all of test_unseen into
# $rows/NAME, once the learner NEEDS (a path) exists.
row() {
    local name=$1 needs=$2
    shift 2
    row_ready "$name" "$rows/$name/report.json" "$needs" || return 0
    "$loragen" bench gpt4tools --data "$data" --out "$rows/$name" "$@"
}

with_tools=$(lora_adapter runs/lora-with-tools/snapshots/step-1200)
# The BFCL comparator: GPT4Tools plus BFCL, 3,000 steps of 4 (12,000
# examples); its step 0 has B = 0, the zero adapter.
without_tools=$(lora_adapter runs/bfcl-lora/snapshots/step-3000)
zero=$(lora_adapter runs/bfcl-lora/snapshots/step-0)
shipped=generator/checkpoints/default/config.json
bfcl_only=runs/bfcl-only-generator/snapshots/step-1500

# The baselines again on this machine: speed-up compares only runs measured
# on one processor (docs/runs/test_unseen was measured on another).
row in-context "$data" --mode in-context --mode in-context-cached --constrained
row lora-with-tools "$with_tools" --mode lora --lora-adapter "$with_tools" --lora-with-system --constrained
row lora "$without_tools" --mode lora --lora-adapter "$without_tools"
row lora-grammar "$without_tools" --mode lora --lora-adapter "$without_tools" --constrained
row zero-adapter-grammar "$zero" --mode lora --lora-adapter "$zero" --constrained
row lora-gen "$shipped" --mode compiled
row lora-gen-grammar "$shipped" --mode compiled --constrained
row lora-gen-bfcl-only-grammar "$bfcl_only" --mode compiled --constrained --generator "$bfcl_only"

if [ "$MISSING" = 1 ]; then
    echo "rows are missing; docs/results.md is written once every row is done"
    exit 0
fi
"$loragen" bench report -o docs/results.md --title 'GPT4Tools test_unseen results' \
    --run "in context=$rows/in-context#in-context" \
    --run "in context, prefix reuse=$rows/in-context#in-context-cached" \
    --run "LoRA with tools=$rows/lora-with-tools" \
    --run "LoRA without tools=$rows/lora" \
    --run "LoRA without tools, grammar=$rows/lora-grammar" \
    --run "zero adapter, grammar=$rows/zero-adapter-grammar" \
    --run "LoRA-Gen=$rows/lora-gen" \
    --run "LoRA-Gen, grammar=$rows/lora-gen-grammar" \
    --run "LoRA-Gen without GPT4Tools training, grammar=$rows/lora-gen-bfcl-only-grammar"
