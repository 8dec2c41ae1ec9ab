"""Backbone forwards per test frame: the evaluator (cached frame maps) against the plain clip loop.

    python benchmarks/bench_eval.py [--model tiny|fgra] [--tracklets 60] [--seq-len 6] [--frame-budget 256]

The tracklets are synthetic frames whose lengths follow the MARS test set (sampled from
``../shared/data/mars-info-full`` when present, else a log-normal fit) and include one 920-frame
tracklet, the longest in MARS. Target: 1.0 forward per frame for the evaluator; the clip loop
makes about 2.0 at stride seq_len // 2 (more on tracklets shorter than a clip).
``--model fgra`` uses ``fgra_core.models.fgra.FGRA`` (ResNet-18, random weights, 128x64 frames)
when that module exists; the default is a tiny convolutional model (the count does not depend on
the model).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fgra_core.eval.features import extract_features, extract_features_naive  # noqa: E402


class TinyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1))
        self.max_batch = 0

    def backbone_features(self, frames):
        self.max_batch = max(self.max_batch, frames.shape[0])
        return self.backbone(frames)

    def head(self, fmaps):  # [B, N, C, h, w] -> [B, C]
        return fmaps.mean(dim=(1, 3, 4))


class Track:
    def __init__(self, frames, name):
        self.frames, self.name = frames, name

    def __len__(self):
        return self.frames.shape[0]


def mars_lengths(shared: Path) -> np.ndarray | None:
    path = shared / "data" / "mars-info-full" / "tracks_test_info.mat"
    if not path.exists():
        return None
    import scipy.io

    tracks = scipy.io.loadmat(str(path))["track_test_info"]
    return (tracks[:, 1] - tracks[:, 0] + 1).astype(int)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("tiny", "fgra"), default="tiny")
    p.add_argument("--tracklets", type=int, default=60)
    p.add_argument("--seq-len", type=int, default=6)
    p.add_argument("--stride", type=int, default=None)
    p.add_argument("--frame-budget", type=int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-tf32", action="store_true", help="keep TF32 convolutions on CUDA (features then differ ~1e-3)")
    args = p.parse_args(argv)
    if not args.allow_tf32:  # batch-size-dependent TF32 kernels would hide the comparison
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    rng = np.random.default_rng(args.seed)
    real = mars_lengths(args.shared)
    if real is not None:
        lengths = rng.choice(real, size=args.tracklets - 1, replace=True)
        source = f"sampled from the {len(real)} MARS test tracklets"
    else:
        lengths = np.clip(np.round(rng.lognormal(3.8, 0.9, args.tracklets - 1)), 2, 920).astype(int)
        source = "log-normal (MARS info files not found)"
    lengths = np.r_[lengths, 920]

    if args.model == "fgra":
        try:
            from fgra_core.models.fgra import FGRA
        except ImportError as err:
            print(f"fgra_core.models.fgra not available ({err}); use --model tiny")
            return 2
        model = FGRA(num_classes=None, variant=8, backbone="resnet18", weights="none")
        height, width = 128, 64
    else:
        model = TinyModel()
        height, width = 32, 16
    model = model.to(args.device)
    tracks = [Track(rng.integers(0, 256, (n, height, width, 3), dtype=np.uint8), f"s{i}") for i, n in enumerate(lengths)]

    def transform(frames):
        return (torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255.0 - 0.45) / 0.225

    kw = dict(seq_len=args.seq_len, stride=args.stride, transform=transform, device=args.device, show_progress=False, return_stats=True)
    extract_features(model, tracks[:2], frame_budget=args.frame_budget, **kw)  # warm-up (CUDA init, kernels)
    extract_features_naive(model, tracks[:2], **kw)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fast, s_fast = extract_features(model, tracks, frame_budget=args.frame_budget, **kw)
    t1 = time.perf_counter()
    naive, s_naive = extract_features_naive(model, tracks, **kw)
    t2 = time.perf_counter()
    diff = float((fast - naive).abs().max() / naive.abs().max().clamp(min=1e-12))
    stride = args.stride or max(1, args.seq_len // 2)

    print(f"{len(tracks)} tracklets, {int(lengths.sum())} frames ({source}; lengths {lengths.min()}..{lengths.max()}), "
          f"model {args.model}, clips of {args.seq_len} at stride {stride}, device {args.device}")
    print(f"{'':22s} {'backbone frames':>15s} {'forwards/frame':>14s} {'clips':>6s} {'backbone calls':>14s} {'seconds':>8s}")
    print(f"{'evaluator (cached)':22s} {s_fast.backbone_frames:15d} {s_fast.forwards_per_frame:14.3f} {s_fast.clips:6d} {s_fast.backbone_calls:14d} {t1 - t0:8.2f}")
    print(f"{'naive clip loop':22s} {s_naive.backbone_frames:15d} {s_naive.forwards_per_frame:14.3f} {s_naive.clips:6d} {s_naive.backbone_calls:14d} {t2 - t1:8.2f}")
    if hasattr(model, "max_batch"):
        print(f"largest backbone batch of the evaluator: {model.max_batch} frames (frame_budget {args.frame_budget})")
    print(f"max |feature difference| / max |feature|, evaluator vs clip loop: {diff:.2e}")
    tol = 1e-2 if args.allow_tf32 else 1e-4
    ok = s_fast.forwards_per_frame == 1.0 and diff < tol
    print("OK" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
