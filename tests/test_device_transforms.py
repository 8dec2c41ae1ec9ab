"""The batched (device) augmentation against the CPU path, given the same per-clip draws."""
import numpy as np
import pytest
import torch

from fgra_core.data.device_transforms import (
    DeviceClipTransform,
    params_to_tensor,
    pin_memory_for,
    resolve_augment_on,
    tensor_to_params,
    to_device_batch,
)
from fgra_core.data.transforms import ClipParams, ClipTransform


def _frames(b, n, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(b, n, h, w, 3), dtype=np.uint8)


def _cpu(transform, frames, params):
    return torch.stack([transform.apply(f, p) for f, p in zip(frames, params)])


def test_drawn_params_agree_with_cpu_path():
    t = ClipTransform(32, 16, train=True, flip_p=0.5, erase_p=0.5)
    params = [t.sample_params(s) for s in range(24)]
    assert any(p.flip for p in params) and not all(p.flip for p in params)
    assert any(p.erase is not None for p in params) and any(p.erase is None for p in params)
    assert len({(p.crop_top, p.crop_left) for p in params}) > 4
    frames = _frames(24, 3, 32, 16)
    got = DeviceClipTransform(t)(torch.from_numpy(frames), params_to_tensor(params))
    want = _cpu(t, frames, params)
    assert got.shape == (24, 3, 3, 32, 16) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)


def test_hand_chosen_params_crop_flip_erase():
    # frames stored at the resized size: no interpolation, so a hand-made crop is exact
    t = ClipTransform(8, 4, train=True, scale=1.5, mean=(0, 0, 0), std=(1, 1, 1))
    assert t.resized == (12, 6)
    frames = _frames(2, 2, 12, 6, seed=3)
    params = [ClipParams(3, 1, True, (2, 1, 3, 2)), ClipParams(0, 2, False, None)]
    got = DeviceClipTransform(t)(torch.from_numpy(frames), params_to_tensor(params))
    x0 = torch.from_numpy(frames[0]).permute(0, 3, 1, 2).float() / 255
    want0 = x0[:, :, 3:11, 1:5].flip(-1).clone()
    want0[:, :, 2:5, 1:3] = 0.0
    want1 = torch.from_numpy(frames[1]).permute(0, 3, 1, 2).float()[:, :, 0:8, 2:6] / 255
    torch.testing.assert_close(got[0], want0, rtol=0, atol=0)
    torch.testing.assert_close(got[1], want1, rtol=0, atol=0)
    torch.testing.assert_close(got, _cpu(t, frames, params), rtol=0, atol=1e-6)


def test_eval_transform_agrees():
    t = ClipTransform(16, 8, train=False)
    frames = _frames(3, 2, 20, 10)
    params = [t.sample_params(0)] * 3
    got = DeviceClipTransform(t)(torch.from_numpy(frames), params_to_tensor(params))
    torch.testing.assert_close(got, _cpu(t, frames, params), rtol=0, atol=1e-6)


def test_params_round_trip_and_shape_errors():
    params = [ClipParams(1, 2, True, (3, 4, 5, 6)), ClipParams(0, 0, False, None)]
    table = params_to_tensor(params)
    assert table.tolist() == [[1, 2, 1, 3, 4, 5, 6], [0, 0, 0, 0, 0, 0, 0]]
    assert tensor_to_params(table) == params
    dt = DeviceClipTransform(ClipTransform(8, 4))
    with pytest.raises(ValueError, match=r"expected uint8 frames \[B, N, H, W, 3\], got shape \(2, 8, 4, 3\)"):
        dt(torch.zeros(2, 8, 4, 3, dtype=torch.uint8), table)
    with pytest.raises(ValueError, match=r"expected clip parameters \[3, 7\], got shape \(2, 7\)"):
        dt(torch.zeros(3, 1, 8, 4, 3, dtype=torch.uint8), table)


def test_resolve_augment_on_and_pinning():
    assert resolve_augment_on("auto", "cuda") == "device"
    assert resolve_augment_on("auto", "cuda", frames_shared=False) == "cpu"  # no cache_dir: worker processes decode
    assert resolve_augment_on("device", "cuda", frames_shared=False) == "device"
    assert resolve_augment_on("auto", "cpu") == "cpu"
    assert resolve_augment_on("device", "cpu") == "device"
    with pytest.raises(ValueError, match="data.augment_on must be one of auto, cpu, device, got 'gpu'"):
        resolve_augment_on("gpu", "cpu")
    assert pin_memory_for("cpu") is False
    assert pin_memory_for("cuda") is torch.cuda.is_available()


def test_to_device_batch_both_paths_on_cpu():
    t = ClipTransform(8, 4, train=True)
    frames = _frames(2, 3, 9, 4)
    params = [t.sample_params(s) for s in range(2)]
    pids = torch.tensor([5, 7])
    u8 = (torch.from_numpy(frames), params_to_tensor(params), pids, torch.tensor([0, 1]))
    clips, p = to_device_batch(u8, torch.device("cpu"), DeviceClipTransform(t), channels_last=True)
    torch.testing.assert_close(clips, _cpu(t, frames, params), rtol=0, atol=1e-6)
    assert p.tolist() == [5, 7]
    assert clips.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    cpu_batch = (_cpu(t, frames, params), pids, torch.tensor([0, 1]))
    clips2, _ = to_device_batch(cpu_batch, torch.device("cpu"))
    assert torch.equal(clips2, cpu_batch[0])
    with pytest.raises(ValueError, match="needs a DeviceClipTransform"):
        to_device_batch(u8, torch.device("cpu"))
