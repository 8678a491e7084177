#!/bin/sh
# GPU-machine check, run from the repo root with the release binaries and the Python extension built:
#   cargo build --release -p hyperfleet-tune -p hyperfleet-train --example detect --bin tune
#   (maturin develop --release, or carry python/hyperfleet/_native.abi3.so)
# 1. NVML detection.
# 2. Eight quarter-GPU command trials on the detected GPUs: which devices each saw, how many ran
#    at once, the GPU's utilisation while they ran (nvidia-smi, every 100 ms), and the idle gap
#    between one trial ending and the next starting on the GPU.
# 3. A 1-GPU TorchTrainer with nccl (skipped, saying why, when torch is not importable here).
# Under five minutes; installs nothing.
set -eu
./target/release/examples/detect
export SPANS="$(mktemp -d)"
rm -rf gpu-results
UTIL="$SPANS/util.csv"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=timestamp,index,utilization.gpu --format=csv,noheader,nounits -lms 100 > "$UTIL" &
  SMI=$!
else
  SMI=
fi
./target/release/tune run tests/gpu/fractional.toml --json
[ -n "$SMI" ] && kill "$SMI" 2>/dev/null || true
python3 - "$SPANS" <<'PY'
import glob, json, os, sys
d = sys.argv[1]
spans = sorted((json.load(open(f)) for f in glob.glob(d + "/*.json")), key=lambda s: s["start"])
ev = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
cur = best = 0
for _, x in ev:
    cur += x; best = max(best, cur)
print(f"trials: {len(spans)}, devices seen: {sorted({s['cuda'] for s in spans})}, max concurrent: {best}")
# Idle gap: for each trial that started after another ended, the time since the latest end before it.
gaps = []
for s in spans:
    ends = [o["end"] for o in spans if o["end"] <= s["start"]]
    if ends:
        gaps.append(s["start"] - max(ends))
if gaps:
    gaps.sort()
    print(f"idle gap between a trial ending and the next starting: median {gaps[len(gaps)//2]*1000:.0f} ms, "
          f"max {gaps[-1]*1000:.0f} ms over {len(gaps)} hand-overs")
util = os.path.join(d, "util.csv")
if os.path.exists(util):
    vals = [float(l.split(",")[2]) for l in open(util) if l.count(",") >= 2 and l.split(",")[2].strip().replace(".", "").isdigit()]
    if vals:
        print(f"GPU utilisation while the trials ran: mean {sum(vals)/len(vals):.1f} %, max {max(vals):.0f} % "
              f"({len(vals)} samples; the trials sleep, so this shows hyperfleet's own use of the GPU)")
PY
if PYTHONPATH=python python3 -c "import torch, hyperfleet._native; assert torch.cuda.is_available()" 2>/dev/null; then
  PYTHONPATH=python python3 tests/gpu/torch_nccl.py
else
  echo "TorchTrainer with nccl: skipped (torch with CUDA, or hyperfleet's extension, is not importable here)"
fi
