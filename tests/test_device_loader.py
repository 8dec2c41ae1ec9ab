"""The uint8 device-augmentation loader: same batches and draws as the CPU path, pinning, the trainer hook."""
import numpy as np
import pytest
import torch
from test_faults_runs import tiny_run
from test_packed_frames import make_tracklets

from fgra_core.config.schema import load_config
from fgra_core.data.device_loader import DeviceTrainLoader, Uint8ClipBatches, device_loader_from
from fgra_core.data.device_transforms import DeviceClipTransform
from fgra_core.data.loaders import TrainClipDataset, build_train_loader
from fgra_core.data.packed_frames import PackedFrameCache
from fgra_core.data.records import Tracklet
from fgra_core.data.transforms import ClipTransform
from fgra_core.engine.builders import build_data, build_train_loader_for
from fgra_core.engine.distributed import DistInfo
from fgra_core.train import run
from fgra_core.utils.errors import DatasetError


def _cpu_batch(loader, keys):
    items = [loader.dataset[k] for k in keys]
    return torch.stack([c for c, _, _ in items]), [p for _, p, _ in items]


@pytest.mark.parametrize("source", ["packed", "frame-cache", "in-memory"])
def test_device_batches_equal_cpu_batches(tmp_path, source):
    if source == "in-memory":
        rng = np.random.default_rng(1)
        tracklets = [Tracklet(frames=rng.integers(0, 256, (n, 16, 8, 3), dtype=np.uint8), pid=i // 2, camid=i % 2)
                     for i, n in enumerate((4, 7, 3, 5, 6, 2))]
    else:
        tracklets = make_tracklets(tmp_path / "img", lengths=(4, 7, 3, 5, 6, 2))
        tracklets = [Tracklet(t.frames, pid=i // 2, camid=i % 2, name=t.name) for i, t in enumerate(tracklets)]
    transform = ClipTransform(16, 8, train=True)
    cpu = build_train_loader(tracklets, seq_len=3, P=3, K=2, num_workers=0, seed=4, transform=transform)
    packed = PackedFrameCache(tracklets, tmp_path / "cache") if source == "packed" else None
    dev = device_loader_from(cpu, packed)
    assert isinstance(dev, DeviceTrainLoader) and dev.pin_memory is False and dev.num_workers == 0
    assert len(dev) == len(cpu)
    for epoch in (0, 1):
        cpu.set_epoch(epoch)
        dev.set_epoch(epoch)
        batches = list(dev)
        keys = list(cpu.batch_sampler)
        assert len(batches) == len(keys) > 0
        for (frames, params, pids, cams), k in zip(batches, keys):
            assert frames.dtype == torch.uint8 and frames.shape == (6, 3, 16, 8, 3)
            want, want_pids = _cpu_batch(cpu, k)
            assert pids.tolist() == want_pids
            assert cams.tolist() == [tracklets[i].camid for i, _, _ in k]
            torch.testing.assert_close(dev.device_transform(frames, params), want, rtol=0, atol=1e-6)
    if packed is not None:
        assert packed.decoded > 0
        before = packed.decoded
        list(dev)  # the same epoch again: every frame comes from the cache
        assert packed.decoded == before


def test_device_batches_with_workers_match(tmp_path):
    tracklets = make_tracklets(tmp_path / "img", lengths=(4, 7, 3, 5))
    tracklets = [Tracklet(t.frames, pid=i // 2, camid=0, name=t.name) for i, t in enumerate(tracklets)]
    cpu = build_train_loader(tracklets, seq_len=2, P=2, K=2, num_workers=0, height=16, width=8)
    packed = PackedFrameCache(tracklets, tmp_path / "cache")
    one = [tuple(x.clone() for x in b) for b in device_loader_from(cpu, packed)]
    cpu2 = build_train_loader(tracklets, seq_len=2, P=2, K=2, num_workers=2, height=16, width=8)
    two = list(device_loader_from(cpu2, PackedFrameCache(tracklets, tmp_path / "cache")))
    assert len(one) == len(two)
    for a, b in zip(one, two):
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_mixed_frame_sizes_without_packed_cache(tmp_path):
    a = make_tracklets(tmp_path / "a", lengths=(3,), h=16, w=8)
    b = make_tracklets(tmp_path / "b", lengths=(3,), h=20, w=8, seed=1)
    tracklets = [Tracklet(a[0].frames, 0, 0, name="small"), Tracklet(b[0].frames, 0, 1, name="large")]
    clips = TrainClipDataset(tracklets, seq_len=2, transform=ClipTransform(16, 8))
    batches = Uint8ClipBatches(clips)
    with pytest.raises(DatasetError, match="frames of tracklet large are 20x8 but the batch holds 16x8 frames"):
        batches[[(0, 0, 0), (1, 0, 1)]]
    # the packed cache stores every frame at one size
    packed = Uint8ClipBatches(clips, PackedFrameCache(tracklets, tmp_path / "cache"))
    assert packed[[(0, 0, 0), (1, 0, 1)]][0].shape == (2, 2, 16, 8, 3)


def test_builder_choice_and_pinning(tmp_path, monkeypatch):
    cfg = load_config(tiny_run(tmp_path / "run"))
    data = build_data(cfg)
    assert not isinstance(build_train_loader_for(cfg, data, DistInfo(), "cpu"), DeviceTrainLoader)
    cfg.data.augment_on = "device"
    loader = build_train_loader_for(cfg, data, DistInfo(), "cpu")
    assert isinstance(loader, DeviceTrainLoader) and loader.pin_memory is False
    assert isinstance(loader.device_transform, DeviceClipTransform)
    # on a CUDA machine: pinned host batches (CUDA faked here; nothing is moved)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    cfg.data.augment_on = "auto"
    loader = build_train_loader_for(cfg, data, DistInfo(), torch.device("cuda"))
    assert isinstance(loader, DeviceTrainLoader) and loader.pin_memory is True
    cfg.data.augment_on = "cpu"
    loader = build_train_loader_for(cfg, data, DistInfo(), torch.device("cuda"))
    assert not isinstance(loader, DeviceTrainLoader) and loader.pin_memory is True


def test_builder_on_path_frames_uses_the_packed_cache(tmp_path, mars_mini, monkeypatch):
    cfg = load_config(tiny_run(tmp_path / "run", data={"dataset": "mars", "root": str(mars_mini),
                                                       "height": 256, "width": 128}))
    data = build_data(cfg)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    # CUDA, no cache_dir: the CPU path (its worker processes decode in parallel)
    assert not isinstance(build_train_loader_for(cfg, data, DistInfo(), "cuda"), DeviceTrainLoader)
    monkeypatch.undo()
    cfg.data.cache_dir = str(tmp_path / "cache")
    cfg.data.augment_on = "device"
    loader = build_train_loader_for(cfg, data, DistInfo(), "cpu")
    assert isinstance(loader, DeviceTrainLoader) and loader.dataset.packed is not None
    assert loader.dataset.packed.num_frames == sum(len(t) for t in data.dataset.train)
    loader.set_epoch(0)
    frames, params, pids, _ = next(iter(loader))
    assert frames.shape == (6, 3, 256, 128, 3) and params.shape == (6, 7)


def test_unknown_augment_on_is_a_config_error(tmp_path):
    from fgra_core.utils.errors import ConfigError
    with pytest.raises(ConfigError, match="data.augment_on: expected one of 'auto', 'cpu', 'device', got 'gpu'"):
        load_config(tiny_run(tmp_path / "run", data={"augment_on": "gpu"}))


def test_training_run_augmenting_on_the_device_path(tmp_path):
    res = run(tiny_run(tmp_path / "run", data={"augment_on": "device"}, train={"epochs": 1}), show_progress=False)
    assert res["status"] == "finished" and res["history"][0]["steps"] == 2
    assert np.isfinite(res["history"][0]["total"])


def test_threaded_loader_stops_early_and_buffers(tmp_path):
    from fgra_core.data.device_loader import host_buffer
    tracklets = make_tracklets(tmp_path / "img", lengths=(4, 7, 3, 5))
    tracklets = [Tracklet(t.frames, pid=i // 2, camid=0, name=t.name) for i, t in enumerate(tracklets)]
    cpu = build_train_loader(tracklets, seq_len=2, P=2, K=2, num_workers=2, height=16, width=8)
    dev = device_loader_from(cpu, PackedFrameCache(tracklets, tmp_path / "cache"), prefetch=1)
    it = iter(dev)
    first = next(it)
    it.close()  # the trainer leaves an epoch early (train.iters_per_epoch): the threads are joined
    assert first[0].shape == (4, 2, 16, 8, 3)
    big = host_buffer((4, 1024, 1024), pin_memory=False)  # 4 MiB: huge-page-backed map
    assert big.dtype == torch.uint8 and big.shape == (4, 1024, 1024)
    big.fill_(7)
    assert int(big.sum()) == 7 * 4 * 1024 * 1024
    with pytest.raises(ValueError, match=r"expected a uint8 batch buffer of shape \(4, 2, 16, 8, 3\)"):
        dev.dataset.load(list(dev.sampler)[0], torch.empty(4, 2, 8, 16, 3, dtype=torch.uint8))


def test_host_buffer_pool_reuses_only_released_buffers():
    from fgra_core.data.device_loader import HostBufferPool
    pool = HostBufferPool(max_buffers=2)
    a = pool.get((2, 3))
    b = pool.get((2, 3))
    assert a.data_ptr() != b.data_ptr()  # a is still alive
    a.fill_(1)
    view = a[0]  # a view keeps the buffer in use
    ptr_a = a.data_ptr()
    del a
    c = pool.get((2, 3))
    assert c.data_ptr() not in (ptr_a, b.data_ptr())
    assert int(view.sum()) == 3
    del view
    d = pool.get((2, 3))
    assert d.data_ptr() == ptr_a  # released: reused
    assert pool.get((4,)).shape == (4,)
