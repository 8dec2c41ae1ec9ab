"""Response maps as data: the model of a run (:class:`ModelBundle`, :func:`load_model`), the
frames of a tracklet (:class:`FrameSource`), the per-tracklet backbone cache
(:class:`FeatureCache`) and :func:`compute_response` (a :class:`ResponseData`: frames, maps
``[N, N_s, h, w]``, temporal alignment scores ``[N, N_s]``, spatial weights ``[N_s]``).
"""
from __future__ import annotations

import io
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fgra_core.utils.errors import ConfigError, FGRAError

DEFAULT_MODEL = {
    "variant": 8, "backbone": "resnet18", "weights": "none", "num_regions": 4, "last_stride": 1,
    "height": 128, "width": 64, "seed": 0,
}
REGION_COLOR = "red"
OTHER_REGION_COLOR = "white"


# --------------------------------------------------------------------------- model


@dataclass
class ModelBundle:
    """A model ready for response maps: eval mode, on ``device``, with its input size."""

    model: torch.nn.Module
    height: int
    width: int
    label: str
    run_dir: str | None = None
    config: object | None = None           # the run's RunConfig (None for the default model)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def num_regions(self) -> int:
        return int(self.model.num_regions)

    @property
    def variant(self):
        return self.model.variant


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _run_config(run_dir: Path, ckpt: dict | None = None):
    """The RunConfig of a run folder: ``config.yaml``, else ``results.json``'s, else the checkpoint's."""
    import json

    from fgra_core.config.schema import load_config

    if (run_dir / "config.yaml").is_file():
        return load_config(run_dir / "config.yaml")
    if (run_dir / "results.json").is_file():
        data = json.loads((run_dir / "results.json").read_text())
        if isinstance(data.get("config"), dict):
            return load_config(data["config"])
    if ckpt is not None and isinstance(ckpt.get("config"), dict):
        return load_config(ckpt["config"])
    raise FGRAError(f"run folder {run_dir} holds no config.yaml, no results.json with a 'config' and no "
                    "checkpoint config; expected a folder written by fgra_core training")


def _num_classes(state: dict) -> int | None:
    for key in ("classifier.fc.weight", "classifiers.0.fc.weight"):
        if key in state:
            return int(state[key].shape[0])
    return None


def _build_model(cfg, num_classes: int | None):
    """The run's model without pretrained weights (the checkpoint's weights replace them)."""
    import copy
    import inspect

    from fgra_core.models.fgra import FGRA

    cfg = copy.deepcopy(cfg)
    cfg.model.weights = "none"
    try:
        from fgra_core.engine.builders import build_model

        return build_model(cfg, num_classes)
    except (ImportError, TypeError):
        m = cfg.model
        accepted = inspect.signature(FGRA.__init__).parameters
        options = {k: getattr(m, k) for k in ("variant", "backbone", "weights", "num_regions", "last_stride",
                                               "center_mode") if k in accepted and hasattr(m, k)}
        return FGRA(num_classes, **options)


DEMO = "demo"                      # the run_dir value that names the demo model
DEMO_CONFIG = "demo_synthetic"     # its packaged configuration (fgra_core/config/configs/)
DEMO_RUN_DIR = "results/runs/demo"   # under the project folder


def demo_model(device: str | torch.device | None = "cpu", root: str | os.PathLike | None = None,
               show_progress: bool = False) -> ModelBundle:
    """The demo model: variant 8 fine-tuned briefly on a small synthetic set (under a minute on a
    laptop CPU), trained the first time it is asked for and read from its run folder
    (``results/runs/demo`` under the project folder) after that."""
    from fgra_core.config.packaged import resolve_config_source
    from fgra_core.engine.run import run
    from fgra_core.utils.project import project_path

    run_dir = project_path(DEMO_RUN_DIR, root)
    run(resolve_config_source(DEMO_CONFIG), overrides={"run_dir": str(run_dir)}, show_progress=show_progress)
    return load_model(run_dir, device)


def load_model(run_dir: str | os.PathLike | None = None, device: str | torch.device | None = "cpu",
               default: dict | None = None) -> ModelBundle:
    """The model of a finished (or running) run folder, the demo model when ``run_dir`` is
    ``"demo"`` (:func:`demo_model`), or the untrained default when ``run_dir`` is empty.

    ``run_dir`` may also be a ``.pt`` checkpoint inside a run folder. The default is
    :data:`DEFAULT_MODEL` updated with ``default``; its weights are drawn with a fixed seed.
    """
    from fgra_core.engine.checkpoint import find_last, load_checkpoint

    if run_dir is not None and str(run_dir).strip() == DEMO:
        return demo_model(device)
    dev = _device(device)
    if run_dir is None or str(run_dir).strip() == "":
        spec = {**DEFAULT_MODEL, **(default or {})}
        unknown = set(spec) - set(DEFAULT_MODEL)
        if unknown:
            raise ConfigError(f"default model: unknown option(s) {sorted(unknown)}; valid: {sorted(DEFAULT_MODEL)}")
        from fgra_core.models.fgra import FGRA

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(spec["seed"]))
            model = FGRA(None, variant=spec["variant"], backbone=spec["backbone"], weights=spec["weights"],
                         num_regions=spec["num_regions"], last_stride=spec["last_stride"])
        label = f"default (untrained {spec['backbone']}, variant {model.variant.index}, N_s={spec['num_regions']})"
        return ModelBundle(model.to(dev).eval(), int(spec["height"]), int(spec["width"]), label, None, None, dev)

    path = Path(run_dir)
    if path.is_dir():
        ckpt_path = find_last(path / "checkpoints") or find_last(path)
        if ckpt_path is None:
            raise FGRAError(f"no checkpoint in run folder {path} (expected {path / 'checkpoints' / 'last.pt'}); "
                            "has the run trained at least one epoch?")
        folder = path
    elif path.is_file():
        ckpt_path = path
        folder = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    else:
        raise FGRAError(f"run folder {path} does not exist (expected a folder written by fgra_core training "
                        "holding config.yaml and checkpoints/last.pt)")
    ckpt = load_checkpoint(ckpt_path, require=("model",))
    cfg = _run_config(folder, ckpt)
    state = ckpt["model"]
    head_only = ckpt.get("regime") == "head"   # a head-regime run: the trunk is its model.weights file
    if head_only:   # train.adapt: the trained last stage replaces the trunk's own layer4
        state = {("backbone.layer4." + k[len("adapt_stage."):] if k.startswith("adapt_stage.") else k): v
                 for k, v in state.items()}
    if head_only:
        from fgra_core.engine.builders import build_model

        model = build_model(cfg, _num_classes(state))
    else:
        model = _build_model(cfg, _num_classes(state))
    try:
        missing, unexpected = model.load_state_dict(state, strict=not head_only)
        if head_only and (unexpected or any(not k.startswith("backbone.") for k in missing)):
            raise RuntimeError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
    except RuntimeError as exc:
        raise FGRAError(f"checkpoint {ckpt_path} does not fit the model of {folder}'s configuration "
                        f"({str(exc).splitlines()[0]})") from exc
    label = f"{folder.name} (variant {model.variant.index} {model.variant.name}, epoch {ckpt.get('epoch', '?')})"
    return ModelBundle(model.to(dev).eval(), int(cfg.data.height), int(cfg.data.width), label, str(folder), cfg, dev)


def find_runs(root: str | os.PathLike = "results/runs") -> dict[str, str]:
    """``{label: run folder}`` of the run folders under ``root`` that hold a checkpoint and whose
    variant has the region alignment mechanism (variants 4-8: the ones with response maps)."""
    root = Path(root)
    out: dict[str, str] = {}
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if not ((folder / "checkpoints" / "last.pt").is_file() or (folder / "last.pt").is_file()):
            continue
        try:
            cfg = _run_config(folder)
        except Exception:  # noqa: BLE001 - an unreadable run is simply not offered
            continue
        if int(cfg.model.variant) >= 4:
            out[f"{folder.name} (variant {cfg.model.variant})"] = str(folder)
    return out


# --------------------------------------------------------------------------- data


def default_dataset(smoke: bool = False, seed: int = 0):
    """A small synthetic misaligned set for the default model (test identities only matter)."""
    from fgra_core.data.registry import build_dataset

    if smoke:
        return build_dataset("synthetic", num_train_ids=1, num_test_ids=2, frames_per_tracklet=(8, 10), seed=seed)
    return build_dataset("synthetic", num_train_ids=1, num_test_ids=12, frames_per_tracklet=(12, 24), seed=seed)


def dataset_for(bundle: ModelBundle, smoke: bool = False):
    """The dataset of the bundle's run (its own configuration), or :func:`default_dataset`."""
    if bundle.config is None:
        return default_dataset(smoke)
    from fgra_core.engine.builders import build_data

    return build_data(bundle.config).dataset


@dataclass
class FrameSource:
    """Frames of one sequence: ``load(indices) -> uint8 [len(indices), H, W, 3]``."""

    key: str
    name: str
    length: int
    load: Callable[[np.ndarray], np.ndarray]
    parts: np.ndarray | None = None          # float [length, P, 2] ground-truth body parts (synthetic set)


def as_source(obj, name: str = "", key: str | None = None, frame_cache=None) -> FrameSource:
    """A :class:`FrameSource` from a ``Tracklet``, a uint8 array ``[T, H, W, 3]`` or a folder of frames."""
    from fgra_core.data.records import Tracklet

    if isinstance(obj, FrameSource):
        return obj
    if isinstance(obj, Tracklet):
        from fgra_core.data.loaders import load_frames

        label = name or obj.name or f"pid {obj.pid} cam {obj.camid}"
        return FrameSource(key or f"tracklet:{id(obj)}:{obj.name}:{obj.pid}:{obj.camid}:{len(obj)}", label, len(obj),
                           lambda idx: load_frames(obj, frame_cache, idx),
                           None if obj.parts is None else np.asarray(obj.parts, dtype=np.float64))
    if isinstance(obj, (str, os.PathLike)):
        arr = frames_from_folder(obj)
        return as_source(arr, name or Path(obj).name, key or f"folder:{Path(obj).resolve()}")
    arr = np.asarray(obj)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8 or len(arr) == 0:
        raise ValueError(f"expected frames as uint8 [T, H, W, 3] with T >= 1, got {arr.dtype} {arr.shape}")
    if key is None:   # by content: a new array never gets the cached features of an old one
        import hashlib

        digest = hashlib.blake2b(np.ascontiguousarray(arr).data, digest_size=12)
        key = f"array:{arr.shape}:{digest.hexdigest()}"
    return FrameSource(key, name or f"{len(arr)} frames", len(arr), lambda idx: arr[np.asarray(idx)])


def sources_of(dataset, subsets: Sequence[str] = ("query", "gallery"), limit: int = 200) -> dict[str, FrameSource]:
    """``{label: FrameSource}`` for the first ``limit`` tracklets of ``subsets`` of a ``VideoDataset``."""
    from fgra_core.data.frames import FrameCache

    cache = FrameCache()
    out: dict[str, FrameSource] = {}
    for subset in subsets:
        for i, t in enumerate(getattr(dataset, subset)):
            if len(out) >= limit:
                return out
            label = f"{subset} {i}: pid {t.pid} cam {t.camid} ({len(t)} frames)"
            out[label] = as_source(t, label, key=f"{dataset.name}:{subset}:{i}", frame_cache=cache)
    return out


def frames_from_files(files: Sequence[tuple[str, bytes]], size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode ``(file name, bytes)`` pairs (e.g. uploaded images), in numeric frame order, to uint8
    ``[T, H, W, 3]``; frames are resized to ``size=(H, W)`` or to the first frame's size."""
    from PIL import Image

    from fgra_core.data.frames import sort_frames

    if not files:
        raise ValueError("no frames given")
    by_name = {str(n): b for n, b in files}
    frames = []
    for n in sort_frames(by_name):
        try:
            with Image.open(io.BytesIO(by_name[n])) as img:
                img = img.convert("RGB")
                if size is None:
                    size = (img.height, img.width)
                if (img.height, img.width) != tuple(size):
                    img = img.resize((int(size[1]), int(size[0])), Image.BILINEAR)
                frames.append(np.asarray(img, dtype=np.uint8))
        except (OSError, ValueError, SyntaxError) as exc:
            raise FGRAError(f"frame {n} is not a readable image ({exc}); expected JPEG/PNG frames") from exc
    return np.stack(frames)


def frames_from_folder(folder: str | os.PathLike, size: tuple[int, int] | None = None) -> np.ndarray:
    """The image files of a folder, in numeric frame order, as uint8 ``[T, H, W, 3]``."""
    from fgra_core.data.frames import list_frames, read_image

    folder = Path(folder)
    if not folder.is_dir():
        raise FGRAError(f"frame folder {folder} does not exist (expected a folder of JPEG/PNG frames)")
    paths = list_frames(folder)
    if not paths:
        raise FGRAError(f"frame folder {folder} holds no .jpg/.jpeg/.png/.bmp frames")
    first = read_image(paths[0], size)
    size = size or first.shape[:2]
    return np.stack([first] + [read_image(p, size) for p in paths[1:]])


def sample_indices(length: int, num_frames: int, reference: int = 0) -> np.ndarray:
    """``num_frames`` sorted frame indices spread evenly from ``reference`` to the last frame
    (frame ``reference`` first: it is the reference frame). Short sequences repeat frames."""
    if length < 1 or num_frames < 1:
        raise ValueError(f"need length >= 1 and num_frames >= 1, got {length}, {num_frames}")
    reference = min(max(int(reference), 0), length - 1)
    return np.round(np.linspace(reference, length - 1, int(num_frames))).astype(np.int64)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` -> uint8 ``[T, height, width, 3]`` (bilinear, antialiased, as the eval transform)."""
    if frames.shape[1:3] == (height, width):
        return np.ascontiguousarray(frames)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


# --------------------------------------------------------------------------- computing


class FeatureCache:
    """Backbone feature maps of one model, per sequence and frame index.

    ``features(source, indices)`` runs the backbone only on frames not seen before (one call for
    all of them); a repeated request is answered from memory. At most ``max_sources`` sequences
    are kept (least recently used dropped). ``backbone_calls`` / ``frames_computed`` count the work.
    """

    def __init__(self, bundle: ModelBundle, max_sources: int = 8, chunk: int = 64):
        from fgra_core.data.transforms import ClipTransform

        self.bundle = bundle
        self.transform = ClipTransform(bundle.height, bundle.width, train=False)
        self.max_sources = int(max_sources)
        self.chunk = int(chunk)
        self.backbone_calls = 0
        self.frames_computed = 0
        self._store: OrderedDict[str, dict[int, tuple[torch.Tensor, np.ndarray]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._store)

    def cached(self, source: FrameSource, indices) -> bool:
        entry = self._store.get(source.key, {})
        return all(int(i) in entry for i in np.asarray(indices).ravel())

    @torch.no_grad()
    def features(self, source: FrameSource, indices) -> tuple[torch.Tensor, np.ndarray]:
        """Feature maps ``[N, C, h, w]`` and resized uint8 frames ``[N, H, W, 3]`` of ``indices``."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        if len(indices) == 0 or indices.min() < 0 or indices.max() >= source.length:
            raise IndexError(f"frame indices {indices.tolist()} out of range for {source.name!r} ({source.length} frames)")
        entry = self._store.setdefault(source.key, {})
        self._store.move_to_end(source.key)
        missing = sorted({int(i) for i in indices} - set(entry))
        if missing:
            raw = source.load(np.asarray(missing))
            small = resize_frames(raw, self.bundle.height, self.bundle.width)
            model = self.bundle.model
            for s in range(0, len(missing), self.chunk):
                x = self.transform(small[s:s + self.chunk]).to(self.bundle.device)
                fm = model.backbone_features(x).float().cpu()
                self.backbone_calls += 1
                self.frames_computed += len(x)
                for j, i in enumerate(missing[s:s + self.chunk]):
                    entry[i] = (fm[j], small[s + j])
        while len(self._store) > self.max_sources:
            self._store.popitem(last=False)
        fmaps = torch.stack([entry[int(i)][0] for i in indices])
        frames = np.stack([entry[int(i)][1] for i in indices])
        return fmaps, frames


@dataclass
class ResponseData:
    """Everything Fig. 5 shows for one sampled clip (frame 0 = the reference frame)."""

    frames: np.ndarray                       # uint8 [N, H, W, 3] at the model's input size
    indices: np.ndarray                      # int64 [N] positions in the sequence
    maps: np.ndarray                         # float32 [N, N_s, h, w] response maps, in (0, 1)
    temporal_scores: np.ndarray              # float32 [N, N_s] temporal weights (sum 1 over N)
    spatial_weights: np.ndarray | None       # float32 [N_s] (None: the variant concatenates regions)
    boxes: list[tuple[float, float]]         # (top, bottom) pixel rows of each region in the reference frame
    variant: str = ""
    name: str = ""
    parts: np.ndarray | None = None          # float [N, P, 2] ground-truth parts of the sampled frames (fractions)

    def part_boxes(self, region: int) -> np.ndarray | None:
        """(top, bottom) pixel rows, in every sampled frame, of the body part that ``region``'s
        reference stripe covers (:func:`fgra_core.eval.alignment.assigned_parts`); None without parts."""
        if self.parts is None:
            return None
        from fgra_core.eval.alignment import assigned_parts

        p = int(assigned_parts(self.parts[0], self.num_regions)[region])
        return self.parts[:, p, :] * self.frames.shape[1]

    def part_shares(self) -> np.ndarray | None:
        """[N, N_s] share of each map's mass on its region's part (None without parts)."""
        if self.parts is None:
            return None
        from fgra_core.eval.alignment import map_shares

        return map_shares(self.maps.astype(np.float64), self.parts)

    @property
    def num_frames(self) -> int:
        return int(self.maps.shape[0])

    @property
    def num_regions(self) -> int:
        return int(self.maps.shape[1])


@torch.no_grad()
def response_from_features(model, fmaps: torch.Tensor, frames: np.ndarray, indices=None, name: str = "") -> ResponseData:
    """Run the head on the feature maps ``[N, C, h, w]`` of one clip and collect its maps and scores."""
    from fgra_core.models.fgra import FGRA

    if model.variant.local != "ram":
        raise ConfigError(f"variant {model.variant.index} ({model.variant.name}) has no region alignment "
                          "mechanism, hence no response maps; use a variant 4-8 model")
    param = next(model.parameters())
    out = model.head(fmaps.to(param.device, param.dtype).unsqueeze(0), return_maps=True)
    maps = out.maps[0].float().cpu().numpy()
    N, R, h, _ = maps.shape
    tw = out.temporal_scores[0].float().cpu().numpy()
    sw = None if out.spatial_weights is None else out.spatial_weights[0].float().cpu().numpy()
    boxes = FGRA.region_boxes(R, h, frames.shape[1])
    idx = np.arange(N) if indices is None else np.asarray(indices, dtype=np.int64)
    return ResponseData(np.asarray(frames), idx, maps.astype(np.float32), tw.astype(np.float32),
                        None if sw is None else sw.astype(np.float32), boxes,
                        f"{model.variant.index} {model.variant.name}", name)


def compute_response(bundle: ModelBundle, source, num_frames: int = 8, reference: int = 0,
                     indices=None, cache: FeatureCache | None = None) -> ResponseData:
    """Response data of ``num_frames`` frames sampled from ``source`` (a ``Tracklet``, a uint8 array
    ``[T, H, W, 3]``, a folder or a :class:`FrameSource`), or of the explicit ``indices``.

    With a ``cache`` (built for the same bundle) the backbone runs only on frames it has not seen.
    """
    src = as_source(source)
    cache = cache if cache is not None else FeatureCache(bundle)
    if cache.bundle is not bundle:
        raise ValueError("the feature cache belongs to another model")
    idx = sample_indices(src.length, num_frames, reference) if indices is None else np.asarray(indices, np.int64)
    fmaps, frames = cache.features(src, idx)
    data = response_from_features(bundle.model, fmaps, frames, idx, src.name)
    if src.parts is not None:
        data.parts = src.parts[idx]
    return data
