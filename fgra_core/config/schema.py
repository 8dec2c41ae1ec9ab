"""Typed, validated configuration.

Every setting of a run lives in one of the dataclasses below. They are loaded from YAML
files or plain dicts by :func:`load_config`, which rejects unknown keys and wrong types
(``ConfigError`` naming the key path and the expected type) and then checks the values
against each other (:func:`validate`), so an impossible run fails before any data is read.

The defaults are the paper's recipe (Implementation Details of FGRA, AAAI 2020).
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from fgra_core.config import yaml_strict
from fgra_core.config.checks import check_values
from fgra_core.utils.errors import ConfigError

REPORTED_RANKS = (1, 5, 10, 20)   # the CMC ranks every run reports (fgra_core.eval.rank's default)
MAX_LR = 1e30                     # above: the optimiser's float32 step overflows (the divergence stop
                                  # catches what a large but representable rate does)

DATASETS = ("synthetic", "mars", "ilidsvid", "prid2011")
BACKBONES = ("resnet50", "resnet18", "mobilenet_v2")

# Total spatial stride of each backbone trunk (last_stride=2 / last_stride=1).
BACKBONE_STRIDE = {"resnet50": (32, 16), "resnet18": (32, 16), "mobilenet_v2": (32, 16)}


@dataclass
class SyntheticConfig:
    """Options of the procedurally generated misaligned set (the embedded default)."""

    num_train_ids: int = 48
    num_test_ids: int = 48
    num_cams: int = 2
    tracklets_per_id: int = 1  # per camera
    min_frames: int = 12
    max_frames: int = 24
    height: int = 128
    width: int = 64
    misalignment: float = 1.0  # 0 = perfectly aligned crops
    # the box errors apart (fgra_core/data/datasets/synthetic.py); None = misalignment, and both None
    # = the legacy boxes, where misalignment scales both kinds at once
    jitter: float | None = None  # per-frame errors around the tracklet's mean box
    box_offset: float | None = None  # per-tracklet errors: where the mean box sits
    occlusion_p: float = 0.25
    clutter: float = 1.0
    camera_shift: float = 1.0
    noise_std: float = 6.0
    seed: int = 0


@dataclass
class DataConfig:
    dataset: Literal["synthetic", "mars", "ilidsvid", "prid2011"] = "synthetic"
    root: str | None = None
    split_id: int = 0
    split_file: str | None = None
    seq_len: int = 6
    sample_mode: Literal["consecutive", "random"] = "consecutive"
    height: int = 256
    width: int = 128
    num_workers: int = 2
    cache_dir: str | None = None  # decoded frames as memmap files shared by workers and runs
    cache_memory_gb: float = 2.0  # bound of each process's in-memory frame cache when cache_dir is unset
    random_erasing: float = 0.5
    flip: float = 0.5
    feature_cache_dir: str = "results/cache/trunk"  # head regime: trunk feature maps, shared by runs
    augment_on: Literal["auto", "cpu", "device"] = "auto"  # auto: on a CUDA device when frames are in memory or cache_dir is set (fgra_core/data/device_loader.py)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class ModelConfig:
    variant: int = 8
    backbone: Literal["resnet50", "resnet18", "mobilenet_v2"] = "resnet50"
    weights: str = "imagenet"
    num_regions: int = 4
    last_stride: int = 2  # 8 x 4 maps at 256 x 128 (docs/reproduction_notes.md)
    centers: Literal["mean", "learned", "region"] = "mean"  # consistency term's c_i (docs/reproduction_notes.md)
    # Readings of ambiguous passages (docs/reproduction_notes.md, "Readings"):
    tas_source: Literal["sigmoid", "bn", "raw"] = "sigmoid"  # what Eq. 5 averages before the softmax
    template_conv: Literal["shared", "per_region"] = "shared"  # the template 1x1 conv
    spatial_weights: Literal["attention", "uniform"] = "attention"  # SA, or its uniform-sum control


@dataclass
class LossConfig:
    triplet_margin: float = 0.5
    reg_weight: float = 5e-4
    label_smoothing: float = 0.0


@dataclass
class OptimConfig:
    lr: float = 3e-4
    center_lr: float = 0.03
    weight_decay: float = 5e-4
    step_size: int = 100
    gamma: float = 0.1


@dataclass
class TrainConfig:
    # "finetune": the paper's end-to-end training of trunk and head. "head": the trunk is frozen, its
    # feature maps are computed once (fgra_core/engine/trunk_cache.py) and only the head trains on them.
    regime: Literal["finetune", "head"] = "finetune"
    # head regime only: "layer4" also trains the trunk's last stage (ResNet layer4), on cached layer-3
    # maps, so that the features can adapt (become part-selective); "none": the whole trunk frozen
    adapt: Literal["none", "layer4"] = "none"
    epochs: int = 300
    P: int = 16
    K: int = 4
    batch_size: int | None = None  # optional; when given it must equal P * K
    iters_per_epoch: int | None = None  # None: the whole epoch (see epoch)
    # what an epoch is: "groups" = every K-group of every identity (MARS: ~109 batches of 16 x 4),
    # "identities" = each identity once with K tracklets (MARS: 39); docs/reproduction_notes.md
    epoch_mode: Literal["identities", "groups"] = "groups"
    seed: int = 0
    amp: bool = True  # only takes effect on CUDA
    channels_last: bool = True  # only takes effect on CUDA
    eval_every: int = 0  # 0: evaluate once at the end
    deterministic: bool = True


@dataclass
class EvalConfig:
    protocol: Literal["auto", "gallery-minus-query", "official", "cross-camera"] = "auto"
    ap_form: Literal["plain", "trapezoid"] | None = None  # None: the protocol's own (trapezoid for 'official')
    stride: int | None = None  # None: seq_len // 2, as in the paper
    frame_budget: int = 256
    rerank: bool = False
    max_rank: int = 20


@dataclass
class RunConfig:
    run_dir: str = "results/runs/default"
    device: str = "auto"
    resume: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# --------------------------------------------------------------------------- loading


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of {tp.__name__} settings, got {value!r}")
        return _from_dict(tp, value, where)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # YAML reads 5e-4 (no dot) as a string; accept numeric strings only.
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, Path):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported setting type {tp!r}")  # pragma: no cover


def _from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown setting(s) {', '.join(where + k for k in unknown)}; "
            f"valid keys{' of ' + prefix if prefix else ''}: {', '.join(sorted(names))}"
        )
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = _coerce(value, hints[key], f"{prefix}.{key}" if prefix else key)
    return cls(**kwargs)


def config_from_dict(data: dict) -> RunConfig:
    """Build and validate a :class:`RunConfig` from a nested dict."""
    cfg = _from_dict(RunConfig, dict(data or {}))
    validate(cfg)
    return cfg


def load_config(source: str | Path | dict | RunConfig | None = None, overrides: dict | None = None) -> RunConfig:
    """Load a run configuration from a YAML file, a dict, or an existing config, then apply
    ``overrides`` (a nested dict or a flat ``{"train.epochs": 3}`` dict) and validate."""
    if source is None:
        data: dict = {}
    elif isinstance(source, RunConfig):
        data = to_dict(source)
    elif isinstance(source, dict):
        data = _deepcopy(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (expected a YAML file of run settings)")
        try:
            data = yaml_strict.safe_load(path.read_text()) or {}
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {path} is not a UTF-8 text file (byte {exc.start}: {exc.reason}); "
                              "expected a YAML file of run settings") from None
        except yaml_strict.DuplicateKeyError as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {yaml_strict.one_line(exc)}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: expected a mapping at the top level, got {type(data).__name__}")
    if overrides:
        data = merge(data, overrides)
    try:
        return config_from_dict(data)
    except ConfigError as exc:
        if isinstance(source, (str, Path)):
            raise ConfigError(f"{source}: {exc}") from None
        raise


def _deepcopy(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _deepcopy(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_deepcopy(v) for v in d]
    return d


def merge(base: dict, overrides: dict) -> dict:
    """Deep-merge ``overrides`` into a copy of ``base``; dotted keys address nested settings."""
    out = _deepcopy(base)
    for key, value in overrides.items():
        parts = key.split(".") if isinstance(key, str) else [key]
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key}: {part} is not a group of settings")
        last = parts[-1]
        if isinstance(value, dict) and isinstance(node.get(last), dict):
            node[last] = merge(node[last], value)
        else:
            node[last] = _deepcopy(value)
    return out


def flatten(cfg: "RunConfig | dict", prefix: str = "") -> dict:
    """``{"data.seq_len": 4, ...}``: every setting of a config (or nested dict) by its dotted name."""
    data = to_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg
    out = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def parse_assignments(items: list[str]) -> dict:
    """``["train.epochs=3", "device=cuda"]`` -> ``{"train.epochs": 3, "device": "cuda"}`` (values read as YAML)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        if key.strip() in out:
            raise ConfigError(f"--set {key.strip()} is given twice; expected each setting once")
        try:
            out[key.strip()] = yaml_strict.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({' '.join(str(exc).split())})") from None
    return out


def to_dict(cfg: Any) -> dict:
    """Plain, JSON/YAML-safe dict of a config."""
    return dataclasses.asdict(cfg)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# --------------------------------------------------------------------------- checks


def feature_height(cfg: RunConfig) -> int:
    stride = BACKBONE_STRIDE[cfg.model.backbone][1 if cfg.model.last_stride == 1 else 0]
    return -(-cfg.data.height // stride)


def validate(cfg: RunConfig) -> RunConfig:
    """Cross-field checks; raise ``ConfigError`` naming the settings involved."""
    d, m, t, e, o, lo = cfg.data, cfg.model, cfg.train, cfg.eval, cfg.optim, cfg.loss
    check_values(cfg)  # finite numbers, seed range, device name, synthetic knobs, path lengths

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ConfigError(msg)

    need(d.seq_len >= 1, f"data.seq_len must be at least 1, got {d.seq_len}")
    need(d.height >= 16 and d.width >= 8, f"data.height x data.width must be at least 16x8, got {d.height}x{d.width}")
    need(d.cache_memory_gb >= 0, f"data.cache_memory_gb must be >= 0, got {d.cache_memory_gb}")
    need(d.num_workers >= 0, f"data.num_workers must be >= 0, got {d.num_workers}")
    need(d.split_id >= 0, f"data.split_id must be >= 0, got {d.split_id}")
    need(0.0 <= d.random_erasing <= 1.0, f"data.random_erasing is a probability, got {d.random_erasing}")
    need(0.0 <= d.flip <= 1.0, f"data.flip is a probability, got {d.flip}")
    need(d.dataset != "synthetic" or d.split_id == 0,
         f"data.split_id={d.split_id}: the synthetic set has one split (its identities are drawn from "
         "data.synthetic.seed, not from a split), so several splits would be the same run; expected "
         "data.split_id 0 -- vary data.synthetic.seed for other draws")
    need(d.dataset == "synthetic" or d.root is not None,
         f"data.root is required for dataset {d.dataset!r} (the folder holding its official layout)")
    s = d.synthetic
    need(s.num_train_ids >= 2 and s.num_test_ids >= 1, "data.synthetic needs num_train_ids >= 2 and num_test_ids >= 1")
    need(s.num_cams >= 2, f"data.synthetic.num_cams must be at least 2 (query and gallery cameras), got {s.num_cams}")
    need(1 <= s.min_frames <= s.max_frames, f"data.synthetic needs 1 <= min_frames <= max_frames, got {s.min_frames}, {s.max_frames}")
    need(s.misalignment >= 0, f"data.synthetic.misalignment must be >= 0, got {s.misalignment}")
    for knob in ("jitter", "box_offset"):
        value = getattr(s, knob)
        need(value is None or value >= 0, f"data.synthetic.{knob} must be >= 0 (or null: misalignment), got {value}")

    need(cfg.train.adapt == "none" or cfg.train.regime == "head",
         f"train.adapt={cfg.train.adapt!r} trains the trunk's last stage on cached maps, which only the head "
         "regime has; expected train.regime: head (the fine-tune regime trains the whole trunk already)")
    need(cfg.train.adapt == "none" or m.backbone.startswith("resnet"),
         f"train.adapt={cfg.train.adapt!r} needs a ResNet trunk (its layer4), got model.backbone {m.backbone!r}")
    need(0 <= m.variant <= 8, f"model.variant must be a Table-2 row 1..8 (or 0, the untrained trunk), got {m.variant}")
    need(m.last_stride in (1, 2), f"model.last_stride must be 1 or 2, got {m.last_stride}")
    need(m.num_regions >= 1, f"model.num_regions must be at least 1, got {m.num_regions}")
    fh = feature_height(cfg)
    need(m.num_regions <= fh,
         f"model.num_regions={m.num_regions} is larger than the feature-map height {fh} "
         f"(data.height={d.height} with backbone {m.backbone}, last_stride={m.last_stride})")

    need(t.epochs >= 1, f"train.epochs must be at least 1, got {t.epochs}")
    need(t.P >= 2, f"train.P (identities per batch) must be at least 2 for the triplet loss, got {t.P}")
    need(t.K >= 1, f"train.K (tracklets per identity) must be at least 1, got {t.K}")
    need(t.batch_size is None or t.batch_size == t.P * t.K,
         f"train.batch_size={t.batch_size} does not match train.P x train.K = {t.P} x {t.K} = {t.P * t.K}")
    need(t.iters_per_epoch is None or t.iters_per_epoch >= 1, f"train.iters_per_epoch must be >= 1, got {t.iters_per_epoch}")
    need(t.eval_every >= 0, f"train.eval_every must be >= 0, got {t.eval_every}")

    need(o.lr > 0 and o.center_lr > 0, "optim.lr and optim.center_lr must be positive")
    for name, lr in (("optim.lr", o.lr), ("optim.center_lr", o.center_lr)):
        need(lr <= MAX_LR, f"{name}={lr:g} overflows the optimiser's float32 step (Adam scales it by up to "
                           f"1/(1-beta1) = 10 and more over its first steps; float32 ends at 3.4e+38); "
                           f"expected a learning rate of at most {MAX_LR:g}")
    need(o.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {o.weight_decay}")
    need(o.step_size >= 1 and 0 < o.gamma <= 1, "optim.step_size must be >= 1 and optim.gamma in (0, 1]")
    need(lo.triplet_margin >= 0 and lo.reg_weight >= 0, "loss.triplet_margin and loss.reg_weight must be >= 0")
    need(0 <= lo.label_smoothing < 1, f"loss.label_smoothing must be in [0, 1), got {lo.label_smoothing}")

    need(e.stride is None or e.stride >= 1, f"eval.stride must be >= 1, got {e.stride}")
    need(e.frame_budget >= 1, f"eval.frame_budget must be >= 1, got {e.frame_budget}")
    need(e.max_rank >= max(REPORTED_RANKS), f"eval.max_rank={e.max_rank} is below the ranks every run reports "
                                             f"({', '.join(f'rank-{r}' for r in REPORTED_RANKS)}); expected "
                                             f"eval.max_rank >= {max(REPORTED_RANKS)}")
    need(e.protocol != "official" or d.dataset == "mars", "eval.protocol 'official' is the MARS evaluation kit's protocol; use it with data.dataset 'mars'")
    return cfg


def resolve_protocol(cfg: RunConfig) -> str:
    """The evaluation protocol a run uses: 'auto' means gallery-minus-query on MARS and
    cross-camera on the two-camera sets (iLIDS-VID, PRID-2011, synthetic)."""
    if cfg.eval.protocol != "auto":
        return cfg.eval.protocol
    return "gallery-minus-query" if cfg.data.dataset == "mars" else "cross-camera"
