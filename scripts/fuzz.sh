#!/usr/bin/env bash
# Run with: scripts/fuzz.sh TARGET SECONDS [RECORDS...]
#
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of one target in fuzz/:
# react_parser, json_calls or gpt4tools_scorer. The seeds are real model
# outputs in RECORDS, records files of `bench gpt4tools` (records.jsonl:
# predictions in the ReAct protocol) or of `eval` (outputs in the JSON call
# protocol). By default the ReAct parser and the scorer take
# docs/runs/test_unseen/records.jsonl (whose run.json names the data file for
# the scorer's ground truths), the JSON call parser the two eval runs in
# docs/runs/bfcl_val/ (free and grammar-constrained decoding).
# The last lines of the log (fuzz/logs/TARGET.log) hold libFuzzer's final
# stats: the input count and the time. A crash leaves its input in
# fuzz/artifacts/TARGET/ and a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: scripts/fuzz.sh TARGET SECONDS [RECORDS...]"
target=${1:?$usage}
seconds=${2:?$usage}
records=("${@:3}")
if [ ${#records[@]} -eq 0 ]; then
  case "$target" in
    json_calls) records=(docs/runs/bfcl_val/calls.jsonl docs/runs/bfcl_val/calls-constrained.jsonl) ;;
    *) records=(docs/runs/test_unseen/records.jsonl) ;;
  esac
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

seeds=fuzz/seeds/$target
rm -rf "$seeds"
mkdir -p "$seeds" fuzz/corpus/"$target" fuzz/logs
python3 - "$target" "$seeds" "${records[@]}" <<'PY'
import json, os, sys
target, seeds, paths = sys.argv[1], sys.argv[2], sys.argv[3:]
records, truth = [], {}
for path in paths:
    records += [json.loads(l) for l in open(path) if l.strip()]
    if target == "gpt4tools_scorer":
        meta = json.load(open(os.path.join(os.path.dirname(path), "run.json")))
        truth.update({str(i["id"]): i["output"] for i in json.load(open(meta["data"]))})
seen = set()
for r in records:
    text = r.get("prediction", r.get("output", "")).encode()
    data = truth[r["id"]].encode() + b"\0" + text if truth else text
    if data in seen:
        continue
    seen.add(data)
    with open(os.path.join(seeds, f"{len(seen):05}"), "wb") as f:
        f.write(data)
print(f"{len(seen)} distinct seeds from {len(records)} records in {', '.join(paths)}")
PY
cd fuzz
status=0
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" corpus/"$target" ../"$seeds" -- \
    -max_total_time="$seconds" -print_final_stats=1 >logs/"$target".log 2>&1 || status=$?
grep -E "^(#[0-9]+ +(INITED|DONE)|Done|stat::number_of_executed_units|stat::peak_rss|==[0-9]+==|SUMMARY)" logs/"$target".log || true
exit "$status"
