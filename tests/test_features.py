"""Test-time feature extraction: one backbone pass per frame, same features as the clip loop."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fgra_core.eval.features import ExtractionStats, extract_features, extract_features_naive


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread (two threads on a busy 2-core machine make each op ~10 ms)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyModel(nn.Module):
    """backbone: a conv over each frame; head: mean over frames and space, plus a reference-frame
    term so that the clip's frame order matters. Counts the frames its backbone sees."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(5)  # eval mode must be used (running statistics)
        self.frames_seen = 0
        self.calls = 0
        self.max_batch = 0

    def backbone_features(self, frames):
        self.frames_seen += frames.shape[0]
        self.calls += 1
        self.max_batch = max(self.max_batch, frames.shape[0])
        return torch.relu(self.bn(self.conv(frames)))

    def head(self, fmaps):  # [B, N, C, h, w] -> features [B, 2C]
        pooled = fmaps.mean(dim=(3, 4))
        return type("Out", (), {"features": torch.cat([pooled.mean(1), pooled[:, 0]], dim=1)})()


class Track:
    def __init__(self, frames, name):
        self.frames, self.name = frames, name

    def __len__(self):
        return self.frames.shape[0]


def _close(a, b, tol=1e-6):
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=tol, rtol=tol)


def transform(frames):
    return torch.as_tensor(frames).permute(0, 3, 1, 2).float() / 255.0


def _tracks(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [Track(rng.integers(0, 256, (n, 8, 6, 3), dtype=np.uint8), f"t{i}") for i, n in enumerate(lengths)]


LENGTHS = [1, 3, 5, 6, 7, 9, 12, 20, 33]  # shorter than, equal to and longer than seq_len


def _run(model, tracks, fn=extract_features, **kw):
    return fn(model, tracks, seq_len=6, transform=transform, device="cpu", show_progress=False, return_stats=True, **kw)


def test_one_backbone_forward_per_frame():
    model = TinyModel()
    tracks = _tracks(LENGTHS)
    feats, stats = _run(model, tracks, frame_budget=16)
    assert isinstance(stats, ExtractionStats)
    assert feats.shape == (len(tracks), 10) and feats.dtype == torch.float32
    assert stats.test_frames == sum(LENGTHS)
    assert stats.backbone_frames == model.frames_seen == sum(LENGTHS)
    assert stats.forwards_per_frame == 1.0
    assert model.max_batch <= 16  # never more than frame_budget frames at once


def test_same_features_as_the_clip_loop():
    model = TinyModel()
    tracks = _tracks(LENGTHS, seed=1)
    fast, fast_stats = _run(model, tracks, frame_budget=10)
    naive, naive_stats = _run(model, tracks, fn=extract_features_naive)
    _close(fast, naive, 1e-6)
    assert fast_stats.clips == naive_stats.clips
    # the clip loop runs seq_len frames per clip: about twice per frame at stride seq_len // 2
    assert naive_stats.backbone_frames == 6 * naive_stats.clips
    assert naive_stats.forwards_per_frame > 1.5


def test_chunking_does_not_change_features():
    tracks = _tracks([2, 6, 7, 40, 11], seed=2)
    ref, _ = _run(TinyModel(), tracks, frame_budget=1000)
    for budget, clip_batch in [(3, None), (1, 1), (7, 2), (64, 5)]:
        model = TinyModel()
        feats, stats = _run(model, tracks, frame_budget=budget, clip_batch=clip_batch)
        _close(feats, ref, 1e-6)
        assert stats.forwards_per_frame == 1.0 and model.max_batch <= budget


def test_short_tracklets_and_stride():
    model = TinyModel()
    tracks = _tracks([1, 2, 4], seed=3)
    feats, stats = _run(model, tracks, frame_budget=5)
    naive, _ = _run(model, tracks, fn=extract_features_naive)
    _close(feats, naive, 1e-6)
    assert stats.clips == 3 and stats.backbone_frames == 7  # one clip each, every frame once
    # a one-frame tracklet: its clip repeats the frame, so its feature is that frame's feature
    one = tracks[0]
    single = extract_features(model, [one], seq_len=1, transform=transform, show_progress=False)
    _close(feats[0], single[0], 1e-6)
    # stride 1: many more clips, still one forward per frame
    f1, s1 = _run(model, _tracks([20], seed=4), frame_budget=8, stride=1)
    n1, _ = _run(model, _tracks([20], seed=4), fn=extract_features_naive, stride=1)
    _close(f1, n1, 1e-6)
    assert s1.clips == 15 and s1.forwards_per_frame == 1.0


def test_model_mode_restored_and_progress_bar_runs():
    model = TinyModel().train()
    feats = extract_features(model, _tracks([7, 8]), seq_len=6, transform=transform, device="cpu", show_progress=True)
    assert model.training and feats.shape == (2, 10)
    ref = extract_features(TinyModel(), _tracks([7, 8]), seq_len=6, transform=transform, show_progress=False)
    _close(feats, ref)  # BatchNorm ran in eval mode


def test_in_memory_frames_are_the_default_loader_and_loader_is_used():
    tracks = _tracks([9, 4], seed=5)
    calls = []

    def loader(t):
        calls.append(t.name)
        return t.frames

    a = extract_features(TinyModel(), tracks, transform=transform, load_frames=loader, show_progress=False)
    b = extract_features(TinyModel(), tracks, transform=transform, show_progress=False)
    assert calls == ["t0", "t1"]
    _close(a, b)


def test_long_tracklet_memory_is_bounded():
    """A 920-frame tracklet with a small budget: the backbone never sees more than the budget."""
    model = TinyModel()
    tracks = _tracks([920], seed=6)
    feats, stats = _run(model, tracks, frame_budget=64)
    assert model.max_batch <= 64 and stats.backbone_calls == 15 and stats.forwards_per_frame == 1.0


def test_real_fgra_model_if_available():
    fgra = pytest.importorskip("fgra_core.models.fgra")
    try:
        model = fgra.FGRA(num_classes=None, variant=8, backbone="resnet18", weights="none")
    except Exception as err:  # the model's own constructor options are not this module's business
        pytest.skip(f"FGRA model not constructible here: {err}")
    rng = np.random.default_rng(7)
    tracks = [Track(rng.integers(0, 256, (n, 128, 64, 3), dtype=np.uint8), f"r{n}") for n in (4, 9)]
    fast, stats = _run(model, tracks, frame_budget=8)
    naive, _ = _run(model, tracks, fn=extract_features_naive)
    _close(fast, naive, 1e-4)
    assert stats.forwards_per_frame == 1.0
