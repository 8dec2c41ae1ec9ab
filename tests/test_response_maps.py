"""The response-map functions on arrays and figures, the feature cache, and the explorer's wiring."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fgra_core.utils.errors import ConfigError, FGRAError
from fgra_core.viz import response_maps as rm

REPO = Path(__file__).resolve().parents[1]
H, W = 128, 64


@pytest.fixture(scope="module")
def bundle():
    return rm.load_model("")


@pytest.fixture(scope="module")
def dataset():
    return rm.default_dataset(smoke=True)


def _count_backbone(bundle, monkeypatch):
    calls = []
    original = bundle.model.backbone_features

    def counting(frames):
        calls.append(int(frames.shape[0]))
        return original(frames)

    monkeypatch.setattr(bundle.model, "backbone_features", counting)
    return calls


# --------------------------------------------------------------------------- sampling and arrays


def test_sample_indices_start_at_reference_and_reach_the_end():
    idx = rm.sample_indices(20, 5)
    assert idx.tolist() == [0, 5, 10, 14, 19]
    assert rm.sample_indices(20, 4, reference=8).tolist()[0] == 8
    assert rm.sample_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]   # short sequences repeat frames
    assert np.all(np.diff(rm.sample_indices(37, 9)) >= 0)
    with pytest.raises(ValueError):
        rm.sample_indices(0, 4)


def test_upsample_and_overlay_peak_where_the_map_peaks():
    response = np.zeros((8, 4), np.float32)
    response[6, 1] = 1.0                              # feature cell (row 6, col 1) = pixels [96:112, 16:32]
    heat = rm.upsample_map(response, (H, W))
    assert heat.shape == (H, W)
    y, x = np.unravel_index(np.argmax(heat), heat.shape)
    assert 96 <= y < 112 and 16 <= x < 32
    frame = np.full((H, W, 3), 128, np.uint8)
    out = rm.overlay(frame, response, alpha=0.6)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    warmth = out[..., 0].astype(int) - out[..., 2].astype(int)   # jet: red where high, blue where low
    y, x = np.unravel_index(np.argmax(warmth), warmth.shape)
    assert 96 <= y < 112 and 16 <= x < 32
    assert warmth[8, 50] < 0                          # far from the peak: blue
    # a flat map is drawn as the lowest colour, never as NaN
    assert rm.overlay(frame, np.ones((8, 4)), alpha=0.5).dtype == np.uint8


def test_resize_frames_and_png_bytes():
    frames = np.random.default_rng(0).integers(0, 256, (3, 64, 32, 3), dtype=np.uint8)
    out = rm.resize_frames(frames, H, W)
    assert out.shape == (3, H, W, 3) and out.dtype == np.uint8
    png = rm.png_bytes(out[0], scale=2)
    assert Image.open(io.BytesIO(png)).size == (2 * W, 2 * H)


# --------------------------------------------------------------------------- the model's responses


def _aligned_model(variant=8):
    """The default model with an identity template projection and a neutral GAM BatchNorm, so that
    the response of region r is sigmoid(t_r * F) averaged over channels."""
    b = rm.load_model("", default={"variant": variant})
    m = b.model
    C = m.out_channels
    with torch.no_grad():
        m.template_conv.weight.copy_(torch.eye(C).reshape(C, C, 1, 1))
        m.template_conv.bias.zero_()
        m.gam.bn.reset_parameters()
        m.gam.bn.reset_running_stats()
    return b


@pytest.mark.parametrize("region", [0, 2, 3])
def test_response_of_region_r_peaks_where_the_region_reappears(region):
    """Frame 0 shows pattern v in region r's rows and -v elsewhere; frame n shows v at one cell only.
    The response of region r must peak at that cell in every frame."""
    b = _aligned_model()
    C, N, h, w = b.model.out_channels, 5, 8, 4
    v = torch.from_numpy(np.random.default_rng(region).choice([-1.0, 1.0], C).astype(np.float32))
    fmaps = (-v).view(1, C, 1, 1).repeat(N, 1, h, w)
    top, bottom = (int(a) for a in b.model.region_boxes(4, h)[region])
    fmaps[0, :, top:bottom, :] = v.view(C, 1, 1)
    cells = [(1, 3), (6, 0), (4, 2), (7, 1)]
    for n, (y, x) in enumerate(cells, start=1):
        fmaps[n, :, y, x] = v
    frames = np.zeros((N, H, W, 3), np.uint8)
    data = rm.response_from_features(b.model, fmaps, frames, np.arange(N), "constructed")
    assert data.maps.shape == (N, 4, h, w)
    assert data.temporal_scores.shape == (N, 4)
    assert data.spatial_weights.shape == (4,)
    np.testing.assert_allclose(data.temporal_scores.sum(axis=0), 1.0, rtol=1e-5)
    np.testing.assert_allclose(data.spatial_weights.sum(), 1.0, rtol=1e-5)
    assert data.boxes[region] == (top * H / h, bottom * H / h)
    m = data.maps[:, region]
    assert np.all((m > 0) & (m < 1))
    assert top <= np.unravel_index(np.argmax(m[0]), (h, w))[0] < bottom
    for n, cell in enumerate(cells, start=1):
        assert np.unravel_index(np.argmax(m[n]), (h, w)) == cell
    # the overlay drawn from it is warmest on that cell's pixels
    lo, hi = m.min(), m.max()
    y, x = cells[0]
    out = rm.overlay(np.full((H, W, 3), 128, np.uint8), m[1], vmin=lo, vmax=hi)
    warmth = out[..., 0].astype(int) - out[..., 2].astype(int)
    py, px = np.unravel_index(np.argmax(warmth), warmth.shape)
    assert y * 16 <= py < (y + 1) * 16 and x * 16 <= px < (x + 1) * 16


def test_variants_without_alignment_have_no_maps_and_without_sa_no_weights():
    with pytest.raises(ConfigError, match="no region alignment"):
        b = rm.load_model("", default={"variant": 3})
        rm.compute_response(b, np.zeros((4, H, W, 3), np.uint8), 4)
    b6 = rm.load_model("", default={"variant": 6})
    data = rm.compute_response(b6, np.zeros((6, H, W, 3), np.uint8), 3)
    assert data.spatial_weights is None and data.maps.shape == (3, 4, 8, 4)
    fig = rm.draw_spatial_weights(data)
    assert "no spatial attention" in " ".join(t.get_text() for t in fig.axes[0].texts)


# --------------------------------------------------------------------------- the cache


def test_cache_hit_means_no_backbone_call(bundle, dataset, monkeypatch):
    calls = _count_backbone(bundle, monkeypatch)
    cache = rm.FeatureCache(bundle)
    src = rm.sources_of(dataset)
    first = next(iter(src.values()))
    d1 = rm.compute_response(bundle, first, 4, cache=cache)
    assert calls == [4] and cache.backbone_calls == 1 and cache.frames_computed == 4
    d2 = rm.compute_response(bundle, first, 4, cache=cache)           # same frames: no backbone
    assert calls == [4]
    np.testing.assert_array_equal(d1.maps, d2.maps)
    rm.compute_response(bundle, first, 2, cache=cache)                # first and last frames: cached
    assert calls == [4]
    rm.compute_response(bundle, first, 4, reference=1, cache=cache)   # only the new frames are computed
    assert len(calls) == 2 and calls[1] == len(set(rm.sample_indices(first.length, 4, 1)) - set(d1.indices.tolist()))
    second = list(src.values())[1]
    rm.compute_response(bundle, second, 4, cache=cache)
    assert len(calls) == 3 and len(cache) == 2
    # the cached head output equals a fresh full forward of the same clip
    with torch.no_grad():
        x = cache.transform(rm.resize_frames(first.load(d1.indices), H, W))
        ref = bundle.model.head(bundle.model.backbone_features(x).unsqueeze(0), return_maps=True)
    np.testing.assert_allclose(d1.maps, ref.maps[0].numpy(), rtol=1e-5, atol=1e-6)


def test_cache_drops_the_least_recently_used_sequence(bundle):
    cache = rm.FeatureCache(bundle, max_sources=2)
    frames = np.random.default_rng(0).integers(0, 256, (4, H, W, 3), dtype=np.uint8)
    for k in range(3):
        cache.features(rm.as_source(frames, key=f"s{k}"), [0, 1])
    assert len(cache) == 2 and not cache.cached(rm.as_source(frames, key="s0"), [0])
    # arrays without a key are told apart by content, not by object identity
    assert rm.as_source(frames).key == rm.as_source(frames.copy()).key
    assert rm.as_source(frames).key != rm.as_source(255 - frames).key
    with pytest.raises(IndexError):
        cache.features(rm.as_source(frames, key="s1"), [9])


# --------------------------------------------------------------------------- figures


def test_figures_have_the_expected_panels(bundle, dataset, tmp_path):
    data = rm.compute_response(bundle, dataset.query[0], 5)
    assert data.frames.shape == (5, H, W, 3) and data.indices[0] == 0
    fig = rm.draw_fig5(data)
    assert len(fig.axes) == data.num_regions * (data.num_frames + 1) + 1   # + the colour bar
    assert [t.get_text() for t in fig.axes[-1].get_yticklabels()] == ["0", "0.5", "1"]   # one fixed scale
    stretched = rm.draw_fig5(data, scale="row")
    assert [t.get_text() for t in stretched.axes[-1].get_yticklabels()] == ["row\nmin", "row\nmax"]
    assert fig.axes[0].get_title().startswith("region 0, w=")           # its spatial weight
    fig = rm.draw_fig5(data, regions=[1])
    assert len(fig.axes) == data.num_frames + 1 + 1
    assert fig.axes[0].get_title().startswith("region 1, w=0.25\nmap ")
    assert len(rm.draw_region_row(data, 2, current=3).axes) == data.num_frames + 1
    assert len(rm.draw_reference(data).axes[0].patches) == data.num_regions
    t = rm.draw_temporal_scores(data, region=1, current=2)
    assert len(t.axes[0].patches) == data.num_frames
    assert len(rm.draw_temporal_scores(data).axes[0].patches) == data.num_frames * data.num_regions
    assert len(rm.draw_spatial_weights(data, region=0).axes[0].patches) == data.num_regions
    assert len(rm.draw_scores(data).axes) == 2
    strip = rm.overlay_strip(data, 1, current=2)
    assert strip.shape[0] == H and strip.shape[1] == (data.num_frames + 1) * W + data.num_frames * 4
    assert not np.array_equal(rm.overlay_strip(data, 1, current=2), rm.overlay_strip(data, 1, current=3))
    with pytest.raises(IndexError):
        rm.draw_region_row(data, data.num_regions)
    png = rm.figure_to_png(rm.draw_scores(data))
    assert png.startswith(b"\x89PNG")
    files = rm.save_figure(rm.draw_fig5(data), tmp_path / "figs" / "fig5")
    assert sorted(p.name for p in files) == ["fig5.pdf", "fig5.png"]
    assert all(p.stat().st_size > 1000 for p in files)
    assert (tmp_path / "figs" / "fig5.pdf").read_bytes().startswith(b"%PDF")


# --------------------------------------------------------------------------- sources


def test_frames_from_files_and_folder_in_numeric_order(tmp_path):
    files = []
    for i in (10, 2, 1):
        img = np.full((40, 20, 3), i * 20, np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        files.append((f"f{i}.png", buf.getvalue()))
        (tmp_path / f"f{i}.png").write_bytes(buf.getvalue())
    arr = rm.frames_from_files(files)
    assert arr.shape == (3, 40, 20, 3) and [int(a[0, 0, 0]) for a in arr] == [20, 40, 200]
    np.testing.assert_array_equal(rm.frames_from_folder(tmp_path), arr)
    with pytest.raises(FGRAError):
        rm.frames_from_folder(tmp_path / "missing")
    with pytest.raises(FGRAError):
        rm.frames_from_files([("bad.png", b"not an image")])


# --------------------------------------------------------------------------- run folders


def test_load_model_from_a_run_folder(tmp_path):
    from fgra_core.config.schema import dump_config, load_config, to_dict

    cfg = load_config(None, {"data.height": H, "data.width": W, "model.backbone": "resnet18",
                             "model.weights": "none", "model.variant": 6, "run_dir": str(tmp_path / "run")})
    from fgra_core.engine.builders import build_model

    torch.manual_seed(3)
    model = build_model(cfg, 5)
    run = tmp_path / "runs" / "r1"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(cfg))
    torch.save({"model": model.state_dict(), "epoch": 2}, run / "checkpoints" / "last.pt")
    b = rm.load_model(run)
    assert (b.height, b.width, b.run_dir) == (H, W, str(run))
    assert not b.model.training and b.model.variant.index == 6 and "epoch 2" in b.label
    for k, v in model.state_dict().items():
        torch.testing.assert_close(b.model.state_dict()[k], v)
    assert rm.load_model(run / "checkpoints" / "last.pt").run_dir == str(run)
    assert list(rm.find_runs(tmp_path / "runs").values()) == [str(run)]
    # config only in results.json
    (run / "config.yaml").unlink()
    (run / "results.json").write_text(json.dumps({"config": to_dict(cfg)}))
    assert rm.load_model(run).model.variant.index == 6
    with pytest.raises(FGRAError, match="no checkpoint"):
        rm.load_model(tmp_path)
    with pytest.raises(FGRAError, match="does not exist"):
        rm.load_model(tmp_path / "nope")
    with pytest.raises(ConfigError):
        rm.load_model("", default={"varient": 8})


# --------------------------------------------------------------------------- the explorer's wiring


def test_explorer_observers_update_views_and_readouts_without_backbone(bundle, dataset, monkeypatch):
    from fgra_core.viz.widgets import ResponseExplorer

    calls = _count_backbone(bundle, monkeypatch)
    ex = ResponseExplorer(dataset, model=bundle, num_frames=4, max_sources=3)
    assert ex.status.value == ""
    assert len(ex.source.options) == 3 and ex.frame.max == 3
    assert [v for _, v in ex.region.options] == [0, 1, 2, 3]
    assert len(calls) == 1
    before = {name: getattr(ex, name).value for name in ("frame_image", "strip_image", "temporal_image", "readout")}
    assert "class='fgra-ro-frame'>0<" in ex.readout.value

    ex.frame.value = 2                     # observers fire synchronously
    assert ex.readout_values()["frame"] == 2
    assert "class='fgra-ro-frame'>2<" in ex.readout.value
    assert f"class='fgra-ro-sequence-frame'>{int(ex.data.indices[2])}<" in ex.readout.value
    for name in ("frame_image", "strip_image", "temporal_image", "readout"):
        assert getattr(ex, name).value != before[name], name
    assert f"{ex.data.temporal_scores[2, 0]:.4f}" in ex.readout.value

    ref = ex.reference_image.value
    ex.region.value = 3
    assert "class='fgra-ro-region'>3<" in ex.readout.value
    assert ex.reference_image.value != ref
    assert f"{ex.data.temporal_scores[2, 3]:.4f}" in ex.readout.value
    assert len(calls) == 1                 # frame and region changes never rerun the backbone

    ex.num_frames.value = 2                # first and last frames: already cached
    assert ex.frame.max == 1 and ex.frame.value == 1 and len(calls) == 1
    ex.source.value = ex.source.options[1]
    assert len(calls) == 2 and ex.status.value == ""
    ex.source.value = ex.source.options[0]
    assert len(calls) == 2                 # back to a cached sequence

    label = ex.add_source("upload: 3 frames", np.zeros((3, 64, 32, 3), np.uint8))
    assert ex.source.value == label and ex.data.frames.shape[1:3] == (H, W) and ex.status.value == ""
    ex.folder.value = "/does/not/exist"
    ex._on_folder(None)
    assert "does not exist" in ex.status.value   # shown, not raised


def test_explorer_switches_models(dataset, tmp_path):
    from fgra_core.viz.widgets import DEFAULT_LABEL, ResponseExplorer

    ex = ResponseExplorer(dataset, model=None, models={"two regions": ""}, num_frames=3, max_sources=2)
    assert ex.model_choice.value == DEFAULT_LABEL
    assert ex.readout_values()["region"] == 0
    ex.region.value = 3
    ex.model_choice.value = "two regions"  # "" is the default model again, but a separate cache
    assert ex.status.value == "" and ex.readout_values()["region"] == 3


# --------------------------------------------------------------------------- the notebook


def test_notebook_is_paired_parameterised_and_stripped():
    nb = json.loads((REPO / "notebooks" / "response_maps.ipynb").read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "py:percent" in nb["metadata"]["jupytext"]["formats"]
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    src = "".join(tagged[0]["source"])
    for name in ("run_dir", "figures_dir", "smoke"):
        assert f"{name}:" in src
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code)
    py = (REPO / "notebooks" / "response_maps.py").read_text()
    assert src.splitlines()[0] in py


@pytest.mark.slow
def test_notebook_smoke_run_writes_the_figures(tmp_path):
    pm = pytest.importorskip("papermill")
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "response_maps.ipynb"), str(out), kernel_name="python3",
                        parameters={"run_dir": "", "figures_dir": str(tmp_path / "figs"), "smoke": True},
                        progress_bar=False, cwd=str(tmp_path))
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == ["fig5_alignment_scores.pdf", "fig5_alignment_scores.png",
                     "fig5_response_maps.pdf", "fig5_response_maps.png"]
    with pytest.raises(pm.PapermillExecutionError, match="unknown notebook parameter"):
        pm.execute_notebook(str(REPO / "notebooks" / "response_maps.ipynb"), str(tmp_path / "bad.ipynb"),
                            kernel_name="python3", parameters={"smok": True}, progress_bar=False, cwd=str(tmp_path))
