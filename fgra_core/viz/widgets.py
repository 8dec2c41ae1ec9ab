"""An ipywidgets explorer of FGRA's region responses (the paper's Fig. 5, interactively).

Controls: a sequence (a dataset tracklet, uploaded frames or a folder of frames), a model (the
untrained default or a run folder's checkpoint), the number of sampled frames, a frame and a
region. Views: the reference frame with its N_s region boxes (the chosen one red), the chosen
region's response map on the chosen frame (large) and on every sampled frame (one Fig.-5 row),
the temporal alignment scores and the spatial weights, and a readout of the current values.

The widget only wires controls to the pure functions of :mod:`fgra_core.viz.response_maps`. The
backbone runs once per frame and model (:class:`~fgra_core.viz.response_maps.FeatureCache`); a change
of frame or region only redraws, a change of the number of frames reruns the head.
"""
from __future__ import annotations

import html
import os
import traceback
from typing import Mapping

import ipywidgets as W
import numpy as np

from fgra_core.viz import response_maps as rm
from fgra_core.viz.draw import mark_part

__all__ = ["ResponseExplorer", "explore"]

DEFAULT_LABEL = "default (untrained)"


def _image(css: str) -> W.Image:
    img = W.Image(format="png", layout=W.Layout(flex="0 0 auto", align_self="flex-start"))
    img.add_class(css)
    return img


def _set_png(img: W.Image, png: bytes, width: int) -> None:
    """Show PNG bytes at ``width`` CSS pixels (an unsized image would stretch to its box)."""
    img.layout.width = f"{int(width)}px"
    img.value = png


class ResponseExplorer:
    """Interactive view of one sequence's region responses.

    Args:
        sources: a ``VideoDataset`` (its query and gallery tracklets are offered), or a mapping
            ``{label: Tracklet | uint8 array [T, H, W, 3] | folder | FrameSource}``.
        model: the first model shown: a :class:`~fgra_core.viz.response_maps.ModelBundle`, a run folder,
            or ``None`` / ``""`` for the untrained default.
        models: more choices for the model menu, ``{label: run folder}`` (``""``: the default).
        runs_root: a folder of run folders; those with a checkpoint of a variant 4-8 are offered too.
        num_frames: frames sampled from the sequence (the first is the reference frame).
        device: where the model runs (``"cpu"``, ``"cuda"``, ``"auto"``).
        max_sources: at most this many dataset tracklets in the menu.
        cache: a :class:`~fgra_core.viz.response_maps.FeatureCache` of ``model`` (a bundle) to start from.
    """

    def __init__(self, sources=None, model=None, models: Mapping[str, str] | None = None,
                 runs_root: str | os.PathLike | None = None, num_frames: int = 8, device: str = "cpu",
                 max_sources: int = 200, cache: rm.FeatureCache | None = None):
        self.device = device
        self._bundles: dict[str, rm.ModelBundle] = {}
        self._caches: dict[str, rm.FeatureCache] = {}
        self._model_dirs: dict[str, str] = {}
        self.data: rm.ResponseData | None = None
        self._data_key = None
        self._busy = False
        self.last_error: str | None = None     # traceback of the last failure shown in the status line

        # models
        if isinstance(model, rm.ModelBundle):
            first = model.label
            self._bundles[first] = model
            self._model_dirs[first] = model.run_dir or ""
            if cache is not None:
                if cache.bundle is not model:
                    raise ValueError("the feature cache belongs to another model")
                self._caches[first] = cache
        else:
            first = DEFAULT_LABEL if not model else f"run: {os.path.basename(os.path.normpath(str(model)))}"
            self._model_dirs[first] = str(model or "")
        if DEFAULT_LABEL not in self._model_dirs and first != DEFAULT_LABEL:
            self._model_dirs[DEFAULT_LABEL] = ""
        for label, run_dir in dict(models or {}).items():
            self._model_dirs.setdefault(label, str(run_dir or ""))
        if runs_root is not None:
            for label, run_dir in rm.find_runs(runs_root).items():
                if run_dir not in self._model_dirs.values():
                    self._model_dirs[label] = run_dir

        # sequences
        if sources is None:
            sources = rm.default_dataset()
        if hasattr(sources, "query") and hasattr(sources, "gallery"):
            self.sources = rm.sources_of(sources, limit=max_sources)
        else:
            self.sources = {str(k): rm.as_source(v, str(k)) for k, v in dict(sources).items()}
        if not self.sources:
            raise ValueError("no sequences to explore")

        # controls
        wide = {"description_width": "70px"}
        self.source = W.Dropdown(options=list(self.sources), description="sequence", style=wide,
                                 layout=W.Layout(width="420px"))
        self.model_choice = W.Dropdown(options=list(self._model_dirs), value=first, description="model",
                                       style=wide, layout=W.Layout(width="420px"))
        self.num_frames = W.IntSlider(value=int(num_frames), min=2, max=16, description="frames", style=wide,
                                      continuous_update=False)
        self.frame = W.IntSlider(value=0, min=0, max=int(num_frames) - 1, description="frame", style=wide)
        self.frame.add_class("fgra-frame-slider")
        self.region = W.Dropdown(options=[("region 0", 0)], value=0, description="region", style=wide,
                                 layout=W.Layout(width="200px"))
        self.region.add_class("fgra-region")
        self.upload = W.FileUpload(accept="image/*", multiple=True, description="upload frames")
        self.folder = W.Text(placeholder="folder of frames (JPEG/PNG)", layout=W.Layout(width="300px"))
        self.load_folder = W.Button(description="load folder")
        self.readout = W.HTML()
        self.readout.add_class("fgra-readout")
        self.status = W.HTML()
        self.status.add_class("fgra-status")
        self.reference_image = _image("fgra-reference")
        self.frame_image = _image("fgra-overlay")
        self.strip_image = _image("fgra-strip")
        self.temporal_image = _image("fgra-temporal")
        self.spatial_image = _image("fgra-spatial")

        def captioned(caption, widget):
            return W.VBox([W.HTML(f"<b>{caption}</b>"), widget], layout=W.Layout(margin="0 18px 0 0"))

        self.widget = W.VBox([
            W.HBox([self.source, self.model_choice]),
            W.HBox([self.upload, self.folder, self.load_folder]),
            W.HBox([self.num_frames, self.frame, self.region]),
            self.readout,
            W.HBox([captioned("reference frame", self.reference_image),
                    captioned("response on the frame", self.frame_image),
                    captioned("temporal alignment scores", self.temporal_image),
                    captioned("spatial weights", self.spatial_image)]),
            captioned("the region's response on every sampled frame", self.strip_image),
            self.status,
        ])
        self.widget.add_class("fgra-explorer")

        self.source.observe(self._on_data_change, names="value")
        self.model_choice.observe(self._on_data_change, names="value")
        self.num_frames.observe(self._on_data_change, names="value")
        self.frame.observe(self._on_frame, names="value")
        self.region.observe(self._on_region, names="value")
        self.upload.observe(self._on_upload, names="value")
        self.load_folder.on_click(self._on_folder)
        self._guard(self._reload)

    # ------------------------------------------------------------------ display
    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------ state
    @property
    def bundle(self) -> rm.ModelBundle:
        label = self.model_choice.value
        if label not in self._bundles:
            self._bundles[label] = rm.load_model(self._model_dirs[label], self.device)
        return self._bundles[label]

    @property
    def cache(self) -> rm.FeatureCache:
        label = self.model_choice.value
        if label not in self._caches:
            self._caches[label] = rm.FeatureCache(self.bundle)
        return self._caches[label]

    def add_source(self, label: str, frames) -> str:
        """Offer another sequence (uint8 ``[T, H, W, 3]``, a folder or a Tracklet) and select it."""
        base, k = label, 2
        while label in self.sources:
            label, k = f"{base} ({k})", k + 1
        self.sources[label] = rm.as_source(frames, label, key=f"added:{label}")
        self.source.options = list(self.sources)
        self.source.value = label
        return label

    # ------------------------------------------------------------------ handlers
    def _guard(self, fn, *args):
        """Run a handler; show a failure in the status line instead of losing it in the log."""
        try:
            fn(*args)
            self.status.value = ""
        except Exception as exc:  # noqa: BLE001 - shown to the user, who can pick something else
            self.status.value = (f"<span style='color:#b00'>{html.escape(type(exc).__name__)}: "
                                 f"{html.escape(str(exc))}</span>")
            self.last_error = traceback.format_exc()

    def _on_data_change(self, change):
        if not self._busy:
            self._guard(self._reload)

    def _on_frame(self, change):
        if not self._busy:
            self._guard(self._draw_frame)

    def _on_region(self, change):
        if not self._busy:
            self._guard(self._draw_all)

    def _on_upload(self, change):
        files = change["new"]
        if files:
            self._guard(lambda: self.add_source(
                f"upload: {len(files)} frames ({files[0]['name']})",
                rm.frames_from_files([(f["name"], bytes(f["content"])) for f in files])))

    def _on_folder(self, _button):
        path = self.folder.value.strip()
        self._guard(lambda: self.add_source(f"folder: {path}", rm.frames_from_folder(path)))

    # ------------------------------------------------------------------ updates
    def _reload(self):
        """New sequence, model or number of frames: recompute (backbone only for frames not cached)."""
        key = (self.source.value, self.model_choice.value, int(self.num_frames.value))
        if key != self._data_key:
            self.data = rm.compute_response(self.bundle, self.sources[self.source.value],
                                            int(self.num_frames.value), cache=self.cache)
            self._data_key = key
        d = self.data
        self._busy = True
        try:
            self.frame.max = d.num_frames - 1
            self.frame.value = min(self.frame.value, d.num_frames - 1)
            options = [(f"region {r}", r) for r in range(d.num_regions)]
            if list(self.region.options) != options:
                value = min(int(self.region.value), d.num_regions - 1)
                self.region.options = options
                self.region.value = value
        finally:
            self._busy = False
        self._draw_all()

    def _scale(self) -> int:
        """Enlargement of the frames on screen (about 320 px tall)."""
        return max(1, int(round(320 / self.data.frames.shape[1])))

    @staticmethod
    def _set_figure(img: W.Image, fig, dpi: int = 80) -> None:
        _set_png(img, rm.figure_to_png(fig, dpi=dpi), fig.get_size_inches()[0] * dpi)

    def _draw_all(self):
        d, r, k = self.data, int(self.region.value), self._scale()
        _set_png(self.reference_image, rm.png_bytes(rm.boxed_reference(d, r), k), d.frames.shape[2] * k)
        self._set_figure(self.spatial_image, rm.draw_spatial_weights(d, region=r))
        self._draw_frame()

    def _draw_frame(self):
        d, r, n, k = self.data, int(self.region.value), int(self.frame.value), self._scale()
        frame = rm.overlay(d.frames[n], d.maps[n, r], vmin=0.0, vmax=1.0)   # one fixed scale, as Fig. 5
        parts = d.part_boxes(r)
        if parts is not None:
            frame = mark_part(frame, *parts[n])
        _set_png(self.frame_image, rm.png_bytes(frame, k), d.frames.shape[2] * k)
        strip = rm.overlay_strip(d, r, current=n)
        k_strip = max(1, min(k, int(1100 // strip.shape[1])))
        _set_png(self.strip_image, rm.png_bytes(strip, k_strip), strip.shape[1] * k_strip)
        self._set_figure(self.temporal_image, rm.draw_temporal_scores(d, region=r, current=n))
        self._update_readout()

    def readout_values(self) -> dict:
        """The values the readout shows (for tests and scripts)."""
        d, r, n = self.data, int(self.region.value), int(self.frame.value)
        m = d.maps[n, r]
        peak = np.unravel_index(int(np.argmax(m)), m.shape)
        return {
            "frame": n, "num_frames": d.num_frames, "sequence_frame": int(d.indices[n]), "region": r,
            "temporal_score": float(d.temporal_scores[n, r]),
            "spatial_weight": None if d.spatial_weights is None else float(d.spatial_weights[r]),
            "peak": (int(peak[0]), int(peak[1])), "map_range": (float(m.min()), float(m.max())),
            "on_part": None if d.parts is None else float(d.part_shares()[n, r]),
            "backbone_calls": self.cache.backbone_calls,
            "frames_computed": self.cache.frames_computed,
        }

    def _update_readout(self):
        v = self.readout_values()
        sw = "n/a (no SA)" if v["spatial_weight"] is None else f"{v['spatial_weight']:.4f}"
        ts = f"{v['temporal_score']:.4f}"

        def span(name, value):
            return f"<span class='fgra-ro-{name}'>{html.escape(str(value))}</span>"

        self.readout.value = (
            f"<div style='font-family:monospace;line-height:1.5'>"
            f"model: {html.escape(self.bundle.label)}<br>"
            f"sequence: {html.escape(self.data.name)}<br>"
            f"frame {span('frame', v['frame'])} of {v['num_frames']} "
            f"(sequence frame {span('sequence-frame', v['sequence_frame'])}) &middot; "
            f"region {span('region', v['region'])} &middot; "
            f"temporal score {span('temporal', ts)} &middot; "
            f"spatial weight {span('spatial', sw)} &middot; "
            f"peak (row, col) {span('peak', v['peak'])} &middot; "
            f"map {span('range', '%.3f-%.3f' % v['map_range'])} on a 0-1 scale &middot; "
            + (f"share on its part {span('part', '%.2f' % v['on_part'])} &middot; " if v["on_part"] is not None else "") +
            f"backbone passes {span('backbone', v['backbone_calls'])} "
            f"({v['frames_computed']} frames)</div>")


def explore(sources=None, model=None, **kwargs) -> ResponseExplorer:
    """Build a :class:`ResponseExplorer` (display it as the last expression of a cell)."""
    return ResponseExplorer(sources, model, **kwargs)
