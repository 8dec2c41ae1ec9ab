"""How well the global alignment module's response maps follow the body parts, from the
synthetic set's ground-truth ``parts``. Pure numpy.

Definitions (all heights are fractions of the frame height, 0 = top):

* ``parts``: float ``[T, P, 2]``, the (top, bottom) of each body part in each frame, in [0, 1]
  with top <= bottom (``Tracklet.parts``: head, torso, legs, feet).
* ``maps``: float ``[T, R, h, w]``, non-negative (sigmoid outputs), one map per frame and region;
  cell row ``i`` covers heights ``[i/h, (i+1)/h)``.
* region ``r``'s reference stripe covers ``[r/R, (r+1)/R)`` of the reference frame
  (``reference=0``: the first frame of the clip).
* assigned part of region ``r``: the part with the largest overlap with stripe ``r`` in the
  reference frame (ties: lowest index); if the stripe overlaps no part (touching is no
  overlap), the part whose centre is nearest the stripe's centre (ties: lowest index).
* share of a map (:func:`map_shares`): the fraction of its mass (summed over ``w``) that lies on
  the assigned part in that frame, ``sum_i m_i * cov_i / sum_i m_i`` with ``m_i`` the mass of
  row ``i`` and ``cov_i`` the fraction of row ``i`` the part covers; a map with no mass scores 0.
* baselines, in continuous coordinates from ``parts`` alone:
  ``stripe`` the fixed reference stripe (no alignment), ``overlap(stripe, part_t) * R``;
  ``uniform`` a flat map, the part's height in frame t;
  ``aligned`` a perfect aligner, the stripe carried into frame t by the affine map that takes
  the assigned part's reference extent onto its extent in frame t
  (``y' = top_t + (y - top_ref) * height_t / height_ref``; a shift by ``top_t - top_ref`` when
  ``height_ref`` is 0), scored ``overlap(mapped, part_t) / length(mapped)`` (0 for a mapped stripe
  of length 0; the mapped stripe is not clipped to the frame). On the reference frame it is the
  stripe; ``headroom = mean(aligned) - mean(stripe)``.
* means are over every frame and region, those whose part is empty (clipped off the frame)
  included: there every score is 0.

```python
clip = clip_alignment(tracklet.parts, R=4, maps=gam_maps)   # gam, stripe, uniform, aligned, ...
summary = summarise([clip_0, clip_1, ...])                   # means + per_clip lists
```
"""
from __future__ import annotations

import numpy as np

_TIE_TOL = 1e-9
KEYS = ("gam", "stripe", "uniform", "aligned", "headroom", "range", "entropy")


def _check_R(R) -> int:
    if isinstance(R, bool) or not isinstance(R, (int, np.integer)) or R < 1:
        raise ValueError(f"R must be an integer >= 1, got {R!r}")
    return int(R)


def _check_parts(parts) -> np.ndarray:
    p = np.asarray(parts, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 1 or p.shape[1] < 1 or p.shape[2] != 2:
        raise ValueError(f"parts must have shape [T, P, 2] with T, P >= 1, got {tuple(p.shape)}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError(f"parts must be finite fractions in [0, 1], got range [{p.min()}, {p.max()}]")
    if np.any(p[..., 0] > p[..., 1]):
        t, k = np.argwhere(p[..., 0] > p[..., 1])[0]
        raise ValueError(f"parts must have top <= bottom, got {tuple(p[t, k])} at frame {t}, part {k}")
    return p


def _check_reference(reference, T: int) -> int:
    if isinstance(reference, bool) or not isinstance(reference, (int, np.integer)) or not 0 <= reference < T:
        raise ValueError(f"reference must be a frame index in [0, {T}), got {reference!r}")
    return int(reference)


def _check_maps(maps, T: int | None = None, R: int | None = None) -> np.ndarray:
    m = np.asarray(maps, dtype=np.float64)
    ok = m.ndim == 4 and m.shape[0] >= 1 and m.shape[1] >= 1 and m.shape[2] >= 1 and m.shape[3] >= 1
    if not ok or (T is not None and m.shape[0] != T) or (R is not None and m.shape[1] != R):
        want = f"[T={'T' if T is None else T}, R={'R' if R is None else R}, h>=1, w>=1]"
        raise ValueError(f"maps must have shape {want} (all >= 1), got {tuple(m.shape)}")
    if not np.all(np.isfinite(m)):
        raise ValueError("maps must be finite, got NaN or inf")
    if m.min() < 0:
        raise ValueError(f"maps must be non-negative, got minimum {m.min()}")
    return m


def stripe_bounds(R: int) -> np.ndarray:
    """``[R, 2]`` (top, bottom) of each reference stripe: ``[r/R, (r+1)/R]``."""
    R = _check_R(R)
    r = np.arange(R, dtype=np.float64)
    return np.stack([r / R, (r + 1) / R], axis=1)


def overlap(a0, a1, b0, b1) -> np.ndarray:
    """Length of the intersection of ``[a0, a1]`` and ``[b0, b1]`` (broadcast, 0 when disjoint)."""
    return np.maximum(np.minimum(a1, b1) - np.maximum(a0, b0), 0.0)


def assigned_parts(parts_ref, R: int) -> np.ndarray:
    """int ``[R]``: the body part each reference stripe covers (see the module docstring)."""
    p = _check_parts(np.asarray(parts_ref)[None])[0]
    s = stripe_bounds(R)
    ov = overlap(s[:, None, 0], s[:, None, 1], p[None, :, 0], p[None, :, 1])   # [R, P]
    dist = np.abs(s.mean(axis=1)[:, None] - p.mean(axis=1)[None, :])            # [R, P]
    best = ov.max(axis=1)
    by_overlap = np.argmax(ov >= best[:, None] - _TIE_TOL, axis=1)
    by_centre = np.argmax(dist <= dist.min(axis=1)[:, None] + _TIE_TOL, axis=1)
    return np.where(best > 0, by_overlap, by_centre).astype(np.int64)


def row_coverage(top, bottom, h: int) -> np.ndarray:
    """``[..., h]``: the fraction of each of ``h`` cell rows covered by ``[top, bottom]``."""
    if isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1:
        raise ValueError(f"h must be an integer >= 1, got {h!r}")
    i = np.arange(h, dtype=np.float64)
    top = np.asarray(top, dtype=np.float64)[..., None]
    bottom = np.asarray(bottom, dtype=np.float64)[..., None]
    return overlap(i / h, (i + 1) / h, top, bottom) * h


def _extents(parts, R: int, reference: int):
    """Checked parts, the assigned part's extent per frame ``[T, R, 2]`` and in the reference."""
    p = _check_parts(parts)
    R = _check_R(R)
    reference = _check_reference(reference, p.shape[0])
    ext = p[:, assigned_parts(p[reference], R)]
    return ext, ext[reference], R


def map_shares(maps, parts, reference: int = 0) -> np.ndarray:
    """``[T, R]``: the share of each map's mass on its assigned part in that frame."""
    p = _check_parts(parts)
    m = _check_maps(maps, p.shape[0])
    ext, _, _ = _extents(p, m.shape[1], reference)
    rows = m.sum(axis=3)                                       # [T, R, h]
    cov = row_coverage(ext[..., 0], ext[..., 1], m.shape[2])   # [T, R, h]
    mass = rows.sum(axis=2)
    on = (rows * cov).sum(axis=2)
    return np.divide(on, mass, out=np.zeros_like(on), where=mass > 0)


def stripe_shares(parts, R: int, reference: int = 0) -> np.ndarray:
    """``[T, R]``: share of the fixed reference stripe on the assigned part (no alignment)."""
    ext, _, R = _extents(parts, R, reference)
    s = stripe_bounds(R)
    return overlap(s[:, 0], s[:, 1], ext[..., 0], ext[..., 1]) * R


def uniform_shares(parts, R: int, reference: int = 0) -> np.ndarray:
    """``[T, R]``: share of a flat map, the assigned part's height in each frame."""
    ext, _, _ = _extents(parts, R, reference)
    return ext[..., 1] - ext[..., 0]


def aligned_shares(parts, R: int, reference: int = 0) -> np.ndarray:
    """``[T, R]``: share of the reference stripe carried by the part's affine motion."""
    ext, ref, R = _extents(parts, R, reference)
    s = stripe_bounds(R)
    h_ref = ref[:, 1] - ref[:, 0]
    h_t = ext[..., 1] - ext[..., 0]
    scale = np.divide(h_t, h_ref, out=np.ones_like(h_t), where=h_ref > 0)
    y0 = ext[..., 0] + (s[:, 0] - ref[:, 0]) * scale
    y1 = ext[..., 0] + (s[:, 1] - ref[:, 0]) * scale
    length = y1 - y0
    on = overlap(y0, y1, ext[..., 0], ext[..., 1])
    return np.divide(on, length, out=np.zeros_like(on), where=length > 0)


def peakedness(maps) -> dict[str, float]:
    """``range``: mean over (t, r) of max - min of the map; ``entropy``: mean normalised entropy
    of the map's mass over its h*w cells (1 = flat, 0 = one cell; a map with no mass or a single
    cell counts as flat)."""
    m = _check_maps(maps)
    flat = m.reshape(m.shape[0], m.shape[1], -1)
    n = flat.shape[2]
    mass = flat.sum(axis=2, keepdims=True)
    prob = np.divide(flat, mass, out=np.full_like(flat, 1.0 / n), where=mass > 0)
    plogp = np.where(prob > 0, prob * np.log(np.where(prob > 0, prob, 1.0)), 0.0)
    ent = -plogp.sum(axis=2) / np.log(n) if n > 1 else np.ones(flat.shape[:2])
    return {"range": float((flat.max(axis=2) - flat.min(axis=2)).mean()),
            "entropy": float(np.clip(ent, 0.0, 1.0).mean())}


def clip_alignment(parts, R: int, maps=None, reference: int = 0) -> dict[str, float | None]:
    """Means over the clip's frames and regions of every score (``KEYS``); ``gam``, ``range`` and
    ``entropy`` are None without ``maps``."""
    stripe = float(stripe_shares(parts, R, reference).mean())
    aligned = float(aligned_shares(parts, R, reference).mean())
    out: dict[str, float | None] = {
        "gam": None, "stripe": stripe, "uniform": float(uniform_shares(parts, R, reference).mean()),
        "aligned": aligned, "headroom": aligned - stripe, "range": None, "entropy": None,
    }
    if maps is not None:
        _check_maps(maps, _check_parts(parts).shape[0], _check_R(R))
        out["gam"] = float(map_shares(maps, parts, reference).mean())
        out.update(peakedness(maps))
    return out


def summarise(clips: list[dict]) -> dict:
    """Means over clips of each key (None when every clip has None), ``per_clip``: key -> list of
    the per-clip values rounded to 6 decimals (for the bootstrap over queries), ``clips``: count.
    A key that is None in some clips only raises ``ValueError``."""
    clips = list(clips)
    if not clips:
        raise ValueError("summarise needs at least one clip, got an empty list")
    keys = list(dict.fromkeys(k for c in clips for k in c))
    out: dict = {"clips": len(clips), "per_clip": {}}
    for k in keys:
        vals = [c.get(k) for c in clips]
        nones = sum(v is None for v in vals)
        if 0 < nones < len(vals):
            raise ValueError(f"key {k!r} must be given in every clip or in none, got None in {nones} of {len(vals)}")
        out[k] = None if nones else float(np.mean(vals))
        out["per_clip"][k] = [None if v is None else round(float(v), 6) for v in vals]
    return out
