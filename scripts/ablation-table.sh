#!/usr/bin/env bash
# The ablation table of the shipping issue (26), section 3: every arm of
# scripts/train-queue.sh (cold start, 2,000 examples, the four development
# tools held out) validated on all 600 val_seen items, compiled and
# constrained, records under docs/runs/ablations/NAME; then one table of
# SR on all items, on the 304 that list a held-out tool and on the 67
# held-out calls, each against the default arm with a paired interval
# (`loragen bench ablation`), written to docs/runs/ablations/table.md.
#
# The definitions control needs no training: the shipped generator
# compiles a partner item's system part (one sharing no tool with the
# item, drawn by seed 0) and keeps the item's own grammar, on all of
# test_unseen; it pairs with the LoRA-Gen grammar row of
# scripts/test-unseen-table.sh (docs/runs/ablations/definitions-control.md).
#
# An arm whose snapshot is missing is skipped and named; a finished run is
# skipped, a stopped one resumes. Benchmark only on an idle machine.
#
# Run with: scripts/ablation-table.sh   (about 2.5 h on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
loragen=${LORAGEN:-target/release/loragen}
out=docs/runs/ablations
mkdir -p "$out"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
MISSING=0

arms=(default gumbel-1 experts-4 top-1 cv-off direct-64)
for arm in "${arms[@]}"; do
    snapshot=runs/ablation-$arm/snapshots/step-500
    row_ready "$arm" "$out/$arm/report.json" "$snapshot" || continue
    "$loragen" bench gpt4tools --data data/gpt4tools/val_seen.json --mode compiled \
        --constrained --generator "$snapshot" --out "$out/$arm"
done

shipped=generator/checkpoints/default/config.json
paired=docs/runs/test_unseen-table/lora-gen-grammar
if row_ready definitions-control "$out/definitions-control/report.json" "$shipped" "$paired/report.json"; then
    "$loragen" bench gpt4tools --data data/gpt4tools/test_unseen.json --mode compiled \
        --constrained --partner-seed 0 --out "$out/definitions-control"
fi
if [ -f "$out/definitions-control/report.json" ]; then
    "$loragen" bench compare --a "$paired" --b "$out/definitions-control" |
        tee "$out/definitions-control.md"
fi

if [ "$MISSING" = 1 ]; then
    echo "runs are missing; the table is written once every arm is done"
    exit 0
fi
table=()
for arm in "${arms[@]}"; do
    table+=(--arm "$arm=$out/$arm")
done
"$loragen" bench ablation "${table[@]}" -o "$out/table.md" \
    --held-out "Segment the Image" --held-out "Get Photo Description" \
    --held-out "Generate Image Condition On Sketch Image" \
    --held-out "Remove Something From The Photo"
