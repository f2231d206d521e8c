#!/usr/bin/env bash
# The validation curve of the LoRA with tools (issue 26: the generator is
# not to be compared with an undertrained baseline): every snapshot of
# runs/lora-with-tools validated as the generator's are (the first 200
# val_seen items, constrained), with every definition in its prompt, then
# its loss and SR curves beside the default generator's, and its training
# time against the generator's: steps times the median step time in
# train.jsonl (a step's `ms` is wall time, so a mean would count the hours
# a run was held by scripts/queue-guard.sh). Each
# validation is skipped when done. Benchmark only on an idle machine.
#
# Run with: scripts/lora-with-tools-curve.sh   (about 30 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
loragen=${LORAGEN:-target/release/loragen}
run=runs/lora-with-tools

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

for snapshot in "$run"/snapshots/step-*; do
    step=${snapshot##*/step-}
    [ "$step" -gt 0 ] || continue
    adapter=$(lora_adapter "$snapshot")
    validate "$run/val/step-$step" --mode lora --lora-adapter "$adapter" --lora-with-system
done
mkdir -p docs/runs/lora-with-tools
"$loragen" bench curve --run "LoRA with tools=$run" --run "LoRA-Gen=runs/default-generator" \
    --out docs/runs/lora-with-tools/curve --title "LoRA with tools against LoRA-Gen" |
    tee docs/runs/lora-with-tools/curve.md
for r in "$run" runs/default-generator; do
    jq -s -r --arg run "$r" 'length as $n | (map(.ms) | sort | .[$n / 2 | floor]) as $median
        | "\($run): \($n) steps, median \($median / 1000 * 100 | round / 100) s a step, \($n * $median / 3600000 * 100 | round / 100) h of training"' \
        "$r/train.jsonl"
done | tee -a docs/runs/lora-with-tools/curve.md
