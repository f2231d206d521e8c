#!/usr/bin/env bash
# The development table of the unseen-tools issues (28 and 29): every
# control and each training-free gain on the two development sets, one run
# directory or record file per row under docs/runs/unseen-dev/table/.
#
# - GPT4Tools held-out split: the val_seen items that list one of the four
#   development tools (corpus::HELD_OUT_DEV), 304 items, 67 calls of them;
#   learners trained without those tools: runs/heldout-lora (the plain LoRA)
#   and runs/ablation-default (the generator's development variant).
# - BFCL validation (360 queries): runs/bfcl-lora (the plain LoRA) and the
#   default generator (compiled).
# - val_seen (600 items), where no gain may cost SR: the default generator.
#
# A row whose learner is not trained yet is skipped and named; a finished
# row is skipped, a stopped one resumes. Benchmark only on an idle machine.
#
# Run with: scripts/unseen-dev.sh   (about 3 h on 2 cores)
#      or: ROWS="bfcl-gen seen-gen" scripts/unseen-dev.sh   (those rows only)
set -euo pipefail
cd "$(dirname "$0")/.."
loragen=${LORAGEN:-target/release/loragen}
out=docs/runs/unseen-dev/table
selector=${SELECTOR:-runs/selector-dev}
mkdir -p "$out"

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# held NAME NEEDS ARGS...: `bench gpt4tools` on the held-out split.
held() {
    local name=$1 needs=$2
    shift 2
    row_ready "$name" "$out/$name/report.json" "$needs" || return 0
    "$loragen" bench gpt4tools --data data/gpt4tools/val_seen.json \
        --listing "Segment the Image" --listing "Get Photo Description" \
        --listing "Generate Image Condition On Sketch Image" \
        --listing "Remove Something From The Photo" \
        --constrained --out "$out/$name" "$@"
}

# seen NAME NEEDS ARGS...: `bench gpt4tools` on all 600 val_seen items,
# where a training-free gain must not cost SR (issue 28).
seen() {
    local name=$1 needs=$2
    shift 2
    row_ready "$name" "$out/$name/report.json" "$needs" || return 0
    "$loragen" bench gpt4tools --data data/gpt4tools/val_seen.json \
        --constrained --out "$out/$name" "$@"
}

# bfcl NAME NEEDS ARGS...: `eval` on BFCL validation.
bfcl() {
    local name=$1 needs=$2
    shift 2
    row_ready "$name" "$out/$name.txt" "$needs" || return 0
    "$loragen" eval --tools data/bfcl/val_tools.json --queries data/bfcl/val_queries.jsonl \
        --constrained --out "$out/$name.jsonl" "$@" | tee "$out/$name.txt.part"
    mv "$out/$name.txt.part" "$out/$name.txt"
}

heldout_lora=$(lora_adapter runs/heldout-lora/snapshots/step-1000)
dev_generator=runs/ablation-default/snapshots/step-500
with_tools=$(lora_adapter runs/lora-with-tools/snapshots/step-1200)
bfcl_lora=$(lora_adapter runs/bfcl-lora/snapshots/step-3000)
shipped=generator/checkpoints/default/config.json

# GPT4Tools held-out split.
g_lora=(--mode lora --lora-adapter "$heldout_lora")
g_gen=(--mode compiled --generator "$dev_generator")
held held-lora "$heldout_lora" "${g_lora[@]}"
held held-lora-whole "$heldout_lora" "${g_lora[@]}" --whole-names
held held-lora-field "$heldout_lora" "${g_lora[@]}" --field-aware
held held-lora-whole-field "$heldout_lora" "${g_lora[@]}" --whole-names --field-aware
held held-lora-selector "$heldout_lora" "${g_lora[@]}" --whole-names --selector "$selector"
# The selector as a restriction at the name: its top 1 forced, or its top 2
# left to whole-name scoring (issue 29: measure both).
held held-lora-selector-keep1 "$heldout_lora" "${g_lora[@]}" --whole-names --selector "$selector" --selector-keep 1
held held-lora-selector-keep2 "$heldout_lora" "${g_lora[@]}" --whole-names --selector "$selector" --selector-keep 2
# The selector's "no call" margin requiring a call below 0, its own ranking.
held held-lora-selector-require "$heldout_lora" "${g_lora[@]}" --whole-names --selector "$selector" --selector-require 0
# Every training-free part at once: whole names, the field-aware grammar,
# the selector at weight 1 and its required call below margin 0.
combined=(--whole-names --field-aware --selector "$selector" --selector-require 0)
held held-lora-combined "$heldout_lora" "${g_lora[@]}" "${combined[@]}"
held held-gen "$dev_generator" "${g_gen[@]}"
held held-gen-whole "$dev_generator" "${g_gen[@]}" --whole-names
held held-gen-field "$dev_generator" "${g_gen[@]}" --field-aware
held held-gen-names "$dev_generator" "${g_gen[@]}" --name-hint names
held held-gen-keys "$dev_generator" "${g_gen[@]}" --name-hint keys
held held-gen-selector "$dev_generator" "${g_gen[@]}" --whole-names --selector "$selector"
held held-gen-selector-keep1 "$dev_generator" "${g_gen[@]}" --whole-names --selector "$selector" --selector-keep 1
held held-gen-selector-keep2 "$dev_generator" "${g_gen[@]}" --whole-names --selector "$selector" --selector-keep 2
held held-gen-selector-require "$dev_generator" "${g_gen[@]}" --whole-names --selector "$selector" --selector-require 0
held held-gen-combined "$dev_generator" "${g_gen[@]}" "${combined[@]}"
# The upper bound: every definition in the prompt (this LoRA saw the four
# tools in training).
held held-with-tools "$with_tools" --mode lora --lora-adapter "$with_tools" --lora-with-system

# val_seen, the shipped generator: each gain against greedy constrained
# decoding.
seen seen-gen "$shipped" --mode compiled
seen seen-gen-whole "$shipped" --mode compiled --whole-names
seen seen-gen-field "$shipped" --mode compiled --field-aware
seen seen-gen-whole-field "$shipped" --mode compiled --whole-names --field-aware
seen seen-gen-selector "$shipped" --mode compiled --whole-names --selector "$selector"
seen seen-gen-selector-require "$shipped" --mode compiled --whole-names --selector "$selector" --selector-require 0
seen seen-gen-combined "$shipped" --mode compiled "${combined[@]}"

# BFCL validation.
b_lora=(--mode lora --adapter "$bfcl_lora")
bfcl bfcl-lora-greedy "$bfcl_lora" "${b_lora[@]}"
bfcl bfcl-lora-whole "$bfcl_lora" "${b_lora[@]}" --whole-names
bfcl bfcl-lora-selector "$bfcl_lora" "${b_lora[@]}" --whole-names --selector "$selector"
bfcl bfcl-lora-selector-keep1 "$bfcl_lora" "${b_lora[@]}" --whole-names --selector "$selector" --selector-keep 1
bfcl bfcl-lora-selector-require "$bfcl_lora" "${b_lora[@]}" --whole-names --selector "$selector" --selector-require 0
bfcl bfcl-gen "$shipped" --mode compiled
bfcl bfcl-gen-whole "$shipped" --mode compiled --whole-names
bfcl bfcl-gen-names "$shipped" --mode compiled --name-hint names
bfcl bfcl-gen-keys "$shipped" --mode compiled --name-hint keys
bfcl bfcl-gen-selector "$shipped" --mode compiled --whole-names --selector "$selector"
