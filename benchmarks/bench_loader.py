"""Training-loader throughput at MARS scale: cold (decoding) and warm (cache) frames/s per worker.

    python benchmarks/bench_loader.py [--root TREE] [--cold-frames 3000] [--warm-batches 40]
        [--workers 2] [--cache-dir DIR] [--device cuda --train-steps 30]

Without ``--root`` a MARS-scale tree is built in a temporary folder by
``benchmarks/make_mars_scale.py`` (MARS's 8,298 train / 12,180 test tracklets, 509,914 /
681,089 frames, as links to the real mars-mini JPEGs). The loader is the device-augmentation
path (``fgra_core/data/device_loader.py``): P16 x K4 clips of 6 frames drawn by the real sampler
and clip RNG, read from the packed frame cache into uint8 batches; no augmentation on the CPU.

Printed (rates per worker core are frames per CPU-second of this process, which the other load
on a shared machine changes far less than wall time; wall rates are printed beside them):
- the cache's disk footprint at MARS scale (packed and per-tracklet layouts, train and test) and
  its memory footprint (page cache for warm reads, the loader's own resident memory);
- cold: the loader decoding the frames of its first batches (``--cold-frames`` of them, one
  thread), the full first pass over the MARS train set extrapolated from it, and measured
  again with the loader's ``--workers`` threads, with ``--workers`` processes
  (``PackedFrameCache.fill_parallel``) and, on CUDA, with nvjpeg (``fill_with_torchvision``);
- warm: the same batches again from the cache (target >= 10,000 frames/s per worker core), in one
  thread and through the loader's ``--workers`` threads, and the CPU-augmentation path on the
  first ``--cpu-batches`` of them (float clips, frames from its in-memory cache) for the ratio;
- on CUDA: end-to-end training frames/s (loader + device augmentation + FGRA step, ResNet-50,
  256x128, P16 x K4 x 6, bf16, channels-last) against the same FGRA step alone on a batch already on
  the GPU (bench_model's step); target ratio >= 0.8.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from fgra_core.data.datasets.mars import load_mars  # noqa: E402
from fgra_core.data.device_loader import DeviceTrainLoader, Uint8ClipBatches, device_loader_from  # noqa: E402
from fgra_core.data.device_transforms import pin_memory_for, to_device_batch  # noqa: E402
from fgra_core.data.loaders import build_train_loader  # noqa: E402
from fgra_core.data.packed_frames import PackedFrameCache, cache_footprint  # noqa: E402

GB = 1e9


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=None, help="an existing MARS-layout tree (default: build one with make_mars_scale)")
    ap.add_argument("--fraction", type=float, default=1.0, help="tracklets kept when building the tree (default all)")
    ap.add_argument("--cache-dir", default=None, help="packed frame cache folder (default: a temporary folder)")
    ap.add_argument("--cold-frames", type=int, default=3000, help="frames decoded in the measured cold pass")
    ap.add_argument("--warm-batches", type=int, default=40, help="batches read in the warm pass (batches of the cold pass, then more)")
    ap.add_argument("--warm-repeats", type=int, default=3, help="warm passes over those batches (the median is printed)")
    ap.add_argument("--cpu-batches", type=int, default=4, help="batches timed on the CPU-augmentation path, for the ratio")
    ap.add_argument("--workers", type=int, default=2, help="loader worker processes for the multi-worker measurements")
    ap.add_argument("--P", type=int, default=16)
    ap.add_argument("--K", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of this process")
    ap.add_argument("--device", default="cpu", help="cuda: also measure GPU decoding and end-to-end training")
    ap.add_argument("--train-steps", type=int, default=30, help="end-to-end training steps measured on CUDA")
    ap.add_argument("--backbone", default="resnet50", help="backbone of the end-to-end measurement")
    ap.add_argument("--e2e", action="store_true", help="measure end-to-end training on a CPU device too (a smoke check)")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = _parse(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tmp = tempfile.TemporaryDirectory(prefix="mars-scale-")
    root = args.root
    if root is None:
        from make_mars_scale import build_mars_scale

        t0 = time.perf_counter()
        s = build_mars_scale(Path(tmp.name) / "mars", fraction=args.fraction, progress=True)
        root = s["root"]
        print(f"MARS-scale tree: {s['train_tracklets']:,} train / {s['test_tracklets']:,} test tracklets, "
              f"{s['train_frames']:,} / {s['test_frames']:,} frames (links to mars-mini) in {time.perf_counter() - t0:.0f} s")
    rss0 = _rss()
    ds = load_mars(root, check_files=False)
    test = ds.query + ds.gallery
    cache_dir = args.cache_dir or str(Path(tmp.name) / "cache")
    packed = PackedFrameCache(ds.train, cache_dir)
    h, w = packed.height, packed.width
    cpu_loader = build_train_loader(ds, seq_len=args.seq_len, P=args.P, K=args.K, height=h, width=w, num_workers=0)
    batches = Uint8ClipBatches(cpu_loader.dataset, packed)
    rss_index = _rss() - rss0
    print(f"device: {device}; torch {torch.__version__}; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} (shared machine: times are indicative, ratios come from one run)")

    # ------------------------------------------------------------------ footprint
    train_len = [len(t) for t in ds.train]
    test_len = [len(t) for t in test]
    f_train = cache_footprint(train_len, h, w)
    print(f"\ncache footprint at {h}x{w} ({packed.num_frames:,} train frames, {sum(test_len):,} test frames)")
    print(f"  packed train cache (the training loader's):   {f_train / GB:8.2f} GB on disk once decoded "
          f"(sparse: {packed.disk_bytes() / GB:.3f} GB used now)")
    print(f"  per-tracklet FrameCache, train:               {cache_footprint(train_len, h, w, 'per-tracklet') / GB:8.2f} GB")
    print(f"  per-tracklet FrameCache, test (if cached):    {cache_footprint(test_len, h, w, 'per-tracklet') / GB:8.2f} GB")
    print(f"  memory: page cache to serve every warm epoch from RAM = {f_train / GB:.2f} GB (less RAM: warm reads "
          f"hit the disk); loader index (tracklet records, offsets, flags) {rss_index / 2**20:.0f} MiB resident")

    # ------------------------------------------------------------------ cold
    per_batch = args.P * args.K * args.seq_len
    cold_batches = -(-args.cold_frames // per_batch)
    n_batches = max(args.warm_batches, cold_batches)
    cpu_loader.batch_sampler.set_epoch(0)
    keys = []  # the warm batches (the cold pass reads the first of them), then the threaded cold pass's
    for k in cpu_loader.batch_sampler:
        keys.append(k)
        if len(keys) >= n_batches + cold_batches:
            break
    d0 = packed.decoded
    t0, c0 = time.perf_counter(), time.process_time()
    for k in keys[:cold_batches]:
        batches[k]
    t_cold, c_cold = time.perf_counter() - t0, time.process_time() - c0
    decoded = packed.decoded - d0
    cold_rate = decoded / t_cold
    print(f"\ncold pass: {cold_batches} batches of {per_batch} frames, {decoded:,} frames decoded in {t_cold:.1f} s")
    print(f"  measured:     {cold_rate:,.0f} frames/s wall, {decoded / c_cold:,.0f} frames per CPU-second "
          "(one worker: read the JPEG, decode, write to the cache, fill the batch)")
    cold_rate = decoded / c_cold  # per worker core, what the machine's other load does not change
    first_pass = packed.num_frames / cold_rate
    print(f"  extrapolated: first pass over the {packed.num_frames:,} MARS train frames {first_pass / 3600:.2f} h "
          f"on one worker, {first_pass / 3600 / max(args.workers, 1):.2f} h on {args.workers} workers "
          f"(test set, {sum(test_len):,} frames decoded once per evaluation: {sum(test_len) / cold_rate / 3600:.2f} h on one worker)")
    if args.workers > 0:
        fresh = keys[n_batches:n_batches + cold_batches]
        before = int(packed.filled().sum())
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in DeviceTrainLoader(batches, fresh, num_workers=args.workers):
            pass
        t_thr, c_thr = time.perf_counter() - t0, time.process_time() - c0
        n = int(packed.filled().sum()) - before
        print(f"  measured with the loader's {args.workers} threads ({n:,} other frames): {n / t_thr:,.0f} frames/s in all, "
              f"{n / c_thr:,.0f} per CPU-second used")
        gids = packed.missing(limit=args.cold_frames)
        t0 = time.perf_counter()
        n = packed.fill_parallel(args.workers, gids, chunk=128)
        t_par = time.perf_counter() - t0
        print(f"  measured over {args.workers} worker processes (fill_parallel, {n:,} other frames): "
              f"{n / t_par:,.0f} frames/s in all, {n / t_par / args.workers:,.0f} per worker (worker start-up included)")
    if device.type == "cuda":
        gids = packed.missing(limit=max(args.cold_frames, 4096))
        packed.fill_with_torchvision(device, gids[:512])  # nvjpeg start-up outside the timing
        gids = gids[512:]
        _sync(device)
        t0 = time.perf_counter()
        packed.fill_with_torchvision(device, gids, batch=512)
        _sync(device)
        t_gpu = time.perf_counter() - t0
        print(f"  measured with nvjpeg on {torch.cuda.get_device_name(device)} (file read + decode + write to the cache): "
              f"{len(gids) / t_gpu:,.0f} frames/s; first MARS train pass {packed.num_frames / (len(gids) / t_gpu) / 60:.1f} min")

    # ------------------------------------------------------------------ warm
    keys = keys[:n_batches]
    for k in keys[cold_batches:]:
        batches[k]  # decode what the warm pass reads beyond the cold batches (not timed)
    d0 = packed.decoded
    times, cpu_times, t_draw = [], [], []
    for _ in range(args.warm_repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for k in keys:
            batches[k]
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
        t0 = time.perf_counter()
        for k in keys:
            for key in k:
                _i, _idx, g = batches.clips.clip_draw(key)
                batches.clips.transform.sample_params(g)
        t_draw.append(time.perf_counter() - t0)
    assert packed.decoded == d0, "the warm pass decoded frames"
    frames = len(keys) * per_batch
    warm = frames / statistics.median(times)
    warm_cpu = frames / statistics.median(cpu_times)
    draws = frames / statistics.median(t_draw)
    print(f"\nwarm pass: {len(keys)} batches x {per_batch} frames from the cache (batch buffers reused once released), "
          f"median of {args.warm_repeats}")
    print(f"  one worker (this process, one thread): {warm:,.0f} frames/s wall, {warm_cpu:,.0f} frames per CPU-second "
          f"(target >= 10,000 per worker core); the clip draws alone: {draws:,.0f} frames/s")
    print(f"  warm / cold = {warm_cpu / cold_rate:.1f} (frames per CPU-second)")
    # the CPU-augmentation path on the same batches, warm (frames in its per-process cache), one thread
    cpu_keys = keys[:args.cpu_batches]
    for k in cpu_keys:
        for key in k:
            cpu_loader.dataset[key]  # decode into the CPU path's frame cache (not timed)
    c0 = time.process_time()
    for k in cpu_keys:
        torch.stack([cpu_loader.dataset[key][0] for key in k])
    cpu_path = len(cpu_keys) * per_batch / (time.process_time() - c0)
    print(f"  CPU-augmentation path, warm, one thread ({len(cpu_keys)} batches): {cpu_path:,.0f} frames per CPU-second; "
          f"device path / CPU path = {warm_cpu / cpu_path:.1f}")
    if args.workers > 0:
        loader = DeviceTrainLoader(batches, keys, num_workers=args.workers, pin_memory=pin_memory_for(device))
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in loader:
            pass
        t_dl, c_dl = time.perf_counter() - t0, time.process_time() - c0
        print(f"  the loader's {args.workers} threads{' (pinned buffers)' if loader.pin_memory else ''}: "
              f"{frames / t_dl:,.0f} frames/s in all = {frames / t_dl / args.workers:,.0f} per worker, "
              f"{frames / c_dl:,.0f} frames per CPU-second")

    if device.type == "cuda" or args.e2e:
        end_to_end(args, ds, packed, cpu_loader, device)
    tmp.cleanup()
    return 0


def end_to_end(args, ds, packed, cpu_loader, device) -> None:
    """Training frames/s fed by the loader against the FGRA step alone (ResNet-50, bf16 on CUDA, channels-last)."""
    from fgra_core.models.fgra import FGRA
    from fgra_core.models.losses import FGRALoss

    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = True
    model = FGRA(ds.num_train_pids, variant=8, backbone=args.backbone, weights="none").to(device).train()
    model = model.to(memory_format=torch.channels_last)
    loss_fn = FGRALoss.for_model(model).to(device)
    opt = torch.optim.Adam([p for p in list(model.parameters()) + list(loss_fn.parameters()) if p.requires_grad], lr=3e-4)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda)

    def step(clips, pids):
        opt.zero_grad(set_to_none=True)
        with amp:
            out = model(clips)
            loss, _ = loss_fn(out, pids)
        loss.backward()
        opt.step()

    steps = args.train_steps
    loader = device_loader_from(cpu_loader, packed, pin_memory=pin_memory_for(device))
    loader.set_epoch(1)
    keys = list(loader.sampler)[:steps + 5]
    clips = loader.dataset.clips
    gids = np.unique(np.concatenate([packed.offsets[i] + idx for k in keys for i, idx, _ in map(clips.clip_draw, k)]))
    missing = gids[~packed.filled()[gids]]
    if missing.size:
        packed.fill_with_torchvision(device, missing)  # the measured epoch reads a warm cache
    batch = to_device_batch(loader.dataset[keys[0]], device, loader.device_transform, channels_last=True)
    for _ in range(5):
        step(*batch)
    _sync(device)
    alone = []
    for _ in range(max(3, steps // 2)):
        t0 = time.perf_counter()
        step(*batch)
        _sync(device)
        alone.append(time.perf_counter() - t0)
    t_alone = statistics.median(alone)
    per_batch = args.P * args.K * args.seq_len
    it = iter(DeviceTrainLoader(loader.dataset, keys, num_workers=args.workers, prefetch=4,
                                pin_memory=pin_memory_for(device)))
    for _ in range(5):  # workers started, warm-up
        step(*to_device_batch(next(it), device, loader.device_transform, channels_last=True))
    _sync(device)
    t0 = time.perf_counter()
    n = 0
    for b in it:
        step(*to_device_batch(b, device, loader.device_transform, channels_last=True))
        n += 1
    _sync(device)
    t_e2e = (time.perf_counter() - t0) / n
    name = torch.cuda.get_device_name(device) if cuda else "CPU"
    print(f"\nend-to-end on {name}: {args.backbone} FGRA variant 8, {args.P}x{args.K} clips x {args.seq_len} frames of "
          f"{packed.height}x{packed.width}, {'bf16' if cuda else 'float32'}, channels-last, {args.workers} loader threads")
    print(f"  FGRA step alone (batch already on the device): {t_alone * 1e3:.1f} ms = {per_batch / t_alone:,.0f} frames/s")
    print(f"  end to end (loader + device augmentation + step), {n} steps: {t_e2e * 1e3:.1f} ms = {per_batch / t_e2e:,.0f} frames/s")
    print(f"  end-to-end / step alone = {t_alone / t_e2e:.3f} (target >= 0.8)")


if __name__ == "__main__":
    sys.exit(main())
