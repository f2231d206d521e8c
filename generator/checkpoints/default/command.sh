#!/usr/bin/env bash
# Trains the shipped default generator (generator/checkpoints/default) from
# scratch: the data, the plain LoRA it warm-starts from, then the generator.
# Every step resumes where an interrupted run stopped, so running this
# again after a stop goes on. Log: runs/default-generator.log (append).
#
# Run with: scripts/train-default-generator.sh   (about 4 h on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
loragen=${LORAGEN:-target/release/loragen}

[ -f data/gpt4tools/train.json ] || "$loragen" data gpt4tools --out data/gpt4tools
[ -f data/bfcl/train_queries.jsonl ] || "$loragen" data bfcl --out data/bfcl

# The mix both learners see: all of GPT4Tools train plus the allowed BFCL
# train split, repeated 3 times (about a fifth of the examples).
mix=(--data data/gpt4tools/train.json --bfcl data/bfcl --bfcl-repeat 3 --steps 3000)

# 1. The plain LoRA without tools on that mix: the warm start's origin and
#    the BFCL comparator.
"$loragen" train lora --without-tools "${mix[@]}" --out runs/bfcl-lora
# Ctrl-C stops training with a checkpoint and exit 0: go on only from a
# finished LoRA.
if [ ! -d runs/bfcl-lora/snapshots/step-3000 ]; then
    echo "the LoRA stopped before step 3000; run this script again to resume it" >&2
    exit 1
fi

# 2. The generator, every expert starting at the finished LoRA.
"$loragen" train generator "${mix[@]}" --warm-start runs/bfcl-lora/snapshots/step-3000 \
    --out runs/default-generator
