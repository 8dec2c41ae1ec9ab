"""Cost of the guide alignment module and of the FGRA head, measured in one run.

(a) one GAM train step (forward, backward of aligned + scores) with the memory-efficient
    implementation (on CUDA: its fused Triton kernels, and its torch loop as "efficient-torch")
    and with the reference one: peak memory above the inputs, and time;
(b) one full FGRA train step (forward, FGRALoss, backward, Adam step) over one bare backbone
    train step (forward, mean of the feature maps, backward, Adam step) at the same input.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` minus what was allocated before the step.
On CPU every GAM measurement runs in a fresh subprocess (glibc told to map every block over
128 KiB separately, so freed memory leaves the resident set) that resets the kernel's resident-set
peak (``/proc/self/clear_refs``), runs its first full-size step and reads ``VmHWM`` minus the
resident set before the step: the real memory high-water mark of the step. The bytes autograd
keeps for backward (unique storages, via ``saved_tensors_hooks``) are printed beside it.

    python benchmarks/bench_model.py                       # CPU defaults (scaled-down shapes)
    python benchmarks/bench_model.py --device cuda         # the paper's shapes
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from fgra_core.models import FGRA  # noqa: E402
from fgra_core.models.gam import gam_efficient, gam_reference  # noqa: E402
from fgra_core.models.losses import FGRALoss  # noqa: E402

CPU_GAM_SHAPE = (8, 6, 512, 16, 8, 4)      # B, N, C, H, W, R
CUDA_GAM_SHAPE = (64, 6, 2048, 16, 8, 4)   # the paper's batch: 16 ids x 4 clips, 6 frames; stride-16 maps


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kb() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":")
                out[key] = int(value.split()[0])
    return out


def _reset_rss_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------- (a) GAM
def _gam_inputs(shape, device, dtype=torch.float32, seed=0):
    B, N, C, H, W, R = shape
    g = torch.Generator(device="cpu").manual_seed(seed)
    fmaps = torch.randn(B, N, C, H, W, generator=g, dtype=dtype).relu_().to(device).requires_grad_()
    templates = torch.randn(B, R, C, generator=g, dtype=dtype).to(device).requires_grad_()
    bn = torch.nn.BatchNorm2d(C).to(device=device, dtype=dtype).train()
    return fmaps, templates, bn


def _gam_step(impl, fmaps, templates, bn):
    if impl == "reference":
        out = gam_reference(fmaps, templates, bn)
    else:  # "efficient" (fused kernels on CUDA) or "efficient-torch" (the torch loop)
        out = gam_efficient(fmaps, templates, bn, kernel="torch" if impl == "efficient-torch" else "auto")
    (out.aligned.sum() + out.scores.sum()).backward()
    fmaps.grad = templates.grad = None
    bn.weight.grad = bn.bias.grad = None


def _saved_bytes(impl, fmaps, templates, bn) -> int:
    storages = {}

    def pack(t):
        try:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        except RuntimeError:
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _gam_step(impl, fmaps, templates, bn)
    inputs = {fmaps.untyped_storage().data_ptr(), templates.untyped_storage().data_ptr()}
    return sum(v for k, v in storages.items() if k not in inputs)


def _time(fn, device, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def gam_measure(impl: str, shape, device: torch.device, repeats: int) -> dict:
    """Peak memory (bytes above the inputs) and times of one GAM train step; run in a fresh process on CPU."""
    small = (2, 2, shape[2], 4, 2, shape[5])
    _gam_step(impl, *_gam_inputs(small, device))                 # load kernels outside the measurement
    fmaps, templates, bn = _gam_inputs(shape, device)
    _sync(device)
    # the first full-size step of the process is the one measured: no freed memory to reuse yet
    if device.type == "cuda":
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        _gam_step(impl, fmaps, templates, bn)
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        method = "cuda max_memory_allocated"
    else:
        ok = _reset_rss_peak()
        before = _status_kb()
        _gam_step(impl, fmaps, templates, bn)
        after = _status_kb()
        peak = (after["VmHWM"] - before["VmRSS"]) * 1024 if ok else None
        method = "VmHWM - VmRSS (fresh process)" if ok else "unavailable (/proc/self/clear_refs not writable)"
    saved = _saved_bytes(impl, fmaps, templates, bn)
    times = _time(lambda: _gam_step(impl, fmaps, templates, bn), device, repeats)
    return {"impl": impl, "peak_bytes": peak, "saved_bytes": saved, "times": times, "method": method,
            "input_bytes": fmaps.numel() * fmaps.element_size()}


def _gam_in_child(impl, shape, repeats, threads) -> dict:
    spec = json.dumps({"impl": impl, "shape": list(shape), "repeats": repeats, "threads": threads})
    # big blocks mmapped and unmapped on free, so the resident set follows live memory
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--_child", spec],
                          capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"GAM measurement ({impl}) failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- (b) FGRA vs backbone
def step_ratio(args, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = FGRA(args.classes, variant=args.variant, backbone=args.backbone, weights="none",
                 num_regions=args.regions, last_stride=args.last_stride,
                 gam_kernel=args.gam_kernel).to(device).train()
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    loss_fn = FGRALoss.for_model(model).to(device)
    clips = torch.randn(args.batch, args.seq_len, 3, args.height, args.width, device=device)
    K = 4 if args.batch % 4 == 0 else 2
    labels = (torch.arange(args.batch, device=device) // K) % args.classes
    full_opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    bb_opt = torch.optim.Adam(model.backbone.parameters(), lr=3e-4)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)

    def full_step():
        full_opt.zero_grad(set_to_none=True)
        with amp:
            out = model(clips)
            loss, _ = loss_fn(out, labels)
        loss.backward()
        full_opt.step()

    def backbone_step():
        bb_opt.zero_grad(set_to_none=True)
        with amp:
            fmaps = model.backbone_features(clips.flatten(0, 1))
            loss = fmaps.float().mean()
        loss.backward()
        bb_opt.step()

    for _ in range(args.warmup):
        backbone_step()
        full_step()
    _sync(device)
    t_full, t_bb = [], []
    for _ in range(args.repeats):             # interleaved, so slow drifts hit both alike
        t_bb += _time(backbone_step, device, 1, warmup=0)
        t_full += _time(full_step, device, 1, warmup=0)
    with torch.no_grad():
        fmap_shape = tuple(model.backbone_features(clips[:1, 0]).shape[1:])
    return {"full": t_full, "backbone": t_bb, "fmap": fmap_shape}


# ---------------------------------------------------------------------------- main
def _parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    p.add_argument("--backbone", default=None, help="default: resnet18 on CPU, resnet50 on CUDA")
    p.add_argument("--height", type=int, default=None, help="frame height (default 128 on CPU, 256 on CUDA)")
    p.add_argument("--width", type=int, default=None, help="frame width (default 64 on CPU, 128 on CUDA)")
    p.add_argument("--batch", type=int, default=None, help="clips per step (default 8 on CPU, 64 on CUDA)")
    p.add_argument("--seq-len", type=int, default=None, help="frames per clip (default 4 on CPU, 6 on CUDA)")
    p.add_argument("--regions", type=int, default=4)
    p.add_argument("--variant", default=8)
    p.add_argument("--last-stride", type=int, default=2)
    p.add_argument("--classes", type=int, default=625)
    p.add_argument("--gam-shape", default=None,
                   help="B,N,C,H,W,R for part (a) (default %s on CPU, %s on CUDA)" % (
                       ",".join(map(str, CPU_GAM_SHAPE)), ",".join(map(str, CUDA_GAM_SHAPE))))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--gam-kernel", default="auto", help="GAM kernel in part (b): auto, torch or triton")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast in part (b)")
    p.add_argument("--channels-last", action="store_true", help="channels-last model in part (b)")
    p.add_argument("--skip-gam", action="store_true")
    p.add_argument("--skip-step", action="store_true")
    p.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    defaults = dict(backbone=("resnet50", "resnet18"), height=(256, 128), width=(128, 64), batch=(64, 8),
                    seq_len=(6, 4))
    for key, (on_cuda, on_cpu) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, on_cuda if cuda else on_cpu)
    args.gam_shape = tuple(int(v) for v in args.gam_shape.split(",")) if args.gam_shape else (
        CUDA_GAM_SHAPE if cuda else CPU_GAM_SHAPE)
    return args


def _mb(n):
    return "n/a" if n is None else f"{n / 2**20:,.1f} MiB"


def main(argv=None) -> int:
    args = _parse(argv)
    if args._child:
        spec = json.loads(args._child)
        if spec["threads"]:
            torch.set_num_threads(spec["threads"])
        print(json.dumps(gam_measure(spec["impl"], tuple(spec["shape"]), torch.device("cpu"), spec["repeats"])))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}")

    if not args.skip_gam:
        B, N, C, H, W, R = args.gam_shape
        print(f"\n(a) GAM train step, B={B} N={N} C={C} H={H} W={W} N_s={R}, float32 "
              f"(similarity maps B*N*N_s*C*H*W = {_mb(B * N * R * C * H * W * 4)})")
        res = {}
        impls = ("efficient", "efficient-torch", "reference") if device.type == "cuda" else ("efficient", "reference")
        for impl in impls:
            if device.type == "cuda":
                res[impl] = gam_measure(impl, args.gam_shape, device, args.repeats)
                torch.cuda.empty_cache()
            else:
                res[impl] = _gam_in_child(impl, args.gam_shape, args.repeats, args.threads)
        print(f"  frame features (input): {_mb(res['efficient']['input_bytes'])}; peak memory: "
              f"{res['efficient']['method']}")
        for impl, r in res.items():
            print(f"  {impl:15s}  peak {_mb(r['peak_bytes']):>14s}  saved-for-backward {_mb(r['saved_bytes']):>12s}"
                  f"  step median {statistics.median(r['times']) * 1e3:8.1f} ms  (min {min(r['times']) * 1e3:.1f})")
        e, r = res["efficient"], res["reference"]
        if e["peak_bytes"] and r["peak_bytes"]:
            print(f"  peak memory efficient / reference = {e['peak_bytes'] / r['peak_bytes']:.3f} (target <= 0.333)")
        if "efficient-torch" in res:
            t = res["efficient-torch"]
            print(f"  peak memory efficient-torch / reference = {t['peak_bytes'] / r['peak_bytes']:.3f}; step time "
                  f"efficient-torch / reference = {statistics.median(t['times']) / statistics.median(r['times']):.3f}")
        print(f"  saved-for-backward efficient / reference = {e['saved_bytes'] / max(r['saved_bytes'], 1):.3f}")
        print(f"  step time efficient / reference = "
              f"{statistics.median(e['times']) / statistics.median(r['times']):.3f}")

    if not args.skip_step:
        res = step_ratio(args, device)
        fb, ff = statistics.median(res["backbone"]), statistics.median(res["full"])
        print(f"\n(b) train step, {args.backbone}, variant {args.variant}, {args.batch} clips x {args.seq_len} frames "
              f"of {args.height}x{args.width}, feature maps {res['fmap']}, N_s={args.regions}"
              f", GAM kernel {args.gam_kernel}{', bf16 autocast' if args.amp else ''}{', channels-last' if args.channels_last else ''}")
        print(f"  bare backbone step median {fb * 1e3:9.1f} ms  (min {min(res['backbone']) * 1e3:.1f})")
        print(f"  full FGRA step     median {ff * 1e3:9.1f} ms  (min {min(res['full']) * 1e3:.1f})")
        print(f"  FGRA / backbone = {ff / fb:.3f} (median), {min(res['full']) / min(res['backbone']):.3f} (min)"
              f"  (target <= 1.15)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
