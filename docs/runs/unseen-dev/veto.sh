#!/usr/bin/env bash
# BFCL validation, plain LoRA (runs/bfcl-lora step 3000), whole names + the
# development selector (refit), first without a veto (the records carry each
# query's "no call" margin, so the summary sweeps every margin), then with
# the margin the rule picks: the largest of the sweep's margins whose
# irrelevance reaches 80% (issue 29's goal), the fewest calls stopped.
set -euo pipefail
cd "$(dirname "$0")/../../.."
L=${LORAGEN:-target/release/loragen}
common=(eval --tools data/bfcl/val_tools.json --queries data/bfcl/val_queries.jsonl --mode lora
  --adapter runs/bfcl-lora/snapshots/step-3000/lora.gguf --constrained --whole-names --selector runs/selector-dev)
$L "${common[@]}" --out runs/dev/bfcl-lora-selector2.jsonl | tee runs/dev/bfcl-lora-selector2.txt
margin=$(python3 - <<'PY'
import re
rows=[l for l in open('runs/dev/bfcl-lora-selector2.txt') if re.match(r'\| [+-]\d', l)]
best=None
for l in rows:
    cells=[c.strip() for c in l.strip().strip('|').split('|')]
    m=float(cells[0]); irr=float(cells[4].rstrip('%'))
    if irr>=80.0: best=m
print(best if best is not None else 'none')
PY
)
echo "chosen margin: $margin"
[ "$margin" = none ] && exit 0
$L "${common[@]}" --selector-veto "$margin" --out runs/dev/bfcl-lora-veto.jsonl | tee runs/dev/bfcl-lora-veto.txt
