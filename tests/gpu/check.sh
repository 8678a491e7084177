#!/bin/sh
# GPU-machine check, run from the repo root with the release binaries built:
#   cargo build --release -p hyperfleet-tune -p hyperfleet-train --example detect --bin tune
# Shows NVML detection, then runs 8 quarter-GPU command trials on the detected GPUs and prints
# which devices each saw and how many ran at once.
set -eu
./target/release/examples/detect
export SPANS="$(mktemp -d)"
rm -rf gpu-results
./target/release/tune run tests/gpu/fractional.toml --json
python3 - "$SPANS" <<'PY'
import glob, json, sys
spans = [json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*.json")]
ev = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
cur = best = 0
for _, d in ev:
    cur += d; best = max(best, cur)
print(f"trials: {len(spans)}, devices seen: {sorted({s['cuda'] for s in spans})}, max concurrent: {best}")
PY
