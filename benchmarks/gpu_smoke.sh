#!/usr/bin/env bash
# Full-size checks on a CUDA machine: the model/GAM benchmark with ResNet-50 at 256x128, the
# evaluator's forwards per frame, the metrics benchmark, and a short end-to-end training run of
# the full model (ResNet-50, 256x128, P=16 x K=4 clips of 6 frames, AMP, channels-last) on the
# synthetic set drawn at 256x128. Usage: bash benchmarks/gpu_smoke.sh [OUT_DIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-benchmarks/gpu-out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
$py -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
$py benchmarks/bench_model.py --device cuda 2>&1 | tee "$out/bench_model.txt"
$py benchmarks/bench_model.py --device cuda --amp --channels-last --skip-gam 2>&1 | tee "$out/bench_model_amp.txt"
$py benchmarks/bench_eval.py --device cuda --model fgra 2>&1 | tee "$out/bench_eval.txt"
$py benchmarks/bench_metrics.py 2>&1 | tee "$out/bench_metrics.txt"
# loader at MARS scale (a tree of links to mars-mini) and end-to-end training against the step alone
mars_tmp=$(mktemp -d)
$py benchmarks/make_mars_scale.py "$mars_tmp/mars" 2>&1 | tail -1 | tee "$out/make_mars_scale.txt"
$py benchmarks/bench_loader.py --root "$mars_tmp/mars" --cache-dir "$mars_tmp/cache" --device cuda --workers 8 \
  2>&1 | tee "$out/bench_loader.txt"
rm -rf "$mars_tmp"
$py -m fgra_core.train --no-progress \
  --set run_dir="$out/resnet50-smoke" --set resume=false --set device=cuda \
  --set data.dataset=synthetic --set data.height=256 --set data.width=128 --set data.seq_len=6 \
  --set data.num_workers=8 --set data.synthetic.height=256 --set data.synthetic.width=128 \
  --set data.synthetic.num_train_ids=160 --set data.synthetic.num_test_ids=100 \
  --set model.backbone=resnet50 --set model.weights=none --set model.variant=8 \
  --set train.epochs=4 --set train.P=16 --set train.K=4 --set train.amp=true --set train.channels_last=true \
  2>&1 | tee "$out/train_smoke.txt"
$py - "$out/resnet50-smoke/results.json" <<'PY' 2>&1 | tee "$out/train_summary.txt"
import json, sys
r = json.load(open(sys.argv[1]))
steps = sum(h["steps"] for h in r["history"])
print(f"resnet50 full FGRA smoke: {steps} steps of 64 clips x 6 frames at 256x128 in {r['train_time_s']:.1f} s "
      f"({steps * 64 * 6 / r['train_time_s']:.0f} frames/s incl. data loading), eval {r['eval_time_s']:.1f} s, "
      f"rank-1 {r['metrics']['rank1']:.1f} mAP {r['metrics']['mAP']:.1f}; eval stats {r.get('eval_stats')}")
PY
