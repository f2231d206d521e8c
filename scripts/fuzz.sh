#!/usr/bin/env bash
# Run with: scripts/fuzz.sh TARGET SECONDS [RUN_DIR]
#
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of one target in fuzz/:
# react_parser, json_calls or gpt4tools_scorer. The seeds are real model
# outputs recorded by the benchmark in RUN_DIR (default docs/runs/test_unseen,
# whose run.json names the data file for the scorer's ground truths). The
# last lines of the log (fuzz/logs/TARGET.log) hold libFuzzer's final stats:
# the input count and the time. A crash leaves its input in
# fuzz/artifacts/TARGET/ and a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET SECONDS [RUN_DIR]}
seconds=${2:?usage: scripts/fuzz.sh TARGET SECONDS [RUN_DIR]}
run=${3:-docs/runs/test_unseen}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

seeds=fuzz/seeds/$target
rm -rf "$seeds"
mkdir -p "$seeds" fuzz/corpus/"$target" fuzz/logs
python3 - "$target" "$run" "$seeds" <<'PY'
import json, os, sys
target, run, seeds = sys.argv[1:]
records = [json.loads(l) for l in open(os.path.join(run, "records.jsonl")) if l.strip()]
meta = json.load(open(os.path.join(run, "run.json")))
truth = {str(i["id"]): i["output"] for i in json.load(open(meta["data"]))}
seen = set()
for r in records:
    if target == "gpt4tools_scorer":
        data = truth[r["id"]].encode() + b"\0" + r["prediction"].encode()
    else:
        data = r["prediction"].encode()
    if data in seen:
        continue
    seen.add(data)
    with open(os.path.join(seeds, f"{len(seen):05}"), "wb") as f:
        f.write(data)
print(f"{len(seen)} distinct seeds from {len(records)} records in {run}")
PY
cd fuzz
status=0
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" corpus/"$target" ../"$seeds" -- \
    -max_total_time="$seconds" -print_final_stats=1 >logs/"$target".log 2>&1 || status=$?
grep -E "^(#[0-9]+ +(INITED|DONE)|Done|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==|SUMMARY)" logs/"$target".log || true
exit "$status"
