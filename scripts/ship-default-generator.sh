#!/usr/bin/env bash
# Chooses and ships the default generator once scripts/train-default-generator.sh
# has finished: every snapshot of runs/default-generator validated on the
# first 200 val_seen items (compiled, constrained; nothing else chooses),
# the curve with the highest SR (ties to the later step), that snapshot
# written to generator/checkpoints/default (f16), and the shipped copy
# validated again to count its predictions identical to the f32 ones
# (the issue asks for at least 197 of 200). Each validation is skipped
# when done, so running this again after a stop goes on. Benchmark only on
# an idle machine. Log: stdout.
#
# Run with: scripts/ship-default-generator.sh   (about 1 h on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
loragen=${LORAGEN:-target/release/loragen}
run=runs/default-generator

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

[ -d "$run/snapshots/step-3000" ] || { echo "$run has not reached step 3000" >&2; exit 1; }

for snapshot in "$run"/snapshots/step-*; do
    step=${snapshot##*/step-}
    [ "$step" -gt 0 ] && validate "$run/val/step-$step" --mode compiled --generator "$snapshot"
done
"$loragen" bench curve --run "default=$run" --out "$run/curve" | tee "$run/curve.md"
best=$(sed -n 's/^best snapshot: step-\([0-9]*\),.*/\1/p' "$run/curve.md")
[ -n "$best" ] || { echo "no validated snapshot in $run/val" >&2; exit 1; }

"$loragen" train ship --from "$run/snapshots/step-$best" --command scripts/train-default-generator.sh
validate "$run/val/shipped-f16" --mode compiled --generator generator/checkpoints/default
"$loragen" bench compare --a "$run/val/step-$best" --b "$run/val/shipped-f16" | tee "$run/shipped-f16.md"
