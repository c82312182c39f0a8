#!/usr/bin/env bash
# Run the image probe directly under a real GPU (a host with PyTorch+CUDA, no Docker), then
# check what the cuda variant promises on linux/amd64 with --require-gpu semantics.
# Output: probe.json, check.txt, nvidia-smi.txt under ${OUT:-.}.
set -uo pipefail
out=${OUT:-.}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia-smi.txt" 2>&1
python3 src/aibase/probe.py --skip-imports > "$out/probe.json"
PYTHONPATH=src python3 - "$out/probe.json" > "$out/check.txt" <<'PY'
import sys
from aibase.config.loader import load_config
from aibase.host.probe_report import parse_probe_output
from aibase.release.smoke import check_probe
report = parse_probe_output(open(sys.argv[1]).read(), "this GPU host")
cuda = load_config("images.toml", env={}).variant("cuda")
print("torch", report.torch)
print("python", report.python.version, report.platform)
for p in check_probe(report, cuda, "linux/amd64", {}, gpu_required=True):
    print("PROBLEM:", p)
PY
cat "$out/nvidia-smi.txt" "$out/check.txt"
